"""What the real mikro servers answer, and what the client makes of it (stand-ins over HTTP)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import xarray as xr

import napari_lablink
from napari_lablink import AuthenticationError, NotFoundError, ServerUnavailableError
from napari_lablink.client.errors import AmbiguousArrayError
from napari_lablink.testing import TrackerStandIn
from napari_lablink.testing.mikro.server import FORBIDDEN_PAGE

RNG = np.random.default_rng(14)
PLANE = RNG.integers(0, 4000, size=(1, 1, 1, 24, 20), dtype=np.uint16)


def url(mikro, kind: str) -> str:
    return f"mikro+http://{mikro.uri_authority}{'/mikro' if kind == 'image' else ''}"


@pytest.fixture(scope="module")
def objects(mikro) -> dict[str, str]:
    return {
        "image": mikro.add_image(PLANE, "faithful gen2"),
        "representation": mikro.add_representation(PLANE, "faithful gen1"),
    }


def test_generation2_without_a_token_is_an_authentication_error(mikro_clean, objects) -> None:
    with (
        napari_lablink.connect(url(mikro_clean, "image"), s3=mikro_clean.s3_endpoint) as server,
        pytest.raises(AuthenticationError) as info,
    ):
        server.get(f"image/{objects['image']}")
    text = str(info.value)
    assert "needs a token and got none (No Authorization header)" in text
    assert f"image {objects['image']}" in text and "LABLINK_TOKEN" in text


@pytest.mark.parametrize(
    ("token", "words"),
    [("not-a-jwt-at-all", "Error decoding token header"), ("a.b.c", "Error decoding token")],
)
def test_generation2_bad_token_is_an_authentication_error(
    mikro_clean, objects, token, words
) -> None:
    with (
        napari_lablink.connect(
            url(mikro_clean, "image"), token=token, s3=mikro_clean.s3_endpoint
        ) as server,
        pytest.raises(AuthenticationError) as info,
    ):
        server.get(f"image/{objects['image']}")
    assert f"refused the token ({words})" in str(info.value)
    assert token not in str(info.value)


def test_generation1_html_page_is_an_authentication_error(mikro_clean, objects) -> None:
    assert b"<title>403 Forbidden</title>" in FORBIDDEN_PAGE  # what the stand-in answers
    with (
        napari_lablink.connect(
            url(mikro_clean, "representation"), token="wrong-token-1", s3=mikro_clean.s3_endpoint
        ) as server,
        pytest.raises(AuthenticationError) as info,
    ):
        server.get(f"representation/{objects['representation']}")
    text = str(info.value)
    assert "refused the credentials (HTTP 403)" in text and "<html" not in text
    assert f"representation {objects['representation']}" in text and "LABLINK_TOKEN" in text


def test_generation1_reads_anonymously_but_refuses_anonymous_uploads(mikro_clean, objects) -> None:
    with napari_lablink.connect(
        url(mikro_clean, "representation"), s3=mikro_clean.s3_endpoint
    ) as server:
        image = server.get(f"representation/{objects['representation']}")
        np.testing.assert_array_equal(image.levels[0].compute(), PLANE)
        with pytest.raises(AuthenticationError, match="permission"):
            server.upload(PLANE[0, 0, 0], name="anonymous", kind="representation")


def test_dead_s3_endpoint_is_unreachable_even_with_403_in_the_key(mikro_clean) -> None:
    """Only S3's status and error code mean "refused"; "403" in a key or a timing does not."""
    rep_id = mikro_clean.add_representation(PLANE, "key with 403")
    mikro_clean.state.representations[rep_id].store = "zarr/run-403-fov-403.zarr"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with (
        napari_lablink.connect(url(mikro_clean, "representation"), s3=dead) as server,
        pytest.raises(ServerUnavailableError) as info,
    ):
        server.get(f"representation/{rep_id}")
    assert "The S3 endpoint could not be reached" in str(info.value)
    assert dead in str(info.value) and "s3://zarr/run-403-fov-403.zarr" in str(info.value)
    assert len(mikro_clean.calls("request")) == 1  # the first grant only, no needless renewal


