"""Reading a PIMS image: metadata from ``/info``, exact pixels from 16-bit PNG windows.

The real PIMS 1.0.0 differs from its documentation in ways that decide how pixels must be asked
for (docs/protocols/pims.md): window regions are full-resolution pixels unless the region names its
reference tier, windows that need resampling silently come back as 8-bit renderings, ``bits``
must be the image's significant bits, and only one channel per request is reliable. So every
dask chunk here is one window of one channel, one z and one t, addressed in the pixels of an
exact tier (:mod:`.tiers`), and every answer is checked for the dtype and shape asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dask.array as da
import httpx
import imagecodecs
import numpy as np
from dask.base import tokenize

from napari_lablink.client import outages
from napari_lablink.client.colors import parse_color
from napari_lablink.client.errors import (
    ConfigurationError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from napari_lablink.client.lazy import ReadAhead, chunked_array
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.pims.session import PimsSession, content_type
from napari_lablink.client.pims.tiers import Tier, exact_tiers
from napari_lablink.client.uri import RemoteURI

__all__ = ["decode_window", "open_image", "parse_info", "shape_and_names"]

log = logging.getLogger(__name__)

#: PNG carries at most 16 bits per sample, so these are the pixel types windows can return.
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


def parse_info(
    session: PimsSession, info: Any, path: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Tier]]:
    """(image, channels, exact tiers) of an ``info`` answer, checked."""
    try:
        image = info["image"]
        width, height = int(image["width"]), int(image["height"])
        int(image["n_channels"])
        channels = list(info.get("channels") or [])
        (spatial,) = [
            rep for rep in info.get("representations") or [] if rep.get("role") == "SPATIAL"
        ]
        tiers = exact_tiers(spatial["pyramid"]["tiers"])
    except (KeyError, TypeError, ValueError) as exc:
        raise session.transport.protocol_error(
            f"GET info did not describe an image with a SPATIAL pyramid ({exc!r})", path
        ) from None
    if not tiers or (tiers[0].width, tiers[0].height) != (width, height):
        raise session.transport.protocol_error(
            f"The SPATIAL pyramid does not start at the full size {width} x {height}", path
        )
    return image, channels, tiers


def shape_and_names(
    image: dict[str, Any], channel_items: list[dict[str, Any]]
) -> tuple[tuple[int, int, int, int, int], list[dict[str, Any]], list[str]]:
    """The (c, t, z, y, x) shape, one channel item per channel and the channels' names."""
    n_channels = int(image["n_channels"])
    shape = (
        n_channels,
        int(image.get("duration") or 1),
        int(image.get("depth") or 1),
        int(image["height"]),
        int(image["width"]),
    )
    items = _pad(channel_items, n_channels)
    names = [str(item.get("suggested_name") or f"Channel {i}") for i, item in enumerate(items)]
    return shape, items, names


def pixel_size(image: dict[str, Any]) -> dict[str, float]:
    return {
        dim: float(image[f"physical_size_{dim}"])
        for dim in ("z", "y", "x")
        if image.get(f"physical_size_{dim}")
    }


def open_image(session: PimsSession, uri: RemoteURI) -> RemoteImage:
    """The image file ``uri`` names, lazily: one dask level per exact tier."""
    path = uri.object_id
    if not path:
        raise ConfigurationError(
            f"{uri.without_options()} names no image file",
            server=session.label,
            hint=f"Use {uri.server}/upload-<id>/<file name>",
        )
    image, channel_items, tiers = parse_info(session, session.get_json(path, "info"), path)
    dtype = _DTYPES.get(str(image.get("pixel_type")))
    if dtype is None:
        raise ProtocolError(
            f"Pixel type {image.get('pixel_type')!r} cannot be read exactly: PIMS windows "
            "are PNG, which holds 8- or 16-bit samples only",
            server=session.label,
            obj=path,
            hint="Open the file with a local reader instead",
        )
    shape, items, names = shape_and_names(image, channel_items)
    n_channels = shape[0]
    samples = int(image.get("n_samples") or 1)
    rgb = dtype is np.uint8 and samples in (3, 4) and n_channels == samples
    bits = int(image.get("significant_bits") or np.dtype(dtype).itemsize * 8)
    reader = _WindowReader(session, path, np.dtype(dtype), bits, n_channels if rgb else 0)
    levels = [reader.level(tier, shape[:3]) for tier in tiers]
    limits = _contrast_limits(session, path, n_channels)
    channels = [
        Channel(
            name=name,
            color=parse_color(item.get("color")),
            contrast_limits=limits.get(i),
            emission_wavelength=item.get("emission_wavelength"),
            excitation_wavelength=item.get("excitation_wavelength"),
        )
        for i, (item, name) in enumerate(zip(items, names, strict=True))
    ]
    return RemoteImage(
        uri=str(uri.without_options()),
        name=path.rsplit("/", 1)[-1],
        dims=DIMS,
        levels=levels,
        pixel_size=pixel_size(image),
        channels=channels,
        is_rgb=rgb,
        server_metadata={"path": path, "image": image, "levels": [t.level for t in tiers]},
    )


