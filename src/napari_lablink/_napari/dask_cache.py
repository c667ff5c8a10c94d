"""napari's opportunistic dask cache, made safe for computes that run at the same time.

napari keeps one ``dask.cache.Cache`` for every layer. Its bookkeeping (when each task started,
how long its inputs took) is one dict per cache, and every compute that finishes empties it.
dask calls those hooks from the thread that runs the compute, so when two computes overlap (a
plane read in the opening worker, napari's asynchronous slicing, the Qt thread moving a slider)
the first one to finish wipes the other's start times, and the other fails with a ``KeyError``
out of ``dask/cache.py``. Keeping that bookkeeping per thread fixes it; what is cached stays
shared, which is the point of the cache. The store underneath (``cachey``) is not thread-safe
either: two overlapping computes of the same chunk both put it, its byte count drifts above
what it holds, and the next resize to a smaller size never ends. So what touches the store goes
through one lock, and a chunk already cached is not put again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dask.cache import Cache

__all__ = ["make_dask_cache_thread_safe"]

log = logging.getLogger(__name__)


class _PerThreadCache(Cache):
    """A dask ``Cache`` whose per-compute bookkeeping belongs to the computing thread."""

    _computes = threading.local()
    _store_lock = threading.RLock()

    @property
    def starttimes(self) -> dict[Any, float]:
        return self._bookkeeping("starttimes")

    @starttimes.setter
    def starttimes(self, value: dict[Any, float]) -> None:
        self._computes.starttimes = value

    @property
    def durations(self) -> dict[Any, float]:
        return self._bookkeeping("durations")

    @durations.setter
    def durations(self, value: dict[Any, float]) -> None:
        self._computes.durations = value

    def _start(self, dsk: Any) -> None:
        with self._store_lock:
            super()._start(dsk)

    def _posttask(self, key: Any, value: Any, dsk: Any, state: Any, id: Any) -> None:
        with self._store_lock:
            if key in self.cache.data:  # an overlapping compute cached it already
                return
            super()._posttask(key, value, dsk, state, id)

    def empty(self) -> None:
        """Drop every cached chunk (the store's own ``clear`` is not safe during a compute)."""
        with self._store_lock:
            self.cache.clear()

    def _bookkeeping(self, name: str) -> dict[Any, float]:
        found: dict[Any, float] | None = getattr(self._computes, name, None)
        if found is None:
            found = {}
            setattr(self._computes, name, found)
        return found


def make_dask_cache_thread_safe() -> None:
    """Give napari's dask cache per-thread bookkeeping (once; what it holds is kept)."""
    try:
        from napari.utils import _dask_utils
    except ImportError:  # a napari without the cache has nothing to mend
        return
    cache = getattr(_dask_utils, "_DASK_CACHE", None)
    if type(cache) is Cache:
        cache.__class__ = _PerThreadCache
    elif not isinstance(cache, _PerThreadCache):
        log.debug("napari's dask cache is a %s; left as it is", type(cache).__name__)
