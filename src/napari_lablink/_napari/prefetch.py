"""The planes beside the one on screen, read while the user looks at it.

napari slices on its Qt thread unless its experimental asynchronous slicing is on, so every step
of a slider through a remote stack waited there for the server. After each step, the plane one
step further along the axis that moved (and then the one behind) is read in the background into
napari's dask cache, for every visible layer napari-lablink opened; the next step finds its
plane in memory and waits on nothing. A step taken before those reads are done drops the reads
not yet started. In a 3-D view a neighbour is a whole volume, too much to read on speculation.
With napari's dask cache turned off there is nowhere to keep a plane, and nothing is read ahead.

The reads hand napari's cache to dask for their own compute only: registering it globally (as
``with cache:`` does) would race with napari's slicing, which registers and unregisters it around
each of its computes on other threads.
"""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import dask
import numpy as np
from dask.callbacks import normalize_callback
from napari.layers import Image, Labels, Layer
from napari.utils import resize_dask_cache

from napari_lablink._napari.inserting import window_closed

if TYPE_CHECKING:
    import dask.array as da
    import napari

__all__ = ["follow", "pending_prefetch", "planes_beside"]

log = logging.getLogger(__name__)

#: Reads of neighbouring planes at once, across viewers: each mostly waits on the network.
_READERS = 2

_executor: ThreadPoolExecutor | None = None
_followers: dict[int, _Follower] = {}
_running = 0
_running_lock = threading.Lock()


def follow(viewer: napari.Viewer) -> None:
    """Read ahead around every slider step of ``viewer`` (once per viewer; Qt thread), starting
    with the planes beside the current one."""
    follower = _followers.get(id(viewer))
    if follower is None or follower.viewer is not viewer:
        follower = _Follower(viewer)
        _followers[id(viewer)] = follower
        weakref.finalize(viewer, _followers.pop, id(viewer), None)
    follower.stepped()


def pending_prefetch() -> bool:
    """Whether planes are still being read ahead (for tests and scripts)."""
    return _running > 0


def planes_beside(viewer: napari.Viewer, direction: int = 1) -> list[da.Array]:
    """The planes one step either side of the current one along the axis last moved, nearest in
    ``direction`` first, of every visible layer napari-lablink opened (lazy; nothing read). None
    in a 3-D view."""
    dims = viewer.dims
    axis = dims.last_used
    if dims.ndisplay != 2 or axis in dims.displayed or dims.nsteps[axis] <= 1:
        return []  # in 3-D a neighbour is a whole volume: too much to read on speculation
    here = dims.current_step[axis]
    steps = [here + direction, here - direction]
    regions = []
    for step in steps:
        if not 0 <= step < dims.nsteps[axis]:
            continue
        point = list(dims.point)
        point[axis] = dims.range[axis].start + step * dims.range[axis].step
        for layer in viewer.layers:
            if _remote(layer):
                region = _plane(layer, point, dims.displayed)
                if region is not None:
                    regions.append(region)
    return regions


class _Follower:
    """Reads ahead for one viewer; a newer step makes the reads of older ones moot."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self._viewer = weakref.ref(viewer)
        self._generation = 0
        self._last: tuple[int, ...] = tuple(viewer.dims.current_step)
        viewer.dims.events.current_step.connect(self.stepped)

    @property
    def viewer(self) -> napari.Viewer | None:
        return self._viewer()

    def stepped(self, _event: object = None) -> None:
        viewer = self._viewer()
        if viewer is None or window_closed(viewer):
            if viewer is not None:
                viewer.dims.events.current_step.disconnect(self.stepped)
            return
        step = tuple(viewer.dims.current_step)
        axis = viewer.dims.last_used
        moved = step[axis] - self._last[axis] if len(self._last) == len(step) else 0
        self._last = step
        self._generation += 1
        if not _cache_on():
            return
        regions = planes_beside(viewer, -1 if moved < 0 else 1)
        if regions:
            global _running
            with _running_lock:
                _running += 1
            _pool().submit(self._read, self._generation, regions)

    def _read(self, generation: int, regions: list[da.Array]) -> None:
        global _running
        try:
            for region in regions:
                if generation != self._generation:  # the user has moved on
                    return
                try:
                    _into_cache(region)
                except Exception as exc:  # a plane not read ahead is read when shown
                    log.debug("reading ahead failed: %s", exc)
        finally:
            with _running_lock:
                _running -= 1


def _remote(layer: Layer) -> bool:
    """A visible image or labels layer that napari-lablink opened, over lazy data."""
    if not isinstance(layer, Image | Labels) or not layer.visible:
        return False
    if not (layer.metadata or {}).get("lablink"):
        return False
    data = layer.data[-1] if layer.multiscale else layer.data
    return dask.is_dask_collection(data)


def _plane(layer: Layer, point: list[float], displayed: tuple[int, ...]) -> da.Array | None:
    """The part of ``layer`` napari would slice at world ``point``: the whole plane, or for a
    pyramid the region on screen at the level shown."""
    ndim = layer.ndim
    offset = len(point) - ndim
    shown = {d - offset for d in displayed if d >= offset}
    position = np.asarray(layer.world_to_data(point), dtype=float)[-ndim:]
    if layer.multiscale:
        level = layer.data_level
        array = layer.data[level]
        factors = np.asarray(layer.downsample_factors[level], dtype=float)
        corners = np.asarray(layer.corner_pixels)
    else:
        array, factors, corners = layer.data, np.ones(ndim), None
    index: list[int | slice] = []
    for i in range(ndim):
        if i in shown:
            on_screen = slice(None) if corners is None else slice(corners[0, i], corners[1, i] + 1)
            index.append(on_screen)
            continue
        k = int(np.round(position[i] / factors[i]))
        if not 0 <= k < array.shape[i]:
            return None
        index.append(k)
    region: da.Array = array[tuple(index)]
    return region


def _into_cache(region: da.Array) -> None:
    """Compute ``region`` with napari's dask cache keeping its chunks, as napari's slicing does
    (no task fusion, or the chunks would be cached under other names)."""
    cache = resize_dask_cache()
    with dask.config.set({"optimization.fuse.active": False}):
        dask.compute(region, callbacks=[normalize_callback(cache)])


def _cache_on() -> bool:
    return bool(resize_dask_cache().cache.available_bytes > 0)


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="lablink-ahead")
    return _executor
