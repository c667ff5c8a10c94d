"""Channel pixels of the MIBItracker: 16-bit PNGs in, PNG or TIFF files out, lazy dask stacks.

The tracker serves each channel as a 16-bit grayscale PNG behind a signed URL and accepts new
channels as PNG or TIFF files named after the channel. A whole image is a stack of such channels,
so the lazy array has one chunk per channel; a cache per connection, bounded in bytes and shared
by every open of an image, makes sure that napari, dask and repeated computes do not download a
kept channel twice, even when they ask at the same moment.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Executor, Future
from functools import partial

import dask.array as da
import imagecodecs
import numpy as np
import tifffile

from napari_lablink.client.errors import ChannelDataError
from napari_lablink.client.lazy import chunked_array
from napari_lablink.client.outages import Source

__all__ = ["ChannelCache", "ImageChannels", "channel_file", "channel_stack", "decode_png"]

_PNG_SUFFIX = ".png"
_TIFF_SUFFIXES = (".tif", ".tiff")


def decode_png(payload: bytes, what: str) -> np.ndarray:
    """The 2-D uint16 plane of a channel PNG; ``what`` names it in errors."""
    try:
        plane = np.asarray(imagecodecs.png_decode(payload))
    except Exception as exc:  # imagecodecs raises its own error classes per codec
        raise ChannelDataError(
            f"The tracker sent {what} as something that is not a PNG image ({type(exc).__name__})",
            hint="The server may be misconfigured; ask its administrator",
        ) from None
    if plane.ndim == 3 and plane.shape[2] == 1:
        plane = plane[..., 0]
    if plane.ndim != 2:
        raise ChannelDataError(
            f"The tracker sent {what} as a PNG of shape {plane.shape}, not a grayscale plane",
            hint="The server may be misconfigured; ask its administrator",
        )
    return plane if plane.dtype == np.uint16 else plane.astype(np.uint16)


def channel_file(data: np.ndarray, name: str) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of an in-memory plane uploaded as channel ``name``.

    ``name`` may carry the format (``CD45.png``, ``mask.tiff``); without one, integer data
    becomes a 16-bit PNG (the tracker's own channel format) and anything else a float32 TIFF.
    The tracker keeps float channels as float32: wider floats that float32 cannot hold exactly
    are refused rather than rounded unseen.
    """
    plane = np.asarray(data)
    if plane.ndim == 3 and 1 in (plane.shape[0], plane.shape[2]):
        plane = plane.reshape(plane.shape[1:] if plane.shape[0] == 1 else plane.shape[:2])
    if plane.ndim != 2:
        raise ChannelDataError(f"Channel {name!r} has shape {plane.shape}, not a 2-D plane")
    if name.lower().endswith((_PNG_SUFFIX, *_TIFF_SUFFIXES)):
        filename = name
    else:
        filename = name + (_PNG_SUFFIX if plane.dtype.kind in "biu" else ".tiff")
    if filename.lower().endswith(_PNG_SUFFIX):
        counts = _as_counts(plane, name)
        return filename, bytes(imagecodecs.png_encode(counts)), "image/png"
    buffer = io.BytesIO()
    stored = _as_float32(plane, name) if plane.dtype.kind == "f" else _as_counts(plane, name)
    tifffile.imwrite(buffer, stored)
    return filename, buffer.getvalue(), "image/tiff"


def _as_float32(plane: np.ndarray, name: str) -> np.ndarray:
    """``plane`` as float32, refusing values that float32 would change."""
    stored = plane.astype(np.float32)
    if plane.dtype.itemsize > 4 and not np.array_equal(stored, plane, equal_nan=True):
        changed = int(np.count_nonzero(stored != plane) - np.count_nonzero(np.isnan(plane)))
        raise ChannelDataError(
            f"Channel {name!r} is {plane.dtype} and the tracker stores float32: {changed} of "
            f"{plane.size} values would change",
            hint="Convert it yourself if float32 precision is enough (data.astype('float32')), "
            "or scale it into 0..65535 counts",
        )
    return stored


