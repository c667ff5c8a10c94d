"""The lazy arrays over zarr: one dask chunk per zarr chunk, fetched together per compute."""

from __future__ import annotations

import asyncio

import numpy as np
import zarr
from zarr.storage import MemoryStore, WrapperStore

from napari_lablink.client.mikro.datalayer import lazy_array


class CountingStore(WrapperStore):
    """Records how many chunk reads are under way at once (each takes a little while).

    In memory on purpose: this checks the client's concurrency logic, which no server can show.
    """

    def __init__(self, store) -> None:
        super().__init__(store)
        self.active = 0
        self.most = 0
        self.keys: list[str] = []

    def _with_store(self, store):
        return self

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("c/"):
            self.keys.append(key)
            self.active += 1
            self.most = max(self.most, self.active)
            await asyncio.sleep(0.05)
            self.active -= 1
        return await self._store.get(key, prototype, byte_range)


def make(data: np.ndarray, chunks: tuple[int, ...]) -> tuple[zarr.Array, CountingStore]:
    store = CountingStore(MemoryStore())
    array = zarr.create_array(store, shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[:] = data
    store.keys.clear()
    return array, store


def test_chunks_match_and_values_are_exact() -> None:
    data = np.arange(3 * 70 * 50, dtype=np.uint16).reshape(3, 70, 50)
    array, _ = make(data, (1, 32, 32))
    lazy = lazy_array(array, "t")
    assert lazy.chunks == ((1, 1, 1), (32, 32, 6), (32, 18))
    np.testing.assert_array_equal(lazy.compute(), data)
    np.testing.assert_array_equal(lazy[1, 40:60, 10:45].compute(), data[1, 40:60, 10:45])


def test_a_plane_fetches_its_chunks_together_even_on_one_thread() -> None:
    data = np.ones((2, 128, 128), dtype=np.uint8)
    array, store = make(data, (1, 32, 32))
    lazy = lazy_array(array, "t")
    plane = lazy[1].compute(scheduler="synchronous")  # dask itself reads one chunk at a time
    np.testing.assert_array_equal(plane, data[1])
    assert sorted(store.keys) == sorted(f"c/1/{y}/{x}" for y in range(4) for x in range(4))
    assert store.most > 4


def test_single_chunk_reads_do_not_prefetch_anything_else() -> None:
    data = np.ones((2, 64, 64), dtype=np.uint8)
    array, store = make(data, (1, 32, 32))
    lazy_array(array, "t")[0, :10, :10].compute()
    assert store.keys == ["c/0/0/0"]


def test_a_big_compute_keeps_a_bounded_window_in_flight() -> None:
    data = np.arange(256 * 256, dtype=np.uint16).reshape(1, 256, 256)
    array, store = make(data, (1, 16, 16))  # 256 chunks
    np.testing.assert_array_equal(lazy_array(array, "t").compute(scheduler="synchronous"), data)
    assert len(store.keys) == 256 and len(set(store.keys)) == 256  # each chunk read once
    assert 4 < store.most <= 33  # the read-ahead window (32 chunks) and dask's own read


def test_a_whole_image_is_one_read_of_each_chunk_fetched_concurrently() -> None:
    data = np.arange(2 * 128 * 128, dtype=np.uint16).reshape(2, 128, 128)
    array, store = make(data, (1, 32, 32))
    np.testing.assert_array_equal(lazy_array(array, "t").compute(), data)
    assert sorted(store.keys) == sorted(
        f"c/{z}/{y}/{x}" for z in range(2) for y in range(4) for x in range(4)
    )
    assert store.most > 4
