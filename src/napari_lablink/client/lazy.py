"""Lazy dask arrays over remote pixels, one task per chunk, with the chunks of a compute planned.

Every protocol serves pixels in pieces (zarr chunks on S3, tracker channel PNGs, PIMS windows);
:func:`chunked_array` turns "read chunk ``index``" into a dask array. dask computes with as many
threads as there are cores, so a plane of sixteen remote chunks would take eight round trips. But
before it computes, dask culls the graph to the chunks it needs, and that is the moment a reader
can learn what is coming: the graph layer here hands those chunk indices to ``plan``, and
:class:`ReadAhead` (or a protocol's own cache) starts fetching them together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import product

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph, Layer, MaterializedLayer
from dask.typing import Key
from numpy.typing import DTypeLike

__all__ = ["ChunkIndex", "ReadAhead", "chunked_array"]

#: The position of a chunk in the chunk grid, one entry per axis.
ChunkIndex = tuple[int, ...]
#: Reads the pixels of one chunk.
ReadChunk = Callable[[ChunkIndex], np.ndarray]
#: Told the chunks one compute needs, before it runs.
PlanChunks = Callable[[list[ChunkIndex]], None]

#: Chunk reads that read-ahead may have in flight at once, across all arrays. The reads mostly
#: wait on the network (zarr's event loop, an HTTP pool), so these threads cost little.
_READ_AHEAD_THREADS = 16
#: Chunks of one array read ahead of dask's own reads: bounds memory whatever the compute's size.
_READ_AHEAD_WINDOW = 16
#: Chunks read ahead but not collected by then were for a compute that failed: forget them.
_READ_AHEAD_TTL = 120.0

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _read_ahead_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_READ_AHEAD_THREADS, thread_name_prefix="lablink-chunks")
        return _executor


class _PlannedLayer(MaterializedLayer):
    """The graph layer of one chunked array: tells ``plan`` which chunks a compute needs."""

    def __init__(self, indices: dict[Key, ChunkIndex], read: ReadChunk, plan: PlanChunks) -> None:
        super().__init__({key: (read, index) for key, index in indices.items()})
        self._indices = indices
        self._plan = plan

    def cull(
        self, keys: set[Key], all_hlg_keys: Collection[Key]
    ) -> tuple[Layer, Mapping[Key, set[Key]]]:
        needed = [self._indices[key] for key in keys if key in self._indices]
        if len(needed) > 1:  # one chunk gains nothing from planning
            self._plan(needed)
        return super().cull(keys, all_hlg_keys)


def chunked_array(
    name: str,
    chunks: Sequence[Sequence[int]],
    dtype: DTypeLike,
    read: ReadChunk,
    *,
    plan: PlanChunks | None = None,
) -> da.Array:
    """A dask array whose chunk at grid position ``index`` is ``read(index)``.

    ``chunks`` are dask's explicit chunk sizes per axis; ``name`` is the graph key and must be
    unique to this ``read``. ``plan``, when given, hears the chunk indices of each compute that
    needs more than one chunk, before any of them is read.
    """
    sizes = tuple(tuple(int(n) for n in axis) for axis in chunks)
    grid = product(*(range(len(axis)) for axis in sizes))
    indices: dict[Key, ChunkIndex] = {(name, *index): index for index in grid}
    layer = (
        MaterializedLayer({key: (read, index) for key, index in indices.items()})
        if plan is None
        else _PlannedLayer(indices, read, plan)
    )
    graph = HighLevelGraph({name: layer}, {name: set()})
    array: da.Array = da.Array(graph, name, chunks=sizes, dtype=dtype)
    return array


class ReadAhead:
    """Wraps a chunk reader so that the chunks a compute will need are read ahead, together.

    Give :meth:`read` and :meth:`plan` to :func:`chunked_array`. Once a compute's chunks are
    planned, up to ``_READ_AHEAD_WINDOW`` of them are in flight at a time and each dask task
    collects its own; a chunk nobody planned is read directly.
    """

    def __init__(self, read: ReadChunk) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._pending: dict[ChunkIndex, tuple[float, Future[np.ndarray]]] = {}
        self._planned: dict[ChunkIndex, None] = {}  # an ordered set

    def read(self, index: ChunkIndex) -> np.ndarray:
        with self._lock:
            entry = self._pending.pop(index, None)
            self._planned.pop(index, None)
            self._top_up()
        if entry is not None:
            return entry[1].result()
        return self._read(index)

    def plan(self, indices: Iterable[ChunkIndex]) -> None:
        """The next compute needs ``indices``: start reading the first of them."""
        now = time.monotonic()
        with self._lock:
            for index, (started, future) in list(self._pending.items()):
                if now - started > _READ_AHEAD_TTL:  # planned by a compute that failed
                    future.cancel()
                    del self._pending[index]
            self._planned = dict.fromkeys(sorted(indices))
            self._top_up()

    def _top_up(self) -> None:
        executor = _read_ahead_executor()
        now = time.monotonic()
        while self._planned and len(self._pending) < _READ_AHEAD_WINDOW:
            index = next(iter(self._planned))
            del self._planned[index]
            if index not in self._pending:
                self._pending[index] = (now, executor.submit(self._read, index))
