"""Cytomine PIMS: image metadata from ``/info``, exact pixels from 16-bit PNG windows.

The real PIMS 1.0.0 differs from protocols/pims.md in ways that decide how pixels must be asked
for (tests/pims/NOTES.md): window regions are full-resolution pixels unless the region names its
reference tier, windows that need resampling silently come back as 8-bit renderings, ``bits``
must be the image's significant bits, and only one channel per request is reliable. So every
dask chunk here is one window of one channel, one z and one t, addressed in the pixels of a tier
whose size is the full size divided by one integer factor (the only tiers PIMS serves without
resampling), and every answer is checked for the dtype and shape asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import dask.array as da
import httpx
import imagecodecs
import numpy as np
from dask.base import tokenize

from napari_lablink.client.browse import Entry
from napari_lablink.client.colors import parse_color
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import (
    ConfigurationError,
    LablinkError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from napari_lablink.client.lazy import ReadAhead, chunked_array
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.transport import Transport
from napari_lablink.config import Credentials
from napari_lablink.uri import RemoteURI

__all__ = ["CHUNK_TARGET", "MAX_CHUNK", "PimsServer", "Tier", "decode_window", "exact_tiers"]

log = logging.getLogger(__name__)

#: Chunks are whole multiples of the tier's tile, at least this many pixels on a side when the
#: tile is smaller: a 256 px tile per request spends more time in HTTP than in pixels.
CHUNK_TARGET = 512
#: The largest chunk side, whatever the file's tiles.
MAX_CHUNK = 4096
#: dask computes chunks on many threads; each needs its own connection to overlap requests.
MAX_CONNECTIONS = 32
#: PNG carries at most 16 bits per sample, so these are the pixel types windows can return.
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
_CLIENT_ERRORS = tuple(range(400, 500))


@dataclass(frozen=True)
class Tier:
    """One tier of the image's SPATIAL pyramid that PIMS serves without resampling."""

    level: int
    width: int
    height: int
    tile_width: int
    tile_height: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Tier:
        return cls(
            level=int(raw["level"]),
            width=int(raw["width"]),
            height=int(raw["height"]),
            tile_width=int(raw.get("tile_width") or raw["width"]),
            tile_height=int(raw.get("tile_height") or raw["height"]),
        )

    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Chunk sizes along y and x: tile multiples of about :data:`CHUNK_TARGET` pixels."""
        return _split(self.height, _step(self.tile_height)), _split(
            self.width, _step(self.tile_width)
        )


def _step(tile: int) -> int:
    """Whole tiles up to CHUNK_TARGET; a file's "tile" can be a whole strip or image, so steps
    stay at most MAX_CHUNK, well inside PIMS's 10000 px output limit."""
    return min(tile * max(1, CHUNK_TARGET // tile), MAX_CHUNK)


def _split(size: int, step: int) -> tuple[int, ...]:
    return tuple(min(step, size - start) for start in range(0, size, step))


def exact_tiers(tiers: list[dict[str, Any]]) -> list[Tier]:
    """The tiers whose size is the full size divided by one integer factor on both axes.

    PIMS resamples windows of any other tier (into 8-bit data), so those are dropped.
    """
    if not tiers:
        return []
    ordered = sorted(tiers, key=lambda t: int(t["level"]))
    width, height = int(ordered[0]["width"]), int(ordered[0]["height"])
    exact = []
    for raw in ordered:
        w, h = int(raw["width"]), int(raw["height"])
        if w and h and width % w == 0 and height % h == 0 and width // w == height // h:
            exact.append(Tier.parse(raw))
    return exact


class PimsServer(Server):
    """A connection to a Cytomine PIMS server (standalone: no authentication)."""

    scheme = "pims"

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.transport = Transport(
            self.uri.base_url,
            label=self.label,
            secrets=lambda: self.credentials.secrets,
            max_connections=MAX_CONNECTIONS,
        )

    def _close(self) -> None:
        self.transport.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def _route(self, path: str, route: str) -> str:
        return f"image/{quote(path, safe='/')}/{route}"

    def _get_json(self, path: str, route: str) -> Any:
        self._check_open()
        response = self.transport.request(
            "GET", self._route(path, route), obj=path, expect=_CLIENT_ERRORS
        )
        if response.status_code >= 400:
            raise self._refusal(response, path, f"GET {route}")
        try:
            return response.json()
        except ValueError:
            raise self.transport.protocol_error(
                f"GET {route} answered {_content_type(response) or 'no content type'}, not JSON",
                path,
            ) from None

    def _refusal(self, response: httpx.Response, path: str, what: str) -> LablinkError:
        """The error for a 4xx answer, in PIMS's own words (``{title, details}``)."""
        said = self.transport.scrub(_problem(response))
        status = response.status_code
        if status == 404:
            return NotFoundError(
                f"PIMS has no image file at this path (HTTP 404: {said})",
                server=self.label,
                obj=path,
                hint="Check the path: PIMS paths look like upload-<id>/<file name>",
            )
        return ServerError(
            f"PIMS refused {what} (HTTP {status}: {said})",
            server=self.label,
            obj=path,
            hint="The image may have changed on the server; reopen it",
        )

    def window(
        self,
        path: str,
        tier: int,
        region: tuple[int, int, int, int],
        *,
        channel: int | None,
        z: int,
        t: int,
        bits: int,
    ) -> httpx.Response:
        """``POST .../window.png`` of raw data; ``region`` is (top, left, height, width) in the
        pixels of tier ``tier``. ``channel`` None asks for every sample (RGB images)."""
        self._check_open()
        top, left, height, width = region
        body: dict[str, Any] = {
            "region": {
                "top": top,
                "left": left,
                "width": width,
                "height": height,
                "reference_tier_index": tier,
                "tier_index_type": "LEVEL",
            },
            "level": tier,
            "z_slices": z,
            "timepoints": t,
            "colormaps": "NONE",
            "bits": bits,
        }
        if channel is not None:
            body["channels"] = channel
        response = self.transport.request(
            "POST",
            self._route(path, "window.png"),
            json=body,
            idempotent=True,
            obj=path,
            expect=_CLIENT_ERRORS,
        )
        if response.status_code >= 400:
            shown = f"level {tier}, top {top}, left {left}, {width} x {height} px"
            plane = f"channel {channel}, z {z}, t {t}" if channel is not None else f"z {z}, t {t}"
            raise self._refusal(response, path, f"the window ({shown}; {plane})")
        return response

    # -- browsing -----------------------------------------------------------------------------

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """The image file at path ``query`` (PIMS has no listing route): one entry, read from
        its ``info``, or none for an empty path or a later page."""
        self._check_open()
        path = query.strip().strip("/")
        if parent is not None:
            raise ConfigurationError(
                "PIMS lists no folders", server=self.label, obj=parent, hint="Type a file's path"
            )
        if not path or offset > 0 or limit < 1:
            return []
        image, channel_items, _ = self._parse_info(self._get_json(path, "info"), path)
        n_channels = int(image["n_channels"])
        shape = (
            n_channels,
            int(image.get("duration") or 1),
            int(image.get("depth") or 1),
            int(image["height"]),
            int(image["width"]),
        )
        names = [
            str(item.get("suggested_name") or f"Channel {i}")
            for i, item in enumerate(_pad(channel_items, n_channels))
        ]
        return [
            Entry(
                uri=str(replace(self.uri, kind="file", object_id=path, options=())),
                name=path.rsplit("/", 1)[-1],
                kind="image",
                shape=shape,
                dims=DIMS,
                dtype=str(image.get("pixel_type") or "") or None,
                pixel_size={
                    d: float(image[f"physical_size_{d}"])
                    for d in ("z", "y", "x")
                    if image.get(f"physical_size_{d}")
                },
                channels=tuple(names),
            )
        ]

    # -- opening ------------------------------------------------------------------------------

    def _open(self, uri: RemoteURI) -> RemoteImage:
        path = uri.object_id
        if not path:
            raise ConfigurationError(
                f"{uri.without_options()} names no image file",
                server=self.label,
                hint=f"Use {uri.server}/upload-<id>/<file name>",
            )
        info = self._get_json(path, "info")
        image, channel_items, tiers = self._parse_info(info, path)
        dtype = _DTYPES.get(str(image.get("pixel_type")))
        if dtype is None:
            raise ProtocolError(
                f"Pixel type {image.get('pixel_type')!r} cannot be read exactly: PIMS windows "
                "are PNG, which holds 8- or 16-bit samples only",
                server=self.label,
                obj=path,
                hint="Open the file with a local reader instead",
            )
        n_channels = int(image["n_channels"])
        samples = int(image.get("n_samples") or 1)
        rgb = dtype is np.uint8 and samples in (3, 4) and n_channels == samples
        bits = int(image.get("significant_bits") or np.dtype(dtype).itemsize * 8)
        shape = (n_channels, int(image.get("duration") or 1), int(image.get("depth") or 1))
        reader = _WindowReader(self, path, np.dtype(dtype), bits, n_channels if rgb else 0)
        levels = [reader.level(tier, shape) for tier in tiers]
        limits = self._contrast_limits(path, n_channels)
        channels = [
            Channel(
                name=str(item.get("suggested_name") or f"Channel {i}"),
                color=parse_color(item.get("color")),
                contrast_limits=limits.get(i),
                emission_wavelength=item.get("emission_wavelength"),
                excitation_wavelength=item.get("excitation_wavelength"),
            )
            for i, item in enumerate(_pad(channel_items, n_channels))
        ]
        pixel_size = {
            dim: float(image[f"physical_size_{dim}"])
            for dim in ("z", "y", "x")
            if image.get(f"physical_size_{dim}")
        }
        return RemoteImage(
            uri=str(uri.without_options()),
            name=path.rsplit("/", 1)[-1],
            dims=DIMS,
            levels=levels,
            pixel_size=pixel_size,
            channels=channels,
            is_rgb=rgb,
            server_metadata={"path": path, "image": image, "levels": [t.level for t in tiers]},
        )

    def _parse_info(
        self, info: Any, path: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[Tier]]:
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
            raise self.transport.protocol_error(
                f"GET info did not describe an image with a SPATIAL pyramid ({exc!r})", path
            ) from None
        if not tiers or (tiers[0].width, tiers[0].height) != (width, height):
            raise self.transport.protocol_error(
                f"The SPATIAL pyramid does not start at the full size {width} x {height}", path
            )
        return image, channels, tiers

    def _contrast_limits(self, path: str, n_channels: int) -> dict[int, tuple[float, float]]:
        """Per-channel intensity bounds from PIMS's histogram, without reading any pixel.

        Missing bounds cost only the contrast limits (napari then guesses), never the image.
        """
        try:
            body = self._get_json(path, "histogram/per-channels/bounds")
        except (NotFoundError, ServerError) as exc:
            log.warning("no histogram bounds for %s on %s: %s", path, self.label, exc)
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
        self, server: PimsServer, path: str, dtype: np.dtype, bits: int, rgb_samples: int
    ) -> None:
        self.server = server
        self.path = path
        self.dtype = dtype
        self.bits = bits
        #: RGB images are read all samples at once (exact, per NOTES.md); 0 for other images.
        self.rgb_samples = rgb_samples

    def level(self, tier: Tier, ctz: tuple[int, int, int]) -> da.Array:
        n_c, n_t, n_z = ctz
        chunks_y, chunks_x = tier.chunks()
        c_chunks = (n_c,) if self.rgb_samples else (1,) * n_c
        chunks = (c_chunks, (1,) * n_t, (1,) * n_z, chunks_y, chunks_x)
        name = "pims-" + tokenize(self.server.uri.base_url, self.path, tier.level, self.rgb_samples)
        starts_y = np.cumsum((0, *chunks_y[:-1]))
        starts_x = np.cumsum((0, *chunks_x[:-1]))

        def read(index: tuple[int, ...]) -> np.ndarray:
            ci, t, z, yi, xi = index
            region = (int(starts_y[yi]), int(starts_x[xi]), chunks_y[yi], chunks_x[xi])
            channel = None if self.rgb_samples else ci
            return self.fetch(tier.level, region, channel, z, t)

        # Windows of one compute are fetched together, however few threads dask has: a PIMS
        # deployment serves them in parallel with several workers.
        ahead = ReadAhead(read)
        return chunked_array(name, chunks, self.dtype, ahead.read, plan=ahead.plan)

    def fetch(
        self,
        level: int,
        region: tuple[int, int, int, int],
        channel: int | None,
        z: int,
        t: int,
    ) -> np.ndarray:
        """One chunk, shaped (c, 1, 1, height, width)."""
        response = self.server.window(
            self.path, level, region, channel=channel, z=z, t=t, bits=self.bits
        )
        return decode_window(
            response,
            self.dtype,
            region[2:],
            n_samples=1 if channel is not None else self.rgb_samples,
            fail=lambda what: self.server.transport.protocol_error(
                f"The window of level {level} at top {region[0]}, left {region[1]} {what}",
                self.path,
            ),
        )[:, None, None]


def decode_window(
    response: httpx.Response,
    dtype: np.dtype,
    size: tuple[int, int],
    *,
    n_samples: int,
    fail: Callable[[str], Exception],
) -> np.ndarray:
    """The pixels of a window answer as (samples, height, width), checked against the request.

    PIMS answers a window it had to resample with an 8-bit rendering and status 200, so the dtype
    and size are checked rather than trusted.
    """
    kind = _content_type(response)
    if kind != "image/png":
        raise fail(f"is {kind or 'of no content type'}, not a PNG image")
    try:
        pixels = imagecodecs.png_decode(response.content)
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


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _problem(response: httpx.Response) -> str:
    """PIMS's ``{title, details}``, FastAPI's ``{detail}``, or the answer's text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if "<html" not in text[:200].lower() else "no explanation"
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("title", "details", "detail") if body.get(key)]
        if parts:
            return ": ".join(parts)[:300]
    return str(body)[:300]


def _pad(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    by_index = {int(item.get("index", i)): item for i, item in enumerate(items)}
    return [by_index.get(i, {}) for i in range(n)]
