"""Uploads to the stand-in mikro server read back through the reader: round trips are the test."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import napari_lablink
from napari_lablink import ConfigurationError
from napari_lablink.client.errors import UploadCancelledError, UploadError
from napari_lablink.client.upload import to_ctzyx

RNG = np.random.default_rng(11)


def connect(mikro, kind: str):
    prefix = "/mikro" if kind == "image" else ""
    return napari_lablink.connect(
        f"mikro+http://{mikro.uri_authority}{prefix}", token=mikro.token, s3=mikro.s3_endpoint
    )


def registered(mikro) -> tuple[int, int]:
    return len(mikro.state.images), len(mikro.state.representations)


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_round_trip_keeps_pixels_orientation_and_metadata(mikro_clean, kind) -> None:
    data = RNG.integers(0, 60000, size=(2, 5, 70, 130), dtype=np.uint16)  # c z y x, not square
    with connect(mikro_clean, kind) as server:
        uri = server.upload(
            data,
            name="round trip",
            kind=kind,
            dims=("c", "z", "y", "x"),
            channels=["DAPI", "GFP"],
            pixel_size={"x": 0.1, "y": 0.2, "z": 0.5},
            tags=["upload", "test"],
        )
        image = server.get(uri)
    assert image.name == "round trip"
    assert image.shape == (2, 1, 5, 70, 130) and image.dtype == np.uint16
    np.testing.assert_array_equal(image.data.values[:, 0], data)  # y stays y, x stays x
    assert image.pixel_size == {"x": 0.1, "y": 0.2, "z": 0.5}
    assert [c.name for c in image.channels] == ["DAPI", "GFP"]
    assert set(image.server_metadata["tags"]) == {"upload", "test"}


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_colours_and_contrast_limits_come_back(mikro_clean, kind) -> None:
    """Colours on both generations; contrast limits on generation 2 (generation 1's channels
    have no place for them)."""
    from napari_lablink.client.models import Channel

    data = RNG.integers(0, 4000, size=(3, 8, 8), dtype=np.uint16)
    sent = [
        Channel(name="DAPI", color=(0.0, 0.0, 1.0), contrast_limits=(100.0, 3000.0)),
        Channel(name="GFP", color=(1.0, 165 / 255, 0.0), contrast_limits=(50.0, 2000.0)),
        Channel(name="plain"),
    ]
    with connect(mikro_clean, kind) as server:
        uri = server.upload(data, name="looks", kind=kind, dims="cyx", channels=sent)
        image = server.get(uri)
    assert [c.color for c in image.channels[:2]] == [c.color for c in sent[:2]]
    if kind == "image":
        assert [c.contrast_limits for c in image.channels] == [
            (100.0, 3000.0),
            (50.0, 2000.0),
            None,
        ]
        assert image.channels[2].color is None  # no view sent, none invented


def test_generation1_dataset_is_what_old_clients_wrote(mikro_clean) -> None:
    data = RNG.integers(0, 255, size=(3, 1, 40, 2048, 1024), dtype=np.uint8)
    with connect(mikro_clean, "representation") as server:
        uri = server.upload(data, name="big planes", kind="representation", dims="ctzyx")
    rep = mikro_clean.state.representations[napari_lablink.parse_uri(uri).object_id]
    bucket, key = rep.store.split("/", 1)
    group = __import__("zarr").open_group(
        mikro_clean.s3.zarr_store(bucket, key), mode="r", zarr_format=2, use_consolidated=True
    )
    assert group.attrs["fileversion"] == "v1"
    array = group["data"]
    assert array.attrs["_ARRAY_DIMENSIONS"] == ["c", "t", "z", "y", "x"]
    assert array.chunks[0] == 1
    chunk_mb = np.prod(array.chunks) * array.dtype.itemsize / 1e6
    assert 10 < chunk_mb <= 21


def test_generation2_pyramid_comes_back_multiscale(mikro_clean) -> None:
    data = RNG.integers(0, 4000, size=(1, 1, 1, 1100, 700), dtype=np.uint16)
    with connect(mikro_clean, "image") as server:
        uri = server.upload(data, name="pyr", kind="image", dims="ctzyx", pyramid=True)
        image = server.get(uri)
    assert [lvl.shape[-2:] for lvl in image.levels] == [
        (1100, 700),
        (550, 350),
        (275, 175),
        (138, 88),
    ]
    np.testing.assert_array_equal(image.levels[0].compute(), data)
    level1 = image.levels[1].compute()
    expected = data[..., :1100, :700].reshape(1, 1, 1, 550, 2, 350, 2).mean(axis=(4, 6))
    np.testing.assert_array_equal(level1, np.round(expected).astype(np.uint16))


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_labels_upload_as_mask(mikro_clean, kind) -> None:
    labels = np.zeros((64, 48), dtype=np.uint32)
    labels[5:20, 10:30] = 3
    labels[40:50, 2:8] = 9
    with connect(mikro_clean, kind) as server:
        uri = server.upload(labels, name="cells", kind=kind, labels=True, pyramid=kind == "image")
        image = server.get(uri)
    assert image.is_labels
    np.testing.assert_array_equal(image.data.values[0, 0, 0], labels)


def test_xarray_and_dask_inputs_use_their_dims(mikro_clean) -> None:
    data = RNG.integers(0, 9, size=(4, 3, 20, 30), dtype=np.int16)
    array = xr.DataArray(
        da.from_array(data, chunks=(1, 1, 10, 30)), dims=("time", "channel", "y", "x")
    )
    with connect(mikro_clean, "image") as server:
        image = server.get(server.upload(array, name="xr", kind="image"))
    np.testing.assert_array_equal(image.data.values[:, :, 0], data.transpose(1, 0, 2, 3))


def test_origin_is_recorded_for_generation1(mikro_clean) -> None:
    with connect(mikro_clean, "representation") as server:
        parent = server.upload(np.ones((8, 8), np.uint8), name="parent", kind="representation")
        parent_id = napari_lablink.parse_uri(parent).object_id
        child = server.upload(
            np.ones((8, 8), np.uint8), name="child", kind="representation", origins=[parent_id]
        )
        image = server.get(child)
    assert image.server_metadata["origins"] == [{"id": parent_id}]


@pytest.mark.parametrize(
    ("shape", "dims", "words"),
    [
        ((2, 3, 4, 5, 6), None, "Cannot tell which axis of this 5-D data is which"),
        ((4, 5), ("y", "q"), "do not name distinct axes"),
        ((4, 5, 6), ("z", "z", "x"), "do not name distinct axes"),
    ],
)
def test_ambiguous_layouts_are_refused_with_advice(shape, dims, words) -> None:
    with pytest.raises(ConfigurationError) as info:
        to_ctzyx(np.zeros(shape), dims)
    assert words in str(info.value) and "axis labels" in str(info.value)


def test_napari_conventions() -> None:
    assert to_ctzyx(np.zeros((3, 4))).shape == (1, 1, 1, 3, 4)
    assert to_ctzyx(np.zeros((2, 3, 4))).shape == (1, 1, 2, 3, 4)
    assert to_ctzyx(np.zeros((5, 2, 3, 4))).shape == (1, 5, 2, 3, 4)
    assert to_ctzyx(np.zeros((3, 4, 3)), rgb=True).shape == (3, 1, 1, 3, 4)


def test_uploads_survive_injected_faults(mikro_clean) -> None:
    """503s and dropped connections on S3 and on read-only GraphQL calls: retried, exact result."""
    data = RNG.integers(0, 1000, size=(2, 1, 3, 600, 600), dtype=np.uint16)
    mikro_clean.s3.faults.seed = 5
    mikro_clean.s3.faults.kinds = ["503", "drop"]
    mikro_clean.s3.faults.rate = 0.2
    mikro_clean.faults.fail_next(2, "503")
    before = registered(mikro_clean)
    with connect(mikro_clean, "image") as server:
        uri = server.upload(data, name="faulty", kind="image", dims="ctzyx")
        mikro_clean.s3.faults.clear()
        np.testing.assert_array_equal(server.get(uri).data.values, data)
    assert registered(mikro_clean)[0] == before[0] + 1
    assert any(f.kind == "drop" for f in mikro_clean.s3.faults.injected)


def test_failed_write_registers_nothing_and_discards_the_store(mikro_clean) -> None:
    data = RNG.integers(0, 1000, size=(1, 1, 4, 256, 256), dtype=np.uint16)
    before = registered(mikro_clean)
    stores_before = set(mikro_clean.state.stores)
    mikro_clean.s3.faults.methods = ["PUT"]
    mikro_clean.s3.faults.rate = 1.0
    with connect(mikro_clean, "image") as server, pytest.raises(UploadError) as info:
        server.upload(data, name="doomed", kind="image", dims="ctzyx")
    assert "Nothing was registered" in str(info.value)
    assert "answered 503 Service Unavailable after 3 retries" in str(info.value)
    assert registered(mikro_clean) == before
    new = [mikro_clean.state.stores[s] for s in set(mikro_clean.state.stores) - stores_before]
    assert new and all(store.state == "discarded" for store in new)


def test_generation1_failure_never_sends_the_mutation(mikro_clean) -> None:
    mikro_clean.s3.faults.methods = ["PUT"]
    mikro_clean.s3.faults.rate = 1.0
    with connect(mikro_clean, "representation") as server, pytest.raises(UploadError):
        server.upload(np.ones((64, 64), np.uint16), name="doomed", kind="representation")
    assert mikro_clean.calls("fromXArray") == []


def test_cancel_registers_nothing(mikro_clean) -> None:
    cancel = threading.Event()
    data = da.from_array(
        RNG.integers(0, 9, size=(1, 1, 8, 512, 512), dtype=np.uint16), chunks=(1, 1, 1, 512, 512)
    )
    before = registered(mikro_clean)

    def progress(done: int, total: int) -> None:
        if done >= 2:
            cancel.set()

    with connect(mikro_clean, "image") as server, pytest.raises(UploadCancelledError):
        server.upload(
            data, name="cancelled", kind="image", dims="ctzyx", progress=progress, cancel=cancel
        )
    assert registered(mikro_clean) == before


def test_a_dropped_upload_grant_is_asked_for_again(mikro_clean) -> None:
    """The connection drops on requestZarrUpload: asking again makes a second, empty store at
    worst, never a second image."""
    before = registered(mikro_clean)
    mikro_clean.faults.fail_next(1, "drop", path_contains="mikro", methods=["POST"])
    with connect(mikro_clean, "image") as server:
        uri = server.upload(np.ones((16, 16), np.uint16), name="once", kind="image")
        assert server.get(uri).name == "once"
    assert registered(mikro_clean)[0] == before[0] + 1


def test_size_limit_is_explained(mikro) -> None:
    from napari_lablink.testing import MikroStandIn

    with MikroStandIn(s3=mikro.s3, max_upload_bytes=1000) as small:
        with connect(small, "image") as server, pytest.raises(UploadError) as info:
            server.upload(np.ones((100, 100), np.uint16), name="too big", kind="image")
    assert "accepts at most" in str(info.value)


def test_channel_count_mismatch(mikro_clean) -> None:
    with (
        connect(mikro_clean, "image") as server,
        pytest.raises(ConfigurationError, match="2 channel names for 3 channels"),
    ):
        server.upload(np.ones((3, 8, 8)), name="x", kind="image", dims="cyx", channels=["a", "b"])
