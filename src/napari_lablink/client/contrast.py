"""Contrast limits for channels the server gives none for, from a cheap sample of the pixels.

Without limits napari either reads the data on the Qt thread or falls back to the dtype's range,
which pins a 12-bit camera's sliders to the left of 0..65535. One plane of the smallest pyramid
level (the middle of the stack, where napari starts) is enough to place them, and never costs a
full-resolution read of more than that plane.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_lablink.client.models import Channel, RemoteImage

__all__ = ["sample_plane", "with_contrast"]


def sample_plane(image: RemoteImage) -> da.Array:
    """The middle plane of the smallest level, every channel kept: ``(c, y, x)`` or ``(y, x)``."""
    level = image.levels[-1]
    index = tuple(
        slice(None) if dim in ("c", "y", "x") else n // 2
        for dim, n in zip(image.dims, level.shape, strict=True)
    )
    plane: da.Array = level[index]
    return plane


def _limits(plane: np.ndarray) -> tuple[float, float]:
    finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low, low + 1.0)


def with_contrast(image: RemoteImage) -> RemoteImage:
    """``image`` with contrast limits for every channel, sampled where the server gave none.

    Labels and RGB images keep theirs (napari does not stretch them).
    """
    if image.is_labels or image.is_rgb:
        return image
    count = image.shape[0] if "c" in image.dims else 1
    channels = image.channels or [Channel(name=f"Channel {i}") for i in range(count)]
    missing = [i for i, c in enumerate(channels) if c.contrast_limits is None]
    if not missing:
        return image
    plane = sample_plane(image)
    planes = np.asarray((plane[missing] if "c" in image.dims else plane[np.newaxis]).compute())
    sampled = dict(zip(missing, (_limits(p) for p in planes), strict=True))
    updated = [
        c.model_copy(update={"contrast_limits": sampled[i]}) if i in sampled else c
        for i, c in enumerate(channels)
    ]
    return image.model_copy(update={"channels": updated})
