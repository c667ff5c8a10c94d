"""Synthetic OME-TIFF files for testing against Cytomine PIMS.

The files are written with tifffile and numpy only, deterministically from a seed, so a test can
compare every pixel PIMS serves with the source file. Each kind exercises a different PIMS code
path: small plain OME-TIFFs are served as they are, pyramidal ones (tiled, with SubIFDs) are
served tier by tier, and the RGB pyramid goes through PIMS's 3-samples-per-pixel handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

TILE = 256
"""Tile side of the pyramidal files, PIMS's own tile size."""


@dataclass(frozen=True)
class TestImage:
    """What was written, so that tests can check what PIMS reports about it."""

    __test__ = False  # not a pytest test class despite its name

    path: Path
    axes: str
    shape: tuple[int, ...]
    dtype: str
    physical_size_x: float
    physical_size_y: float
    physical_size_z: float | None
    channel_names: tuple[str, ...]
    channel_colors: tuple[str, ...] = ()
    """``#rrggbb`` colours written into the OME-XML (empty: none written)."""
    n_levels: int = 1
    rgb: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.shape[self.axes.index("X")]

    @property
    def height(self) -> int:
        return self.shape[self.axes.index("Y")]

    def size(self, axis: str) -> int:
        """Size along ``axis``, 1 when the file has no such axis."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1


def _pattern(
    rng: np.random.Generator, height: int, width: int, dtype: np.dtype, grid: int = 0
) -> np.ndarray:
    """A smooth picture with noise that spans the dtype's range.

    Smooth so that pyramid tiers look like something in a screenshot, with bright grid lines
    every ``grid`` pixels (if given) so that panning and zooming show; noisy and spanning the
    full range so that any rescaling, rounding or channel mix-up changes pixel values.
    """
    info = np.iinfo(dtype)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    fy, fx = rng.uniform(2.0, 6.0, size=2)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * fx * x / width + phase) * np.cos(2 * np.pi * fy * y / height)
    base = 0.4 + 0.25 * wave + 0.2 * x / max(width - 1, 1)
    noise = rng.standard_normal((height, width), dtype=np.float32) * 0.05
    values = base + noise
    if grid:
        for offset in range(4):
            values[offset::grid, :] = 0.9
            values[:, offset::grid] = 0.9
    values = np.clip(values, 0.0, 1.0) * info.max
    out = values.astype(dtype)
    # Pin the extremes so histogram bounds are known exactly.
    out[0, 0] = info.min
    out[-1, -1] = info.max
    return out


def _ome_color(hex_rgb: str) -> int:
    """``#rrggbb`` as OME's Color: RGBA packed into a signed 32-bit integer."""
    rgba = (int(hex_rgb[1:], 16) << 8) | 0xFF
    return rgba - (1 << 32) if rgba >= 1 << 31 else rgba


def _ome_metadata(
    axes: str,
    channel_names: tuple[str, ...],
    psx: float,
    psy: float,
    psz: float | None,
    colors: tuple[str, ...] = (),
) -> dict[str, object]:
    meta: dict[str, object] = {
        "axes": axes,
        "PhysicalSizeX": psx,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": psy,
        "PhysicalSizeYUnit": "µm",
    }
    if psz is not None:
        meta["PhysicalSizeZ"] = psz
        meta["PhysicalSizeZUnit"] = "µm"
    channel: dict[str, list[object]] = {}
    if channel_names:
        channel["Name"] = list(channel_names)
    if colors:
        channel["Color"] = [_ome_color(color) for color in colors]
    if channel:
        meta["Channel"] = channel
    return meta


def write_multichannel(path: Path, *, seed: int = 1) -> TestImage:
    """A small 3-channel 16-bit OME-TIFF (CYX, strips, no pyramid) with channel colours.

    The colours differ from the red/green/blue PIMS guesses for three channels without any.
    """
    names = ("DAPI", "GFP", "mCherry")
    colors = ("#0000ff", "#00ff00", "#ff00ff")
    height, width = 300, 412
    rng = np.random.default_rng(seed)
    data = np.stack([_pattern(rng, height, width, np.dtype(np.uint16)) for _ in names])
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata=_ome_metadata("CYX", names, 0.325, 0.325, None, colors),
    )
    return TestImage(path, "CYX", data.shape, "uint16", 0.325, 0.325, None, names, colors)


