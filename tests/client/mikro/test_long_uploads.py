"""Uploads that outlive their grant: generation 2 renews the grant of the store it writes."""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import pytest

import napari_lablink
from napari_lablink.testing import MikroStandIn

#: Seconds a grant of the short-lived stand-in lasts; the upload below takes several times that.
TTL = 2.0


@pytest.fixture(scope="module")
def short_lived(mikro):
    """A second mikro stand-in on the session's S3 whose grants last ``TTL`` seconds."""
    with MikroStandIn(s3=mikro.s3, credential_ttl=TTL) as server:
        yield server


def slow_planes(planes: int, seconds: float) -> da.Array:
    """(1, 1, planes, 64, 64) whose every plane takes ``seconds`` to compute."""

    def plane(block: np.ndarray) -> np.ndarray:
        time.sleep(seconds)
        return block + 1

    zeros = da.zeros((1, 1, planes, 64, 64), dtype=np.uint16, chunks=(1, 1, 1, 64, 64))
    return zeros.map_blocks(plane, dtype=np.uint16)


def test_an_upload_longer_than_its_grant_renews_it_and_completes(short_lived) -> None:
    source = slow_planes(planes=24, seconds=0.5)  # about 3 s with four writers
    with napari_lablink.connect(
        f"mikro+http://{short_lived.uri_authority}/mikro",
        token=short_lived.token,
        s3=short_lived.s3_endpoint,
    ) as server:
        uri = server.upload(source, name="long", kind="image", dims="ctzyx")
        image = server.get(uri)
        np.testing.assert_array_equal(image.levels[0].compute(), np.ones(source.shape, np.uint16))
    renewed = short_lived.calls("refreshZarrUpload")
    assert renewed and {v["input"]["storeId"] for v in renewed} == {
        image.server_metadata["store"]["id"]
    }
    assert len(short_lived.calls("requestZarrUpload")) == 1  # one store, not a second one
