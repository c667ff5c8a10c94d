"""S3 failures in a sentence: typed, short, and never blamed on S3 when the data is at fault."""

from __future__ import annotations

import numpy as np
import obstore.exceptions as obx
import pytest

import napari_lablink
from napari_lablink.client import outages
from napari_lablink.client.errors import (
    ConfigurationError,
    ServerError,
    ServerUnavailableError,
    UploadError,
)
from napari_lablink.client.mikro.s3errors import s3_failure

RAW_503 = (
    "Generic S3 error: Error performing GET http://127.0.0.1:9/bucket/key/c/0 in 1.2s, after 3 "
    "retries, max_retries: 3, retry_timeout: 30s - Server returned non-2xx status code: 503 "
    "Service Unavailable: <Error><Code>SlowDown</Code></Error>\n\nDebug source:\n" + "x" * 1200
)


def connect(mikro):
    return napari_lablink.connect(
        f"mikro+http://{mikro.uri_authority}/mikro", token=mikro.token, s3=mikro.s3_endpoint
    )


def test_a_5xx_after_obstore_gave_up_is_a_short_server_error() -> None:
    error = s3_failure(obx.GenericError(RAW_503), "http://127.0.0.1:9", "s3://bucket/key")
    assert isinstance(error, ServerError)
    assert "GET http://127.0.0.1:9/bucket/key/c/0 answered HTTP 503 after 3 retries" in str(error)
    assert len(str(error)) < 400 and "Debug" not in str(error)


def test_unreachable_and_panicking_endpoints() -> None:
    unreachable = s3_failure(
        obx.GenericError("Error performing GET http://x/b/k - HTTP error: error sending request"),
        "http://x",
        "s3://b/k",
    )
    assert isinstance(unreachable, ServerUnavailableError)
    panic = type("RustPanic", (Exception,), {"__module__": "pyo3_async_runtimes"})
    error = s3_failure(panic("rust future panicked: unknown error"), "http://x", "s3://b/k")
    assert isinstance(error, ConfigurationError) and "panicked" not in str(error)
    assert s3_failure(ValueError("not S3"), "http://x", "s3://b/k") is None


def test_reading_through_s3_5xx_is_an_outage_reported_as_a_typed_short_error(
    mikro_clean,
) -> None:
    """S3 failing with 5xx after retries is an outage: the read answers zeros and the one
    report carries S3's failure in a sentence, not obstore's page of debug output."""
    image_id = mikro_clean.add_image(np.ones((1, 1, 1, 8, 8), np.uint16), "five hundreds")
    heard: list[outages.Outage] = []
    stop = outages.listen(heard.append)
    try:
        with connect(mikro_clean) as server:
            image = server.get(f"image/{image_id}")
            mikro_clean.s3.faults.methods = ["GET"]
            mikro_clean.s3.faults.rate = 1.0
            values = image.data.values
            mikro_clean.s3.faults.clear()
            outages.source(server.label).reset()
    finally:
        stop()
    assert not values.any()
    cause = heard[0].cause
    assert isinstance(cause, ServerError) and not heard[0].over
    assert "answered HTTP 503" in str(cause) and len(str(cause)) < 500
    assert "rust" not in str(cause).lower()


def test_a_dtype_zarr_refuses_is_not_reported_as_an_s3_failure(mikro_clean) -> None:
    data = np.array([[{"a": 1}, None]], dtype=object)
    with connect(mikro_clean) as server, pytest.raises(UploadError) as caught:
        server.upload(data, name="objects", kind="image")
    text = str(caught.value)
    assert "S3" not in text and caught.value.registered == ()
    assert "cannot be stored" in text or "numeric" in text
