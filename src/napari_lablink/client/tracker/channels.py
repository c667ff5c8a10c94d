"""Channel pixels of the MIBItracker: 16-bit PNGs in, PNG or TIFF files out, lazy dask stacks.

The tracker serves each channel as a 16-bit grayscale PNG behind a signed URL and accepts new
channels as PNG or TIFF files named after the channel. A whole image is a stack of such channels,
so the lazy array has one chunk per channel; a per-image cache makes sure that napari, dask and
repeated computes never download the same channel twice, even when they ask at the same moment.
"""

from __future__ import annotations

import functools
import io
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Executor, Future

import dask.array as da
import imagecodecs
import numpy as np
import tifffile

from napari_lablink.client.errors import ChannelDataError
from napari_lablink.client.lazy import chunked_array

__all__ = ["ChannelCache", "channel_file", "channel_stack", "decode_png"]

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


class ChannelCache:
    """Each channel of one image, fetched at most once.

    Concurrent requests for a channel that is being fetched wait for that fetch instead of
    starting another; a failed fetch is forgotten, so a later compute can try again. With an
    ``executor``, :meth:`prefetch` starts several channels' downloads at once, so they overlap
    however few threads the caller (dask) computes with.
    """

    def __init__(
        self, fetch: Callable[[str], np.ndarray], executor: Executor | None = None
    ) -> None:
        self._fetch = fetch
        self._executor = executor
        self._lock = threading.Lock()
        self._channels: dict[str, Future[np.ndarray]] = {}

    def get(self, name: str) -> np.ndarray:
        with self._lock:
            future = self._channels.get(name)
            owner = future is None
            if owner:
                future = self._channels[name] = Future()
        assert future is not None
        if not owner:
            try:
                return future.result()
            except CancelledError:  # its download was dropped (connection closed): try again
                self._forget(name, future)
                return self.get(name)
        try:
            plane = self._load(name)
        except BaseException as exc:
            self._forget(name, future)
            future.set_exception(exc)
            raise
        future.set_result(plane)
        return plane

    def prefetch(self, names: Iterable[str]) -> None:
        """Start downloading ``names`` in the background (those not fetched or under way)."""
        if self._executor is None:
            return
        started = []
        with self._lock:
            for name in names:
                if name in self._channels:
                    continue
                try:
                    future = self._executor.submit(self._load, name)
                except RuntimeError:  # the executor is shut down: the connection is closing
                    break
                self._channels[name] = future
                started.append((name, future))
        for name, future in started:
            future.add_done_callback(functools.partial(self._forget_failed, name))

    def block(self, name: str) -> np.ndarray:
        """The channel as the (1, y, x) chunk of a channel stack."""
        return self.get(name)[np.newaxis]

    def _load(self, name: str) -> np.ndarray:
        plane = self._fetch(name)
        plane.flags.writeable = False  # shared by every compute: nobody may change it
        return plane

    def _forget_failed(self, name: str, future: Future[np.ndarray]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._forget(name, future)

    def _forget(self, name: str, future: Future[np.ndarray]) -> None:
        with self._lock:
            if self._channels.get(name) is future:
                del self._channels[name]


def channel_stack(cache: ChannelCache, names: Sequence[str], shape: tuple[int, int]) -> da.Array:
    """A lazy (c, y, x) uint16 stack with one chunk per channel, each read through ``cache``.

    Before a compute, dask says which channels it needs, so the cache can download them at once.
    """
    return chunked_array(
        f"mibi-channels-{uuid.uuid4().hex}",
        ((1,) * len(names), (shape[0],), (shape[1],)),
        np.uint16,
        lambda index: cache.block(names[index[0]]),
        plan=lambda indices: cache.prefetch(names[index[0]] for index in indices),
    )