def _as_counts(plane: np.ndarray, name: str) -> np.ndarray:
    """``plane`` as uint16, refusing values a 16-bit grayscale PNG cannot hold exactly."""
    if plane.dtype == np.uint16:
        return np.ascontiguousarray(plane)
    if plane.dtype == np.bool_:
        return plane.astype(np.uint16)
    if plane.size:
        low, high = plane.min(), plane.max()
        if low < 0 or high > 65535:
            raise ChannelDataError(
                f"Channel {name!r} holds values {low}..{high}; a 16-bit PNG holds 0..65535",
                hint="Scale the data, or upload it as a TIFF (name it '<channel>.tiff')",
            )
        if plane.dtype.kind == "f" and not np.array_equal(plane, np.rint(plane)):
            raise ChannelDataError(
                f"Channel {name!r} holds fractional values, which a 16-bit PNG cannot hold",
                hint="Upload it as a TIFF (name it '<channel>.tiff')",
            )
    return plane.astype(np.uint16)


#: Decoded channels one connection keeps, over all its images and opens: memory stays flat
#: however many images are opened, closed and opened again (least recently used go first).
CACHE_BYTES = 512 * 2**20

#: Prefetched channels no compute collected by then were for a compute that failed.
_UNCOLLECTED_TTL = 120.0

_Key = tuple[str, str]  # (image id, channel name)


