"""The one lazy-array builder: a chunk per read, and the chunks of a compute planned together."""

from __future__ import annotations

import threading
import time

import cloudpickle
import dask.array as da
import numpy as np
import pytest

from napari_lablink.client.lazy import ChunkIndex, ReadAhead, chunked_array

DATA = np.arange(2 * 6 * 10, dtype=np.int32).reshape(2, 6, 10)
CHUNKS = ((1, 1), (4, 2), (5, 5))


def region(index: ChunkIndex) -> tuple[slice, ...]:
    starts = [[0, 1], [0, 4], [0, 5]]
    return tuple(
        slice(starts[axis][i], starts[axis][i] + CHUNKS[axis][i]) for axis, i in enumerate(index)
    )


def test_each_chunk_is_what_read_returns_for_its_index() -> None:
    seen: list[ChunkIndex] = []

    def read(index: ChunkIndex) -> np.ndarray:
        seen.append(index)
        return DATA[region(index)]

    lazy = chunked_array("lazy-values", CHUNKS, DATA.dtype, read)
    assert lazy.chunks == CHUNKS and lazy.dtype == DATA.dtype
    np.testing.assert_array_equal(lazy.compute(), DATA)
    np.testing.assert_array_equal(lazy[1, 3:6, 4:7].compute(), DATA[1, 3:6, 4:7])
    assert seen.count((0, 0, 0)) == 1 and len(seen) == 8 + 4


def test_plan_hears_the_chunks_of_a_compute_before_any_is_read() -> None:
    events: list[object] = []

    def read(index: ChunkIndex) -> np.ndarray:
        events.append(index)
        return DATA[region(index)]

    lazy = chunked_array(
        "lazy-plan", CHUNKS, DATA.dtype, read, plan=lambda indices: events.append(sorted(indices))
    )
    lazy[0].compute(scheduler="synchronous")
    assert events[0] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    assert sorted(events[1:]) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    events.clear()
    lazy[1, 0, 0].compute()  # one chunk: nothing to plan
    assert events == [(1, 0, 0)]


def test_read_ahead_reads_each_planned_chunk_once_in_parallel() -> None:
    lock = threading.Lock()
    reads: list[ChunkIndex] = []
    active, most = 0, 0
    gate = threading.Barrier(4, timeout=10)  # passes only when four reads run at once

    def read(index: ChunkIndex) -> np.ndarray:
        nonlocal active, most
        with lock:
            reads.append(index)
            active += 1
            most = max(most, active)
        if len(reads) <= 4:
            gate.wait()
        with lock:
            active -= 1
        return DATA[region(index)]

    ahead = ReadAhead(read)
    lazy = chunked_array("lazy-ahead", CHUNKS, DATA.dtype, ahead.read, plan=ahead.plan)
    np.testing.assert_array_equal(lazy[0].compute(scheduler="synchronous"), DATA[0])
    assert sorted(reads) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)] and most >= 4


def test_a_failed_read_ahead_fails_its_compute_and_the_next_compute_reads_again() -> None:
    failures = {(0, 1, 1)}

    def read(index: ChunkIndex) -> np.ndarray:
        if index in failures:
            failures.discard(index)
            raise OSError("the server dropped the connection")
        return DATA[region(index)]

    ahead = ReadAhead(read)
    lazy = chunked_array("lazy-retry", CHUNKS, DATA.dtype, ahead.read, plan=ahead.plan)
    with pytest.raises(OSError, match="dropped"):
        lazy[0].compute(scheduler="synchronous")
    np.testing.assert_array_equal(lazy[0].compute(scheduler="synchronous"), DATA[0])


def test_a_batch_reader_gets_a_computes_chunks_in_few_calls() -> None:
    batches: list[list[ChunkIndex]] = []

    def read_many(indices: list[ChunkIndex]) -> list[np.ndarray]:
        batches.append(list(indices))
        return [DATA[region(index)] for index in indices]

    def read(index: ChunkIndex) -> np.ndarray:
        raise AssertionError("every chunk of this compute was planned")

    ahead = ReadAhead(read, read_many)
    lazy = chunked_array("lazy-batch", CHUNKS, DATA.dtype, ahead.read, plan=ahead.plan)
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), DATA)
    assert batches == [sorted(index for batch in batches for index in batch)]  # one call of 8


