"""Uploads compute every block of the source once, whatever the pyramid and the chunk layout."""

from __future__ import annotations

import threading
from collections import Counter

import dask.array as da
import numpy as np
import pytest

import napari_lablink
from napari_lablink.client.mikro.blocks import halved

RNG = np.random.default_rng(3)


class CountingSource:
    """A dask array over ``data`` whose every block records each time it is computed."""

    def __init__(self, data: np.ndarray, chunks: tuple[int, ...]) -> None:
        self.data = data
        self.calls: Counter[tuple[int, ...]] = Counter()
        self._lock = threading.Lock()
        self.array = da.from_array(data, chunks=chunks).map_blocks(self._block, dtype=data.dtype)

    def _block(self, block: np.ndarray, block_info=None) -> np.ndarray:
        if block_info is not None:  # dask's own dry run has none
            with self._lock:
                self.calls[tuple(block_info[0]["chunk-location"])] += 1
        return block

    @property
    def blocks(self) -> int:
        return self.array.npartitions


def connect(mikro, prefix: str):
    return napari_lablink.connect(
        f"mikro+http://{mikro.uri_authority}{prefix}", token=mikro.token, s3=mikro.s3_endpoint
    )


def test_halving_averages_2x2_blocks_and_repeats_an_odd_edge() -> None:
    data = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.uint16)
    np.testing.assert_array_equal(halved(data, labels=False), [[3, 4], [8, 9]])
    np.testing.assert_array_equal(halved(data, labels=True), [[1, 3], [7, 9]])
    assert halved(np.ones((2, 5, 7), np.float32), labels=False).shape == (2, 3, 4)


def test_a_pyramid_upload_computes_each_source_block_once(mikro_clean) -> None:
    data = RNG.integers(0, 4000, size=(2, 1, 8, 600, 520), dtype=np.uint16)
    source = CountingSource(data, chunks=(1, 1, 4, 300, 520))  # blocks span four planes
    with connect(mikro_clean, "/mikro") as server:
        uri = server.upload(source.array, name="pyr", kind="image", dims="ctzyx", pyramid=True)
        image = server.get(uri)
        levels = [level.compute() for level in image.levels]
    assert set(source.calls) == {(c, 0, z, y, 0) for c in (0, 1) for z in (0, 1) for y in (0, 1)}
    assert set(source.calls.values()) == {1}
    expected = data
    assert len(levels) == 3  # 600 -> 300 -> 150
    for level in levels:
        np.testing.assert_array_equal(level, expected)
        expected = halved(expected, labels=False)


def test_labels_pyramids_pick_existing_labels(mikro_clean) -> None:
    data = RNG.integers(0, 5, size=(1, 1, 1, 520, 300), dtype=np.uint8)
    with connect(mikro_clean, "/mikro") as server:
        uri = server.upload(
            data, name="labels", kind="image", dims="ctzyx", pyramid=True, labels=True
        )
        image = server.get(uri)
        np.testing.assert_array_equal(image.levels[1].compute(), data[..., ::2, ::2])


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_a_plain_upload_follows_the_source_chunks(mikro_clean, kind) -> None:
    data = RNG.integers(0, 255, size=(1, 2, 6, 200, 2100), dtype=np.uint8)
    source = CountingSource(data, chunks=(1, 1, 3, 100, 2100))  # rows span three planes
    with connect(mikro_clean, "/mikro" if kind == "image" else "") as server:
        uri = server.upload(source.array, name="plain", kind=kind, dims="ctzyx")
        np.testing.assert_array_equal(server.get(uri).levels[0].compute(), data)
    assert len(source.calls) == source.blocks and set(source.calls.values()) == {1}
