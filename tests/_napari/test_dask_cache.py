"""napari's dask cache with computes overlapping in two threads (opening worker and Qt thread)."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
from dask.cache import Cache
from napari.utils import _dask_utils

import napari_lablink._napari  # noqa: F401  (mends the cache on import)
from napari_lablink._napari.dask_cache import make_dask_cache_thread_safe


def test_a_compute_finishing_leaves_another_threads_bookkeeping_alone() -> None:
    """dask calls the hooks from the computing thread: a finish in one thread used to wipe the
    start times of a task still running in the other (a KeyError out of dask/cache.py)."""
    cache = _dask_utils.resize_dask_cache(2**24)
    assert type(cache) is not Cache  # mended on import
    started, finished = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_compute() -> None:
        try:
            cache._start({})
            cache._pretask("b", {}, {})
            started.set()
            finished.wait(10)
            cache._posttask("b", np.zeros(4), {}, {"dependencies": {"b": set()}}, 0)
            cache._finish({}, {}, False)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_compute)
    thread.start()
    assert started.wait(10)
    cache._start({})
    cache._pretask("a", {}, {})
    cache._posttask("a", np.ones(4), {}, {"dependencies": {"a": set()}}, 0)
    cache._finish({}, {}, False)  # empties this thread's start times only
    finished.set()
    thread.join(10)
    assert errors == []
    assert "b" in cache.cache.data  # what is cached is shared


def test_overlapping_slices_of_the_same_array_compute_in_both_threads() -> None:
    data = da.from_array(np.arange(64 * 64).reshape(64, 64), chunks=8)
    cache = _dask_utils.resize_dask_cache(2**24)
    results: list[int] = []
    errors: list[BaseException] = []

    def read(times: int) -> None:
        try:
            for _ in range(times):
                with cache:
                    results.append(int(data[::2].sum().compute()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(30,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert set(results) == {int(np.arange(64 * 64).reshape(64, 64)[::2].sum())}


def test_a_chunk_both_threads_computed_is_stored_once_and_the_cache_still_shrinks() -> None:
    """Two overlapping computes of the same chunk used to count its bytes twice: the store
    then never got below a smaller size, and resizing it looped for ever."""
    cache = _dask_utils.resize_dask_cache(2**24)
    cache.empty()
    value = np.ones(1024)
    state = {"dependencies": {"k": set()}}
    for _ in range(2):  # the second put comes from the other compute
        cache._pretask("k", {}, state)
        cache._posttask("k", value, {}, state, 0)
    assert list(cache.cache.data) == ["k"]
    assert cache.cache.total_bytes == cache.cache.nbytes["k"]
    _dask_utils.resize_dask_cache(0)
    assert cache.cache.total_bytes == 0 and not cache.cache.data
    _dask_utils.resize_dask_cache(2**24)


def test_mending_twice_changes_nothing() -> None:
    cache = _dask_utils._DASK_CACHE
    kind = type(cache)
    make_dask_cache_thread_safe()
    assert type(_dask_utils._DASK_CACHE) is kind