def _contrast_limits(
    session: PimsSession, path: str, n_channels: int
) -> dict[int, tuple[float, float]]:
    """Per-channel intensity bounds from PIMS's histogram, without reading any pixel.

    Missing bounds cost only the contrast limits (napari then guesses), never the image.
    """
    try:
        body = session.get_json(path, "histogram/per-channels/bounds")
    except (NotFoundError, ServerError) as exc:
        log.warning("no histogram bounds for %s on %s: %s", path, session.label, exc)
        return {}
    items = body.get("items") if isinstance(body, dict) else body
    limits: dict[int, tuple[float, float]] = {}
    for item in items or []:
        try:
            channel, low, high = int(item["channel"]), item["minimum"], item["maximum"]
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= channel < n_channels and low is not None and high is not None:
            low, high = float(low), float(high)
            limits[channel] = (low, high if high > low else low + 1)
    return limits


class _WindowReader:
    """Builds one image's levels: dask arrays whose chunks are fetched as PIMS windows."""

    def __init__(
        self, session: PimsSession, path: str, dtype: np.dtype[Any], bits: int, rgb_samples: int
    ) -> None:
        self.session = session
        self.path = path
        self.dtype = dtype
        self.bits = bits
        #: RGB images are read all samples at once (exact, per docs/protocols/pims.md); 0 for
        #: other images.
        self.rgb_samples = rgb_samples

    def level(self, tier: Tier, ctz: tuple[int, int, int]) -> da.Array:
        n_c, n_t, n_z = ctz
        chunks_y, chunks_x = tier.chunks()
        c_chunks = (n_c,) if self.rgb_samples else (1,) * n_c
        chunks = (c_chunks, (1,) * n_t, (1,) * n_z, chunks_y, chunks_x)
        name = "pims-" + tokenize(
            self.session.uri.base_url, self.path, tier.level, self.rgb_samples
        )
        # Windows of one compute are fetched together, however few threads dask has: a PIMS
        # deployment serves them in parallel with several workers.
        ahead = ReadAhead(_TierWindows(self, tier.level, chunks_y, chunks_x))
        return chunked_array(
            name,
            chunks,
            self.dtype,
            ahead.read,
            plan=ahead.plan,
            source=outages.source(self.session.label),
            image=self.path.rsplit("/", 1)[-1],
        )

    def fetch(
        self,
        level: int,
        region: tuple[int, int, int, int],
        channel: int | None,
        z: int,
        t: int,
    ) -> np.ndarray:
        """One chunk, shaped (c, 1, 1, height, width)."""
        response = self.session.window(
            self.path, level, region, channel=channel, z=z, t=t, bits=self.bits
        )
        return decode_window(
            response,
            self.dtype,
            (region[2], region[3]),
            n_samples=1 if channel is not None else self.rgb_samples,
            fail=lambda what: self.session.transport.protocol_error(
                f"The window of level {level} at top {region[0]}, left {region[1]} {what}",
                self.path,
            ),
        )[:, None, None]


class _TierWindows:
    """Reads the chunk at a grid index of one tier; a class, not a closure, so that it pickles
    (with its reader and session) for ``dask.distributed`` workers."""

    def __init__(
        self,
        reader: _WindowReader,
        level: int,
        chunks_y: tuple[int, ...],
        chunks_x: tuple[int, ...],
    ) -> None:
        self.reader = reader
        self.level = level
        self.chunks_y = chunks_y
        self.chunks_x = chunks_x
        self._starts_y = np.cumsum((0, *chunks_y[:-1])).tolist()
        self._starts_x = np.cumsum((0, *chunks_x[:-1])).tolist()

    def __call__(self, index: tuple[int, ...]) -> np.ndarray:
        ci, t, z, yi, xi = index
        region = (self._starts_y[yi], self._starts_x[xi], self.chunks_y[yi], self.chunks_x[xi])
        channel = None if self.reader.rgb_samples else ci
        return self.reader.fetch(self.level, region, channel, z, t)


def decode_window(
    response: httpx.Response,
    dtype: np.dtype[Any],
    size: tuple[int, int],
    *,
    n_samples: int,
    fail: Callable[[str], Exception],
) -> np.ndarray:
    """The pixels of a window answer as (samples, height, width), checked against the request.

    PIMS answers a window it had to resample with an 8-bit rendering and status 200, so the dtype
    and size are checked rather than trusted.
    """
    kind = content_type(response)
    if kind != "image/png":
        raise fail(f"is {kind or 'of no content type'}, not a PNG image")
    try:
        pixels = np.asarray(imagecodecs.png_decode(response.content))
    except Exception as exc:  # imagecodecs raises its own PngError, or ValueError
        raise fail(f"is not a readable PNG ({type(exc).__name__})") from None
    pixels = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    if pixels.dtype != dtype:
        raise fail(
            f"came back as {pixels.dtype} instead of {dtype}: PIMS resampled it into a display "
            "rendering"
        )
    if pixels.shape[1:] != tuple(size) or pixels.shape[0] != n_samples:
        raise fail(f"has shape {pixels.shape}, not ({n_samples}, {size[0]}, {size[1]})")
    return pixels


def _pad(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    by_index = {int(item.get("index", i)): item for i, item in enumerate(items)}
    return [by_index.get(i, {}) for i in range(n)]
