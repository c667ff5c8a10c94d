"""Synthetic microscopy images for the demo and the benchmarks, made so they look like something.

A cell-like 3-D stack (nuclei, point-like beads, filaments), a large 2-D tissue-like field for
pyramids, and a label image of the nuclei. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _nuclei(rng: np.random.Generator, z: int, y: int, x: int, count: int) -> np.ndarray:
    """Centres (z, y, x) and radii (rz, ryx) of ellipsoidal nuclei."""
    centres = np.column_stack(
        [
            rng.uniform(0.3, 0.7, count) * z,
            rng.uniform(0.1, 0.9, count) * y,
            rng.uniform(0.1, 0.9, count) * x,
        ]
    )
    radii = np.column_stack(
        [rng.uniform(0.2, 0.35, count) * z, rng.uniform(0.05, 0.09, count) * min(y, x)]
    )
    return np.hstack([centres, radii])


def _ellipsoid_labels(shape: tuple[int, int, int], nuclei: np.ndarray) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, np.uint16)
    for index, (cz, cy, cx, rz, ryx) in enumerate(nuclei, start=1):
        inside = ((zz - cz) / rz) ** 2 + ((yy - cy) / ryx) ** 2 + ((xx - cx) / ryx) ** 2 <= 1.0
        labels[inside & (labels == 0)] = index
    return labels


def cell_stack(
    shape: tuple[int, int, int, int, int] = (3, 1, 16, 256, 256), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A (c, t, z, y, x) uint16 stack and the (1, 1, z, y, x) label image of its nuclei.

    Channel 0: nuclei; 1: sub-resolution beads blurred by an anisotropic PSF; 2: filaments.
    """
    c, t, z, y, x = shape
    rng = np.random.default_rng(seed)
    nuclei = _nuclei(rng, z, y, x, count=max(3, (y * x) // 6000))
    labels = _ellipsoid_labels((z, y, x), nuclei)
    stack = np.zeros(shape, np.float64)
    for ti in range(t):
        signals = [
            ndimage.gaussian_filter((labels > 0).astype(np.float64) * 1500.0, (1.0, 2.0, 2.0)),
            _beads(rng, (z, y, x)),
            _filaments(rng, (z, y, x)),
        ]
        for ci in range(c):
            background = 100.0 + 20.0 * ci
            stack[ci, ti] = rng.poisson(signals[ci % 3] + background)
    return np.clip(stack, 0, 65535).astype(np.uint16), labels[np.newaxis, np.newaxis]


def _beads(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = shape
    points = np.zeros(shape, np.float64)
    count = max(10, (y * x) // 800)
    points[rng.integers(0, z, count), rng.integers(0, y, count), rng.integers(0, x, count)] = (
        rng.uniform(2e4, 6e4, count)
    )
    return ndimage.gaussian_filter(points, (1.5, 1.0, 1.0))


def _filaments(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = shape
    lines = np.zeros((y, x), np.float64)
    for _ in range(max(4, (y + x) // 64)):
        y0, x0 = rng.uniform(0, y), rng.uniform(0, x)
        angle = rng.uniform(0, np.pi)
        steps = np.linspace(-max(y, x), max(y, x), 4 * max(y, x))
        ys = np.round(y0 + steps * np.sin(angle)).astype(int)
        xs = np.round(x0 + steps * np.cos(angle)).astype(int)
        keep = (ys >= 0) & (ys < y) & (xs >= 0) & (xs < x)
        lines[ys[keep], xs[keep]] = 800.0
    profile = np.exp(-0.5 * ((np.arange(z) - z / 2) / max(1.0, z / 6)) ** 2)
    return ndimage.gaussian_filter(lines, 1.0)[np.newaxis] * profile[:, np.newaxis, np.newaxis]


def tissue_plane(
    shape: tuple[int, int, int, int, int] = (2, 1, 1, 2048, 2048), seed: int = 1
) -> np.ndarray:
    """A large (c, t, z, y, x) uint16 field of smooth tissue-like texture plus bright spots."""
    c, _, _, y, x = shape
    rng = np.random.default_rng(seed)
    out = np.empty(shape, np.uint16)
    small = (max(2, y // 16), max(2, x // 16))
    for ci in range(c):
        texture = ndimage.gaussian_filter(rng.random(small), 2.0)
        texture = ((texture - texture.min()) / max(np.ptp(texture), 1e-9)).astype(np.float32)
        field = ndimage.zoom(texture, (y / small[0], x / small[1]), order=1)[:y, :x]
        spots = np.zeros((y, x), np.float32)
        count = (y * x) // 4000
        spots[rng.integers(0, y, count), rng.integers(0, x, count)] = rng.uniform(1e4, 3e4, count)
        field *= 3000.0 * (1 + ci) / c
        field += ndimage.gaussian_filter(spots, 1.5, truncate=3.0)
        field += 300.0
        out[ci] = np.clip(field, 0, 65535).astype(np.uint16)
    return out