class ChannelCache:
    """The decoded channels of one connection's images, each fetched at most once while kept.

    Keyed by image and channel, so every open of an image shares its channels; bounded in bytes,
    least recently used out first. Concurrent requests for a channel that is being fetched wait
    for that fetch instead of starting another; a failed fetch is forgotten, so a later compute
    can try again. With an ``executor``, :meth:`prefetch` starts several channels' downloads at
    once, so they overlap however few threads the caller (dask) computes with.
    """

    def __init__(
        self,
        executor: Executor | None = None,
        max_bytes: int = CACHE_BYTES,
        *,
        key: str | None = None,
    ) -> None:
        self._executor = executor
        self.max_bytes = max_bytes
        self._key = key or uuid.uuid4().hex
        _caches[self._key] = self
        self._lock = threading.Lock()
        self._loading: dict[_Key, Future[np.ndarray]] = {}
        #: Downloads started ahead of a compute, with when, until the compute collects them.
        self._prefetched: dict[_Key, tuple[float, Future[np.ndarray]]] = {}
        self._kept: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self.nbytes = 0

    def __reduce__(self) -> tuple[object, ...]:
        # Arrays sent to dask.distributed workers bring the cache along as its key: each
        # process keeps its own (without prefetching; only the client plans computes).
        return (_cache_for, (self._key, self.max_bytes))

    def image(self, image_id: str, fetch: Callable[[str], np.ndarray]) -> ImageChannels:
        """The channels of image ``image_id``, fetched by name with ``fetch``."""
        return ImageChannels(self, image_id, fetch)

    def forget(self, image_id: str | None = None) -> None:
        """Drop the kept channels of ``image_id`` (of every image when None): they changed."""
        with self._lock:
            for key in [k for k in self._kept if image_id is None or k[0] == image_id]:
                self.nbytes -= self._kept.pop(key).nbytes
            for key in [k for k in self._prefetched if image_id is None or k[0] == image_id]:
                self._drop_prefetched(key)  # uncollected: may hold the old pixels

    def get(self, key: _Key, fetch: Callable[[str], np.ndarray]) -> np.ndarray:
        with self._lock:
            plane = self._kept.get(key)
            if plane is not None:
                self._kept.move_to_end(key)
                prefetched = self._prefetched.get(key)
                if prefetched is not None and prefetched[1].done():  # collected from here
                    self._drop_prefetched(key)
                return plane
            future = self._loading.get(key)
            owner = future is None
            if owner:
                future = self._loading[key] = Future()
        assert future is not None
        if not owner:
            try:
                plane = future.result()
            except CancelledError:  # its download was dropped (connection closed): try again
                self._forget(key, future)
                return self.get(key, fetch)
            self._forget(key, future)  # collected: from now on it is kept, or not
            return plane
        try:
            plane = self._load(key, fetch)
        except BaseException as exc:
            self._forget(key, future)
            future.set_exception(exc)
            raise
        future.set_result(plane)
        self._forget(key, future)
        return plane

    def prefetch(self, keys: Iterable[_Key], fetch: Callable[[str], np.ndarray]) -> None:
        """Start downloading ``keys`` in the background (those not kept or under way).

        A prefetched channel waits for its compute to collect it even when the cache has no
        room left for it, so a compute bigger than the cache downloads each channel once.
        """
        if self._executor is None:
            return
        started = []
        now = time.monotonic()
        with self._lock:
            for key, (when, future) in list(self._prefetched.items()):
                if future.done() and now - when > _UNCOLLECTED_TTL:  # its compute failed
                    self._drop_prefetched(key)
            for key in keys:
                if key in self._loading or key in self._kept:
                    continue
                try:
                    future = self._executor.submit(self._load, key, fetch)
                except RuntimeError:  # the executor is shut down: the connection is closing
                    break
                self._loading[key] = future
                self._prefetched[key] = (now, future)
                started.append((key, future))
        for key, future in started:
            future.add_done_callback(partial(self._forget_failed, key))

    def _load(self, key: _Key, fetch: Callable[[str], np.ndarray]) -> np.ndarray:
        plane = fetch(key[1])
        plane.flags.writeable = False  # shared by every compute: nobody may change it
        with self._lock:
            if plane.nbytes <= self.max_bytes and key not in self._kept:
                self._kept[key] = plane
                self.nbytes += plane.nbytes
                while self.nbytes > self.max_bytes:
                    _, dropped = self._kept.popitem(last=False)
                    self.nbytes -= dropped.nbytes
        return plane

    def _drop_prefetched(self, key: _Key) -> None:
        """Forget a prefetched download (with the lock held); a waiting compute keeps its own."""
        _, future = self._prefetched.pop(key)
        if self._loading.get(key) is future:
            del self._loading[key]

    def _forget_failed(self, key: _Key, future: Future[np.ndarray]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._forget(key, future)

    def _forget(self, key: _Key, future: Future[np.ndarray]) -> None:
        with self._lock:
            if self._loading.get(key) is future:
                del self._loading[key]
            if key in self._prefetched and self._prefetched[key][1] is future:
                del self._prefetched[key]


#: The caches alive in this process, by key: every array of a connection unpickled here shares one.
_caches: weakref.WeakValueDictionary[str, ChannelCache] = weakref.WeakValueDictionary()
_caches_lock = threading.Lock()


def _cache_for(key: str, max_bytes: int) -> ChannelCache:
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = ChannelCache(max_bytes=max_bytes, key=key)
        return cache


class ImageChannels:
    """One image's view of a :class:`ChannelCache`: channels by name."""

    def __init__(self, cache: ChannelCache, image_id: str, fetch: Callable[[str], np.ndarray]):
        self._cache = cache
        self._image_id = image_id
        self._fetch = fetch

    def get(self, name: str) -> np.ndarray:
        return self._cache.get((self._image_id, name), self._fetch)

    def prefetch(self, names: Iterable[str]) -> None:
        self._cache.prefetch(((self._image_id, name) for name in names), self._fetch)

    def block(self, name: str) -> np.ndarray:
        """The channel as the (1, y, x) chunk of a channel stack."""
        return self.get(name)[np.newaxis]


def channel_stack(
    cache: ImageChannels,
    names: Sequence[str],
    shape: tuple[int, int],
    *,
    source: Source | None = None,
    image: str = "",
) -> da.Array:
    """A lazy (c, y, x) uint16 stack with one chunk per channel, each read through ``cache``.

    Before a compute, dask says which channels it needs, so the cache can download them at once.
    ``source`` and ``image`` guard the reads against an outage (see
    :func:`~napari_lablink.client.lazy.chunked_array`).
    """
    return chunked_array(
        f"mibi-channels-{uuid.uuid4().hex}",
        ((1,) * len(names), (shape[0],), (shape[1],)),
        np.uint16,
        _ChannelBlocks(cache, tuple(names)),
        plan=lambda indices: cache.prefetch(names[index[0]] for index in indices),
        source=source,
        image=image,
    )


class _ChannelBlocks:
    """Reads the chunk at a grid index of a channel stack; a class, not a closure, so that it
    pickles (with its cache and session) for ``dask.distributed`` workers."""

    def __init__(self, cache: ImageChannels, names: tuple[str, ...]) -> None:
        self.cache = cache
        self.names = names

    def __call__(self, index: tuple[int, ...]) -> np.ndarray:
        return self.cache.block(self.names[index[0]])
