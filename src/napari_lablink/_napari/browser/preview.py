"""What the browser learns by opening a listed image: a thumbnail and the facts a listing lacks.

Opening reads metadata only; the thumbnail then reads one plane of the smallest pyramid level
(the first t, the middle z, up to three channels in their colours), so it costs a few small
chunks even for a large image. Both run in the browser's background jobs, never on the Qt thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_lablink.client.models import RemoteImage
from napari_lablink.client.uri import parse_uri

__all__ = ["Preview", "preview"]

#: The thumbnail's longest side in pixels.
SIZE = 64
#: Colours of composited channels that bring none (the first three of napari's defaults).
_DEFAULT_COLORS = ((1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, 1.0, 1.0))
_GRAY = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Preview:
    """A thumbnail (RGB uint8, longest side :data:`SIZE`) and the image's facts."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    dtype: str
    channels: tuple[str, ...]
    pixel_size: dict[str, float] = field(default_factory=dict)
    levels: int = 1


def preview(image: RemoteImage, uri: str) -> Preview:
    """The preview of ``image``, as opened from ``uri`` (whose ``channels`` option, if any,
    picks the channels shown)."""
    names = tuple(c.name for c in image.channels)
    return Preview(
        thumbnail=_thumbnail(image, _picked(uri, names)),
        shape=image.shape,
        dims=image.dims,
        dtype=str(image.dtype),
        channels=names,
        pixel_size=dict(image.pixel_size),
        levels=len(image.levels),
    )


def _picked(uri: str, names: tuple[str, ...]) -> list[int]:
    """Indices of the channels to composite: those the URI names, else the first three."""
    wanted = parse_uri(uri).option("channels")
    if wanted:
        chosen = [names.index(n) for n in wanted.split(",") if n in names]
        if chosen:
            return chosen[:3]
    return list(range(min(3, len(names) or 1)))


def _thumbnail(image: RemoteImage, channels: list[int]) -> np.ndarray:
    level = image.levels[-1]
    dims = image.dims
    index: list[object] = []
    for dim, n in zip(dims, level.shape, strict=True):
        if dim == "z":
            index.append(n // 2)
        elif dim == "t":
            index.append(0)
        else:
            index.append(slice(None))
    plane = level[tuple(index)]
    kept = [d for d in dims if d not in ("t", "z")]
    # Stride down before reading: at most a few times the thumbnail's size per axis.
    y, x = level.shape[dims.index("y")], level.shape[dims.index("x")]
    step = max(1, max(y, x) // SIZE)
    if image.is_rgb and "c" in kept:
        rgb = np.moveaxis(np.asarray(plane[:3, ::step, ::step]), 0, -1)
        return _to_uint8(rgb.astype(float))
    if "c" in kept:
        stack = np.asarray(plane[channels, ::step, ::step]).astype(float)
        colors = [
            (image.channels[c].color if c < len(image.channels) else None)
            or (_GRAY if len(channels) == 1 else _DEFAULT_COLORS[i % 3])
            for i, c in enumerate(channels)
        ]
    else:
        stack = np.asarray(plane[::step, ::step]).astype(float)[None]
        colors = [_GRAY]
    rgb = np.zeros((*stack.shape[1:], 3))
    for values, color in zip(_normalised(stack), colors, strict=True):
        rgb += values[..., None] * np.asarray(color)[None, None, :]
    return _to_uint8(np.clip(rgb, 0.0, 1.0) * 255.0)


def _normalised(stack: np.ndarray) -> np.ndarray:
    """Each plane stretched between its 1st and 99.5th percentiles (sparse counts stay visible)."""
    out = np.zeros_like(stack)
    for i, values in enumerate(stack):
        low, high = np.percentile(values, [1.0, 99.5])
        if high > low:
            out[i] = np.clip((values - low) / (high - low), 0.0, 1.0)
    return out


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """RGB as uint8; values beyond 255 (a 16-bit RGB image) are scaled down together."""
    if rgb.size and rgb.max() > 255:
        rgb = 255.0 * rgb / float(rgb.max())
    return np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8))