def test_a_failed_batch_fails_its_compute() -> None:
    def read_many(indices: list[ChunkIndex]) -> list[np.ndarray]:
        raise OSError("the server dropped the connection")

    ahead = ReadAhead(lambda index: DATA[region(index)], read_many)
    lazy = chunked_array("lazy-batch-fail", CHUNKS, DATA.dtype, ahead.read, plan=ahead.plan)
    with pytest.raises(OSError, match="dropped"):
        lazy.compute(scheduler="synchronous")


def test_a_task_asking_for_a_planned_chunk_starts_its_whole_batch_at_once() -> None:
    """dask takes the chunks in an order of its own: the batch a task asks for comes first."""
    batches: list[list[ChunkIndex]] = []
    gate = threading.Event()

    def read_many(indices: list[ChunkIndex]) -> list[np.ndarray]:
        batches.append(list(indices))
        if indices[0] == (0,):
            gate.wait(10)  # the read-ahead of the first batches is still under way
        return [np.full(1, index[0]) for index in indices]

    def read(index: ChunkIndex) -> np.ndarray:
        raise AssertionError("every chunk asked for was planned")

    ahead = ReadAhead(read, read_many)
    ahead.plan([(i,) for i in range(64)])
    assert ahead.read((63,))[0] == 63  # beyond the read-ahead window, so not yet under way
    assert [(48,), (63,)] in ([b[0], b[-1]] for b in batches)
    gate.set()
    assert [ahead.read((i,))[0] for i in range(63)] == list(range(63))
    assert sorted(i for batch in batches for i in batch) == [(i,) for i in range(64)]


def test_computing_the_whole_array_is_one_read_and_anything_else_reads_chunks() -> None:
    reads: list[object] = []

    def read(index: ChunkIndex) -> np.ndarray:
        reads.append(index)
        return DATA[region(index)]

    def read_whole() -> np.ndarray:
        reads.append("whole")
        return DATA.copy()

    lazy = chunked_array("lazy-whole", CHUNKS, DATA.dtype, read, read_whole=read_whole)
    np.testing.assert_array_equal(lazy.compute(), DATA)
    np.testing.assert_array_equal(np.asarray(lazy), DATA)
    assert reads == ["whole", "whole"]
    reads.clear()
    np.testing.assert_array_equal(lazy[1].compute(), DATA[1])
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), DATA)
    assert "whole" not in reads and len(reads) == 4 + 8
    copy = cloudpickle.loads(cloudpickle.dumps(lazy))  # what dask.distributed sends
    assert type(copy) is da.Array  # elsewhere it reads by chunks, as its workers should
    np.testing.assert_array_equal(copy.compute(), DATA)


def test_a_compute_served_from_a_dask_cache_reads_nothing_ahead() -> None:
    """napari's opportunistic cache swaps cached chunks in after the graph was planned; the
    read-ahead must not fetch a plane seen before again (it did, every chunk, every revisit)."""
    from dask.cache import Cache

    reads: list[ChunkIndex] = []
    lock = threading.Lock()

    def read(index: ChunkIndex) -> np.ndarray:
        with lock:
            reads.append(index)
        return DATA[region(index)]

    ahead = ReadAhead(read)
    lazy = chunked_array("lazy-cached", CHUNKS, DATA.dtype, ahead.read, plan=ahead.plan)
    with Cache(1e8):
        np.testing.assert_array_equal(lazy[0].compute(), DATA[0])
        assert sorted(reads) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
        reads.clear()
        np.testing.assert_array_equal(lazy[0].compute(), DATA[0])
    time.sleep(0.3)  # a read started ahead would have begun by now
    assert reads == []