def write_zt_stack(path: Path, *, seed: int = 2) -> TestImage:
    """A 16-bit OME-TIFF with time points, z slices and two channels (TZCYX)."""
    names = ("Lamin", "Tubulin")
    t, z, height, width = 3, 5, 200, 240
    rng = np.random.default_rng(seed)
    data = np.empty((t, z, len(names), height, width), dtype=np.uint16)
    for index in np.ndindex(t, z, len(names)):
        data[index] = _pattern(rng, height, width, np.dtype(np.uint16))
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata=_ome_metadata("TZCYX", names, 0.2, 0.2, 1.5),
    )
    return TestImage(path, "TZCYX", data.shape, "uint16", 0.2, 0.2, 1.5, names)


def _downsample(image: np.ndarray) -> np.ndarray:
    """Halve Y and X (the last two axes, or the two before samples) by 2x2 means."""
    rgb = image.ndim == 3 and image.shape[-1] == 3
    y_axis = image.ndim - (3 if rgb else 2)
    height, width = image.shape[y_axis], image.shape[y_axis + 1]
    h2, w2 = height // 2, width // 2
    cropped = image[..., : h2 * 2, : w2 * 2, :] if rgb else image[..., : h2 * 2, : w2 * 2]
    shape = (*image.shape[:y_axis], h2, 2, w2, 2, *image.shape[y_axis + 2 :])
    means = cropped.reshape(shape).mean(axis=(y_axis + 1, y_axis + 3))
    return np.rint(means).astype(image.dtype)


def _levels(base: np.ndarray, n_levels: int) -> list[np.ndarray]:
    levels = [base]
    for _ in range(n_levels - 1):
        levels.append(_downsample(levels[-1]))
    return levels


def _n_levels(height: int, width: int) -> int:
    """Tiers until the whole image fits in one tile, as PIMS's own pyramids do."""
    n = 1
    while max(height, width) > TILE:
        height, width = height // 2, width // 2
        n += 1
    return n


def _write_pyramid(
    path: Path, levels: list[np.ndarray], photometric: str, metadata: dict[str, object]
) -> None:
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        options: dict[str, Any] = {
            "tile": (TILE, TILE),
            "compression": "zlib",
            "compressionargs": {"level": 1},  # noisy data barely compresses: favour speed
            "photometric": photometric,
        }
        tif.write(levels[0], subifds=len(levels) - 1, metadata=metadata, **options)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, metadata=None, **options)


def write_pyramid(
    path: Path,
    *,
    height: int = 3000,
    width: int = 4100,
    channels: tuple[str, ...] = ("Hoechst", "CD45"),
    seed: int = 3,
) -> TestImage:
    """A tiled pyramidal 16-bit OME-TIFF (CYX, SubIFD pyramid down to one tile).

    The default size is not a multiple of the tile size, so edge tiles are partial.
    """
    rng = np.random.default_rng(seed)
    base = np.stack([_pattern(rng, height, width, np.dtype(np.uint16), 512) for _ in channels])
    n_levels = _n_levels(height, width)
    levels = _levels(base, n_levels)
    _write_pyramid(path, levels, "minisblack", _ome_metadata("CYX", channels, 0.5, 0.5, None))
    return TestImage(
        path,
        "CYX",
        base.shape,
        "uint16",
        0.5,
        0.5,
        None,
        channels,
        n_levels=n_levels,
        extra={"level_shapes": [lv.shape for lv in levels]},
    )


def write_rgb_pyramid(
    path: Path, *, height: int = 2000, width: int = 2600, seed: int = 4
) -> TestImage:
    """A tiled pyramidal 8-bit RGB OME-TIFF (YXS, SubIFD pyramid), like a brightfield slide."""
    rng = np.random.default_rng(seed)
    base = np.stack(
        [_pattern(rng, height, width, np.dtype(np.uint8), 512) for _ in range(3)], axis=-1
    )
    n_levels = _n_levels(height, width)
    levels = _levels(base, n_levels)
    _write_pyramid(path, levels, "rgb", _ome_metadata("YXS", (), 0.25, 0.25, None))
    return TestImage(
        path,
        "YXS",
        base.shape,
        "uint8",
        0.25,
        0.25,
        None,
        ("R", "G", "B"),
        n_levels=n_levels,
        rgb=True,
        extra={"level_shapes": [lv.shape for lv in levels]},
    )


def write_all(folder: Path) -> dict[str, TestImage]:
    """Write one file of each kind into ``folder`` (names are the dict keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "multichannel": write_multichannel(folder / "multichannel.ome.tif"),
        "zt_stack": write_zt_stack(folder / "zt_stack.ome.tif"),
        "pyramid": write_pyramid(folder / "pyramid.ome.tif"),
        "rgb_pyramid": write_rgb_pyramid(folder / "rgb_pyramid.ome.tif"),
    }
