"""Lazy dask arrays over remote pixels, one task per chunk, with the chunks of a compute planned.

Every protocol serves pixels in pieces (zarr chunks on S3, tracker channel PNGs, PIMS windows);
:func:`chunked_array` turns "read chunk ``index``" into a dask array. Opening an image must cost
nothing whatever its size, so the graph layer here holds only the chunk grid and makes a task
when one is asked for: a 1 TiB image of half a million chunks opens as fast as a small one, and a
plane read materialises the tasks of that plane only.

dask computes with as many threads as there are cores, so a plane of sixteen remote chunks would
take eight round trips. But before it computes, dask culls the graph to the chunks it needs, and
that is the moment a reader can learn what is coming: the layer hands those chunk indices to
``plan``, and :class:`ReadAhead` (or a protocol's own cache) starts fetching them together.

Reads of an array whose server is gone must not hold napari's slicing: given the server's
:class:`~napari_lablink.client.outages.Source`, a chunk read that finds an outage (or comes while
one lasts) answers zeros at once, and no chunks are read ahead for it.

Computing a whole array, though, needs no graph at all: dask would read every chunk into an array
of its own and then copy them all into the result, after the last read, on one core. An array
given ``read_whole`` (a store that reads a region into one buffer, fetching its chunks
concurrently) computes itself with that one call instead, when dask's local threads would.

The arrays pickle, so they compute on a ``dask.distributed`` cluster too. A layer that arrives
in another process (a scheduler) comes without its ``plan``: the chunks will be read by the
workers, and read-ahead there would only fetch chunks for a process that never collects them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import product
from typing import Any

import dask
import dask.array as da
import dask.threaded
import numpy as np
from dask._task_spec import Task
from dask.highlevelgraph import HighLevelGraph, Layer, MaterializedLayer
from dask.typing import Key
from numpy.typing import DTypeLike

from napari_lablink.client.outages import Source

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
#: Readers that read batches read half of it per call, so two calls overlap.
_READ_AHEAD_WINDOW = 32
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


class _ChunkLayer(Layer):
    """The graph layer of one chunked array: the chunk grid, with tasks made on demand.

    Culling (which every compute does first) materialises only the tasks asked for and tells
    ``plan`` their chunk indices.
    """

    def __init__(
        self,
        name: str,
        numblocks: tuple[int, ...],
        read: ReadChunk,
        plan: PlanChunks | None,
        annotations: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(annotations=annotations)
        self.name = name
        self.numblocks = numblocks
        self.read = read
        self.plan = plan

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled elsewhere, the layer's chunks are read by other processes: no plan.
        return (_ChunkLayer, (self.name, self.numblocks, self.read, None, self.annotations))

    @property
    def has_legacy_tasks(self) -> bool:  # dask caches it per layer
        return False  # and computing it would make every task

    def _index(self, key: object) -> ChunkIndex | None:
        if not (isinstance(key, tuple) and len(key) == len(self.numblocks) + 1):
            return None
        if key[0] != self.name:
            return None
        index = key[1:]
        for i, n in zip(index, self.numblocks, strict=True):
            if not isinstance(i, int) or not 0 <= i < n:
                return None
        return index

    def __getitem__(self, key: Key) -> Task:
        index = self._index(key)
        if index is None:
            raise KeyError(key)
        return Task(key, self.read, index)

    def __contains__(self, key: object) -> bool:
        return self._index(key) is not None

    def __iter__(self) -> Iterator[Key]:
        for index in product(*(range(n) for n in self.numblocks)):
            yield (self.name, *index)

    def __len__(self) -> int:
        return math.prod(self.numblocks)

    def is_materialized(self) -> bool:
        return False

    def get_output_keys(self) -> Collection[Key]:  # type: ignore[override]
        return self.keys()  # a view: membership and size without making the keys

    def get_dependencies(self, key: Key, all_hlg_keys: Collection[Key]) -> set[Key]:
        return set()

    def cull(
        self, keys: set[Key], all_hlg_keys: Collection[Key]
    ) -> tuple[Layer, Mapping[Key, set[Key]]]:
        needed = {key: index for key in keys if (index := self._index(key)) is not None}
        if self.plan is not None and len(needed) > 1:  # one chunk gains nothing from planning
            self.plan(list(needed.values()))
        tasks = {key: Task(key, self.read, index) for key, index in needed.items()}
        return MaterializedLayer(tasks, annotations=self.annotations), {k: set() for k in tasks}


def _guard(
    source: Source,
    image: str,
    read: Callable[[], np.ndarray],
    shape: tuple[int, ...],
    dtype: DTypeLike,
) -> np.ndarray:
    """``read()``, or zeros of ``shape`` when ``source`` is in an outage or this read finds one."""
    if not source.admit():
        return np.zeros(shape, dtype)
    try:
        data = read()
    except BaseException as exc:
        if source.failed(exc, image) and isinstance(exc, Exception):
            return np.zeros(shape, dtype)
        raise
    source.succeeded()
    return data


class _Guarded:
    """A chunk reader that answers zeros instead of waiting on a server that is gone."""

    def __init__(
        self,
        read: ReadChunk,
        source: Source,
        image: str,
        sizes: tuple[tuple[int, ...], ...],
        dtype: DTypeLike,
    ) -> None:
        self.read = read
        self.source = source
        self.image = image
        self.sizes = sizes
        self.dtype = dtype

    def __call__(self, index: ChunkIndex) -> np.ndarray:
        shape = tuple(axis[i] for axis, i in zip(self.sizes, index, strict=True))
        return _guard(self.source, self.image, lambda: self.read(index), shape, self.dtype)


class _GuardedWhole:
    """The whole-array read under the same guard: zeros of the whole shape during an outage."""

    def __init__(
        self,
        read_whole: Callable[[], np.ndarray],
        source: Source,
        image: str,
        sizes: tuple[tuple[int, ...], ...],
        dtype: DTypeLike,
    ) -> None:
        self.read_whole = read_whole
        self.source = source
        self.image = image
        self.shape = tuple(sum(axis) for axis in sizes)
        self.dtype = dtype

    def __call__(self) -> np.ndarray:
        return _guard(self.source, self.image, self.read_whole, self.shape, self.dtype)


class _GuardedPlan:
    """Plans reads ahead only while the source is available."""

    def __init__(self, plan: PlanChunks, source: Source) -> None:
        self.plan = plan
        self.source = source

    def __call__(self, indices: list[ChunkIndex]) -> None:
        if self.source.available:
            self.plan(indices)


def chunked_array(
    name: str,
    chunks: Sequence[Sequence[int]],
    dtype: DTypeLike,
    read: ReadChunk,
    *,
    plan: PlanChunks | None = None,
    source: Source | None = None,
    image: str = "",
    read_whole: Callable[[], np.ndarray] | None = None,
) -> da.Array:
    """A dask array whose chunk at grid position ``index`` is ``read(index)``.

    ``chunks`` are dask's explicit chunk sizes per axis; ``name`` is the graph key and must be
    unique to this ``read``. ``plan``, when given, hears the chunk indices of each compute that
    needs more than one chunk, before any of them is read. ``read_whole``, when given, reads
    the whole array at once: ``compute()`` of the array itself uses it. With a ``source`` (the
    server's), an outage answers zeros and is reported once, naming ``image``. For the array to
    compute on a ``dask.distributed`` cluster, ``read`` must pickle.
    """
    sizes = tuple(tuple(int(n) for n in axis) for axis in chunks)
    if source is not None:
        read = _Guarded(read, source, image, sizes, dtype)
        plan = _GuardedPlan(plan, source) if plan is not None else None
        if read_whole is not None:
            read_whole = _GuardedWhole(read_whole, source, image, sizes, dtype)
    layer = _ChunkLayer(name, tuple(len(axis) for axis in sizes), read, plan)
    graph = HighLevelGraph({name: layer}, {name: set()})
    if read_whole is None:
        return da.Array(graph, name, chunks=sizes, dtype=dtype)
    array = _WholeRead(graph, name, chunks=sizes, dtype=dtype)  # type: ignore[no-untyped-call]
    array.read_whole = read_whole
    return array


class _WholeRead(da.Array):
    """A chunked array that computes itself with one read into its result.

    Only the array itself: anything made from it (a slice, a sum) is a plain dask array, and so
    is this one in another process or with options or a scheduler of its own (a
    ``dask.distributed`` client reads on its workers).
    """

    read_whole: Callable[[], np.ndarray] | None = None

    def compute(self, **kwargs: Any) -> Any:
        local = dask.base.get_scheduler(collections=[self]) is dask.threaded.get
        if kwargs or not local or self.read_whole is None:
            return super().compute(**kwargs)  # type: ignore[no-untyped-call]
        return self.read_whole()


class ReadAhead:
    """Wraps a chunk reader so that the chunks a compute will need are read ahead, together.

    Give :meth:`read` and :meth:`plan` to :func:`chunked_array`. Once a compute's chunks are
    planned and its first task reads, the first ``_READ_AHEAD_WINDOW`` of them are read at once
    and each dask task collects its own; a chunk nobody planned is read directly.
    ``read_many``, when given, reads a batch of chunks in one call (a store that fetches a
    region's chunks concurrently does better with one call than with many): the planned chunks
    are cut into batches in index order, and a task that asks for a planned chunk not yet under
    way starts its whole batch. dask's order is its own (it may go through the planes
    backwards), so batches follow the tasks' demand rather than wait in line. It pickles as its
    readers alone: what is in flight belongs to this process.
    """

    def __init__(
        self,
        read: ReadChunk,
        read_many: Callable[[list[ChunkIndex]], list[np.ndarray]] | None = None,
    ) -> None:
        self._read = read
        self._read_many = read_many
        self._lock = threading.Lock()
        self._pending: dict[ChunkIndex, tuple[float, Future[np.ndarray]]] = {}
        #: Planned chunks not yet under way, in index order, each with the batch it belongs to.
        self._planned: dict[ChunkIndex, list[ChunkIndex]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadAhead, (self._read, self._read_many))

    def read(self, index: ChunkIndex) -> np.ndarray:
        with self._lock:
            entry = self._pending.pop(index, None)
            batch = self._planned.pop(index, None)
            if entry is None and batch is not None and len(batch) > 1:
                self._start(batch)  # this task is first to ask: its neighbours come along
                entry = self._pending.pop(index)
            if entry is not None or batch is not None:  # a planned compute is reading
                self._top_up()
        if entry is not None:
            return entry[1].result()
        return self._read(index)

    def plan(self, indices: Iterable[ChunkIndex]) -> None:
        """The next compute needs ``indices``: they are read ahead once it reads the first.

        Not before: napari's dask cache hands a compute the chunks it holds in place of their
        tasks, after the graph was planned, so a plane seen before would be fetched again for
        nothing (every chunk of it, on every revisit).
        """
        now = time.monotonic()
        with self._lock:
            for index, (started, future) in list(self._pending.items()):
                if now - started > _READ_AHEAD_TTL:  # planned by a compute that failed
                    future.cancel()
                    del self._pending[index]
            ordered = [index for index in sorted(indices) if index not in self._pending]
            size = _READ_AHEAD_WINDOW // 2 if self._read_many else 1
            self._planned = {}
            for start in range(0, len(ordered), size):
                batch = ordered[start : start + size]
                self._planned.update(dict.fromkeys(batch, batch))

    def _top_up(self) -> None:
        while self._planned and len(self._pending) < _READ_AHEAD_WINDOW:
            self._start(next(iter(self._planned.values())))

    def _start(self, batch: list[ChunkIndex]) -> None:
        """Read ``batch`` (a planned one) in the background: one call, or one chunk."""
        executor = _read_ahead_executor()
        now = time.monotonic()
        for index in batch:
            self._planned.pop(index, None)
        if len(batch) == 1:
            self._pending[batch[0]] = (now, executor.submit(self._read, batch[0]))
            return
        futures: list[Future[np.ndarray]] = [Future() for _ in batch]
        for index, future in zip(batch, futures, strict=True):
            self._pending[index] = (now, future)
        executor.submit(self._batch, batch, futures)

    def _batch(self, batch: list[ChunkIndex], futures: list[Future[np.ndarray]]) -> None:
        assert self._read_many is not None
        try:
            chunks = self._read_many(batch)
        except BaseException as exc:
            for future in futures:
                future.set_exception(exc)
            return
        for future, chunk in zip(futures, chunks, strict=True):
            future.set_result(chunk)