@pytest.mark.parametrize("kind", ["representation", "image"])
def test_an_endpoint_that_is_not_s3_names_both_servers_and_the_object(
    mikro_clean, objects, kind
) -> None:
    """The tracker stand-in answers HTTP (404 pages) but is no S3."""
    with TrackerStandIn() as tracker:
        endpoint = tracker.base_url.rstrip("/")
        with (
            napari_lablink.connect(
                url(mikro_clean, kind), token=mikro_clean.token, s3=endpoint
            ) as server,
            pytest.raises(NotFoundError) as info,
        ):
            server.get(f"{kind}/{objects[kind]}")
    text = str(info.value)
    assert f"The S3 endpoint {endpoint} has no zarr data at s3://" in text
    assert f"server {url(mikro_clean, kind)}, {kind} {objects[kind]}" in text
    assert "an endpoint that is not S3 answers every object as missing" in text
    grants = "requestZarrAccess" if kind == "image" else "request"
    assert len(mikro_clean.calls(grants)) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_generation1_uploads_read_back_exactly_with_xarray(mikro_clean, dtype) -> None:
    """mikro's own clients open representations with xr.open_zarr: zeros must stay zeros."""
    data = np.zeros((2, 3, 40, 30), dtype=dtype)  # c z y x, whole chunks of zeros included
    data[1, 1:, 5:25, 3:17] = np.arange(2 * 20 * 14).reshape(2, 20, 14) % 100 + 1
    with napari_lablink.connect(
        url(mikro_clean, "representation"), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        uri = server.upload(data, name="zeros", kind="representation", dims=("c", "z", "y", "x"))
    rep = mikro_clean.state.representations[napari_lablink.parse_uri(uri).object_id]
    bucket, key = rep.store.split("/", 1)
    variable = xr.open_zarr(mikro_clean.s3.zarr_store(bucket, key))["data"]
    assert variable.dims == ("c", "t", "z", "y", "x") and variable.dtype == dtype
    np.testing.assert_array_equal(variable.values[:, 0], data)


def test_generation2_labels_are_images_with_mask_views(mikro_clean) -> None:
    labels = np.zeros((1, 1, 1, 600, 520), dtype=np.uint32)
    labels[..., 50:300, 40:200] = 7
    labels[..., 400:580, 300:500] = 12
    with napari_lablink.connect(
        url(mikro_clean, "image"), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        uri = server.upload(
            labels, name="cells", kind="image", dims="ctzyx", labels=True, pyramid=True
        )
        image = server.get(uri)
        plain = server.get(server.upload(labels, name="not labels", kind="image", dims="ctzyx"))
    *label_levels, plain_call = mikro_clean.calls("fromArrayLike")
    assert len(label_levels) == len(image.levels) > 1
    assert all(call["input"]["maskViews"] == [{}] for call in label_levels)
    assert "maskViews" not in plain_call["input"]
    assert image.is_labels and not plain.is_labels
    np.testing.assert_array_equal(image.levels[0].compute(), labels)
    assert set(np.unique(image.levels[1].compute())) == {0, 7, 12}  # no averaged label values
    stored = mikro_clean.state.images[napari_lablink.parse_uri(uri).object_id]
    assert [view.instance for view in stored.mask_views] == [False]


@pytest.mark.parametrize("instance", [False, True])
def test_generation2_images_with_mask_views_open_as_labels(mikro_clean, instance) -> None:
    seeded = mikro_clean.add_image(PLANE, "seeded labels", labels=True)
    for view in mikro_clean.state.images[seeded].mask_views:
        view.instance = instance  # served as instanceMaskViews instead of maskViews
    with napari_lablink.connect(
        url(mikro_clean, "image"), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        assert server.get(f"image/{seeded}").is_labels
        assert not server.get(f"image/{mikro_clean.add_image(PLANE, 'plain')}").is_labels


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_colour_photo_without_rgb_is_refused_before_anything_is_written(mikro_clean, kind) -> None:
    photo = RNG.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    with napari_lablink.connect(
        url(mikro_clean, kind), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        with pytest.raises(AmbiguousArrayError) as info:
            server.upload(photo, name="photo", kind=kind)
        assert "would be stored as 48 planes of 64 x 3 pixels" in str(info.value)
        assert "rgb=True" in str(info.value) and "dims=" in str(info.value)
        assert mikro_clean.s3.requests.count(method="PUT") == 0
        assert not mikro_clean.calls("requestZarrUpload") and not mikro_clean.calls("request")
        with pytest.raises(AmbiguousArrayError, match="the axis named as colour has 2"):
            server.upload(photo[..., :2], name="two", kind=kind, dims="yxc", rgb=True)
        colour = server.get(server.upload(photo, name="photo", kind=kind, rgb=True))
        planes = server.get(server.upload(photo, name="planes", kind=kind, dims="zyx"))
    np.testing.assert_array_equal(colour.levels[0].compute()[:, 0, 0], photo.transpose(2, 0, 1))
    assert colour.is_rgb == (kind == "representation")  # generation 2 has no colour flag
    assert planes.shape == (1, 1, 48, 64, 3)
