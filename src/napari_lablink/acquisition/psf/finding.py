"""Where the beads are: automatic detection, or user-marked positions moved onto the peak."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_lablink.acquisition.psf.results import DEFAULT_OPTIONS, PSFOptions


def find_beads(stack: np.ndarray, options: PSFOptions = DEFAULT_OPTIONS) -> np.ndarray:
    """Integer (z, y, x) peaks of bright spots, brightest first, side lobes left out.

    Detection runs on the maximum projection along z (one 2-D pass instead of a 3-D one: ~20x
    cheaper); each spot's plane is then the brightest plane of its 3 x 3 column.
    """
    stack = np.asarray(stack)
    mip = stack.max(axis=0).astype(np.float32)
    smooth = ndimage.gaussian_filter(mip, 1.0)
    sample = smooth[::2, ::2]  # a quarter of the pixels estimates the background as well
    level = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - level)))
    noise = max(noise, 1e-6 * max(abs(level), 1.0))
    size = 2 * options.min_separation_px + 1
    peaks = (smooth == ndimage.maximum_filter(smooth, size=size)) & (
        smooth > level + options.min_snr * noise
    )
    ys, xs = np.nonzero(peaks)
    if not len(ys):
        return np.empty((0, 3), dtype=int)
    order = np.argsort(smooth[ys, xs])[::-1]
    ys, xs = ys[order], xs[order]
    columns = [_column(stack, int(y), int(x)) for y, x in zip(ys, xs, strict=True)]
    zs = np.array([int(np.argmax(c)) for c in columns])
    found = np.stack([zs, ys, xs], axis=1).astype(int)
    if options.side_lobe_ratio > 0:
        found = found[_not_side_lobes(found, smooth - level, columns, options.side_lobe_ratio)]
    return found[: options.max_beads]


# The first side lobe of a diffraction-limited spot lies ~1.6 FWHM from its centre, laterally
# (the Airy ring) and axially alike; a candidate within this many such radii can be one.
_LOBE_REACH = 1.5
_RING_PER_FWHM = 1.6


def _not_side_lobes(
    found: np.ndarray, height: np.ndarray, columns: list[np.ndarray], ratio: float
) -> np.ndarray:
    """Which candidates (brightest first) are not side lobes of a brighter accepted one.

    A candidate is a side lobe when it lies within ``_LOBE_REACH`` ring radii of a brighter
    bead (an ellipsoid: the ring radius laterally and axially from that bead's own FWHMs in
    the projection and its column) and is at most ``ratio`` times as bright there: what an
    aberrated bead's rings or lobes reach in the projection. Two real beads that close and
    that unequal could not be measured apart anyway.
    """
    keep = np.ones(len(found), dtype=bool)
    radii: list[tuple[float, float]] = []
    for i, (z, y, x) in enumerate(found):
        h = float(height[y, x])
        for j in range(i):
            if not keep[j]:
                continue
            zj, yj, xj = found[j]
            lateral, axial = radii[j]
            distance = np.hypot(np.hypot(y - yj, x - xj) / lateral, (z - zj) / axial)
            if distance <= _LOBE_REACH and h <= ratio * float(height[yj, xj]):
                keep[i] = False
                break
        lateral = _RING_PER_FWHM * min(_width(height[y, :], x), _width(height[:, x], y))
        base = float(np.partition(columns[i], len(columns[i]) // 10)[len(columns[i]) // 10])
        axial = _RING_PER_FWHM * _width(columns[i] - base, int(z))
        radii.append((max(lateral, 1.0), max(axial, 1.0)))
    return keep


def _width(profile: np.ndarray, centre: int) -> float:
    """Twice the shorter distance from ``centre`` to where the profile (background 0) falls
    below half its value there: a neighbour on one side does not widen it."""
    half = float(profile[centre]) / 2
    left = np.flatnonzero(profile[:centre] < half)
    right = np.flatnonzero(profile[centre:] < half)
    reach = min(
        centre - left[-1] - 0.5 if len(left) else np.inf,
        right[0] - 0.5 if len(right) else np.inf,
    )
    return float(2 * reach) if np.isfinite(reach) else float(len(profile))


def _column(stack: np.ndarray, y: int, x: int) -> np.ndarray:
    """The sum over a 3 x 3 column around (y, x), plane by plane."""
    column = stack[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
    values: np.ndarray = column.sum(axis=(1, 2), dtype=np.float64)
    return values


def _brightest_plane(stack: np.ndarray, y: int, x: int) -> int:
    return int(np.argmax(_column(stack, y, x)))


def refine_positions(stack: np.ndarray, positions: np.ndarray, radius: int) -> np.ndarray:
    """Move user-marked positions ((y, x) or (z, y, x), pixels) to the nearby intensity peak.

    Clicks are imprecise and a Points layer in 2-D view has no z, so each position is moved to
    the brightest 3 x 3 column within ``radius`` and then to that column's brightest plane.
    """
    positions = np.atleast_2d(np.asarray(positions, dtype=float))
    if positions.shape[1] not in (2, 3):
        raise ValueError(f"bead positions must be (y, x) or (z, y, x), got {positions.shape}")
    _, ny, nx = stack.shape
    mip = ndimage.uniform_filter(stack.max(axis=0).astype(np.float32), 3)
    out = np.empty((len(positions), 3), dtype=int)
    for i, p in enumerate(positions):
        y, x = round(p[-2]), round(p[-1])
        y0, y1 = max(y - radius, 0), min(y + radius + 1, ny)
        x0, x1 = max(x - radius, 0), min(x + radius + 1, nx)
        if y0 >= y1 or x0 >= x1:
            out[i] = (-1, y, x)
            continue
        dy, dx = np.unravel_index(int(np.argmax(mip[y0:y1, x0:x1])), (y1 - y0, x1 - x0))
        y, x = y0 + int(dy), x0 + int(dx)
        out[i] = (_brightest_plane(stack, y, x), y, x)
    return out
