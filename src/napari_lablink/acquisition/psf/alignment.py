"""What a microscopist aligns by, read off the beads a PSF analysis found.

The FWHMs say *that* a PSF is poor; these numbers say *why*, each with a sign a knob can null:

- ``axial_asymmetry``: (upper - lower) / (upper + lower) of the axial profile's half widths at
  half maximum, upper meaning larger stage z. Spherical aberration (a coverslip or immersion
  mismatch, a correction collar off) spreads light to one side of focus; its sign is the sign
  of the error.
- ``astigmatism_um``: the x focus minus the y focus, each the plane where the bead's profile
  along that axis is sharpest. The sharpness of a plane along x is the sum of squares of its
  y-summed profile: it peaks where the x width is smallest, whatever the y width, and uses
  every pixel of the plane, so it stays steady in noise.
- ``drift_x``/``drift_y``: how far the bead's centroid moves laterally per micrometre of z
  (µm/µm) around focus: coma or a tilted illumination or detection path.
- Field dependence: planes fitted over the beads' positions, for the focus (a tilted sample
  or stage, ``focus_tilt``) and for each FWHM (``fwhm_field_change``: the fitted width's range
  across the beads over its mean; field curvature and off-axis aberrations widen the edges).
- ``average_psf``: every fitted bead, background taken off, scaled to peak 1 and shifted to a
  common sub-pixel centre, averaged: a far less noisy PSF to look at than any single bead.
- ``profiles``: the x, y and z lines through each bead with the fitted widths drawn as
  Gaussian curves, for live plots and reports.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_lablink.acquisition.psf.results import (
    Alignment,
    BeadAlignment,
    BeadFit,
    Profile,
    PSFResult,
)

__all__ = ["Alignment", "BeadAlignment", "Profile", "assess_alignment"]

_NAN = float("nan")


def assess_alignment(
    stack: np.ndarray, result: PSFResult, z_positions_um: np.ndarray | None = None
) -> Alignment:
    """Read-outs for the fitted beads of ``result`` (measured on ``stack``)."""
    stack = np.asarray(stack)
    nz = stack.shape[0]
    if z_positions_um is None:
        z_positions_um = np.arange(nz) * result.z_step_um
    z_um = np.asarray(z_positions_um, dtype=float)
    dz = abs(result.z_step_um) or 1.0
    px = result.pixel_size_um
    beads = tuple(_bead(stack, b, z_um, px, dz) for b in result.beads)
    average, n = _average(stack, result.beads, px, dz)
    return Alignment(
        beads=beads,
        axial_asymmetry=_median([b.axial_asymmetry for b in beads]),
        astigmatism_um=_median([b.astigmatism_um for b in beads]),
        drift_x=_median([b.drift_x for b in beads]),
        drift_y=_median([b.drift_y for b in beads]),
        focus_tilt=_focus_tilt(result.beads),
        fwhm_field_change=_field_change(result.beads),
        average_psf=average,
        voxel_um=(dz, px, px),
        n_averaged=n,
    )


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else _NAN


def _radii(b: BeadFit, px: float, dz: float) -> tuple[int, int]:
    lateral = max(int(np.ceil(1.5 * max(b.fwhm_x_um, b.fwhm_y_um) / px)), 4)
    axial = max(int(np.ceil(1.5 * b.fwhm_z_um / dz)), 3)
    return lateral, axial


def _window(
    stack: np.ndarray, b: BeadFit, rl: int, ra: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The bead's window (clipped at the stack's edges) and where its origin lies."""
    nz, ny, nx = stack.shape
    cz, cy, cx = round(b.z_px), round(b.y_px), round(b.x_px)
    z0, y0, x0 = max(cz - ra, 0), max(cy - rl, 0), max(cx - rl, 0)
    win = stack[z0 : min(cz + ra + 1, nz), y0 : min(cy + rl + 1, ny), x0 : min(cx + rl + 1, nx)]
    return win.astype(float) - b.background, (z0, y0, x0)


def _bead(stack: np.ndarray, b: BeadFit, z_um: np.ndarray, px: float, dz: float) -> BeadAlignment:
    rl, ra = _radii(b, px, dz)
    win, (z0, y0, x0) = _window(stack, b, rl, ra)
    zs = z_um[z0 : z0 + win.shape[0]]
    iz, iy, ix = round(b.z_px) - z0, round(b.y_px) - y0, round(b.x_px) - x0
    # the axial line: a 3 x 3 mean per plane, far less noisy than one pixel
    axial = win[:, max(iy - 1, 0) : iy + 2, max(ix - 1, 0) : ix + 2].mean(axis=(1, 2))
    return BeadAlignment(
        bead=b.bead,
        axial_asymmetry=_asymmetry(zs, axial),
        astigmatism_um=_focus(zs, (win.sum(axis=1) ** 2).sum(axis=1))
        - _focus(zs, (win.sum(axis=2) ** 2).sum(axis=1)),
        drift_x=_drift(zs, win, axis=2, step=px),
        drift_y=_drift(zs, win, axis=1, step=px),
        x=_profile(win[iz, iy, :], (np.arange(win.shape[2]) + x0) * px, b.x_um, b.fwhm_x_um, b),
        y=_profile(win[iz, :, ix], (np.arange(win.shape[1]) + y0) * px, b.y_um, b.fwhm_y_um, b),
        z=_profile(win[:, iy, ix], zs, b.z_um, b.fwhm_z_um, b),
    )


def _profile(
    values: np.ndarray, pos: np.ndarray, centre: float, fwhm: float, b: BeadFit
) -> Profile:
    """The samples with the background added back, and the fit's parameters."""
    return Profile(pos, values + b.background, centre, fwhm, b.amplitude, b.background)


def _half_width(z: np.ndarray, v: np.ndarray, top: int, half: float, side: int) -> float:
    k = top
    while 0 <= k + side < len(v) and v[k + side] >= half:
        k += side
    j = k + side
    if not 0 <= j < len(v):
        return _NAN
    crossing = z[k] + (z[j] - z[k]) * (v[k] - half) / (v[k] - v[j])
    return float(abs(crossing - z[int(np.argmax(v))]))


def _asymmetry(z: np.ndarray, v: np.ndarray) -> float:
    if len(v) < 3:
        return _NAN
    top = int(np.argmax(v))
    half = float(v[top]) / 2
    ascending = z[-1] > z[0]
    upper = _half_width(z, v, top, half, 1 if ascending else -1)
    lower = _half_width(z, v, top, half, -1 if ascending else 1)
    if not (np.isfinite(upper) and np.isfinite(lower)) or upper + lower == 0:
        return _NAN
    return float((upper - lower) / (upper + lower))


def _focus(z: np.ndarray, sharpness: np.ndarray) -> float:
    """Where ``sharpness`` peaks: a parabola through the planes above 70 % of its range."""
    if len(z) < 3:
        return _NAN
    top = int(np.argmax(sharpness))
    floor = float(np.min(sharpness))
    keep = sharpness - floor >= 0.7 * (sharpness[top] - floor)
    lo, hi = top, top
    while lo > 0 and keep[lo - 1]:
        lo -= 1
    while hi < len(z) - 1 and keep[hi + 1]:
        hi += 1
    lo, hi = min(lo, max(top - 1, 0)), max(hi, min(top + 1, len(z) - 1))
    if hi - lo < 2:
        return float(z[top])
    c2, c1, _ = np.polyfit(z[lo : hi + 1] - z[top], sharpness[lo : hi + 1], 2)
    if c2 >= 0:
        return float(z[top])
    shift = float(np.clip(-c1 / (2 * c2), z[lo] - z[top], z[hi] - z[top]))
    return float(z[top] + shift)


def _drift(z: np.ndarray, win: np.ndarray, axis: int, step: float) -> float:
    """Slope of the centroid along ``axis`` with z over the planes holding a quarter of the
    brightest plane's peak; each centroid uses the pixels above 20 % of its plane's peak."""
    summed = 0 if axis == 2 else 1  # of a plane's (y, x): sum across the other axis
    coords = np.arange(win.shape[axis]) * step
    peaks = win.max(axis=(1, 2))
    centres, planes = [], []
    for k in np.flatnonzero(peaks >= 0.25 * peaks.max()):
        plane = win[k]
        w = np.where(plane > 0.2 * peaks[k], plane, 0.0).sum(axis=summed)
        if w.sum() > 0:
            centres.append(float((w * coords).sum() / w.sum()))
            planes.append(z[k])
    if len(planes) < 3:
        return _NAN
    return float(np.polyfit(planes, centres, 1)[0])


def _plane_fit(beads: tuple[BeadFit, ...], values: np.ndarray) -> np.ndarray | None:
    """Coefficients (c, dv/dy, dv/dx) of a plane through the beads, None with fewer than 3."""
    if len(beads) < 3:
        return None
    a = np.array([(1.0, b.y_um, b.x_um) for b in beads])
    if np.linalg.matrix_rank(a) < 3:
        return None
    coef, *_ = np.linalg.lstsq(a, values, rcond=None)
    return np.asarray(coef)


def _focus_tilt(beads: tuple[BeadFit, ...]) -> tuple[float, float]:
    coef = _plane_fit(beads, np.array([b.z_um for b in beads]))
    return (_NAN, _NAN) if coef is None else (float(coef[1]), float(coef[2]))


def _field_change(beads: tuple[BeadFit, ...]) -> tuple[float, float, float]:
    out = []
    for name in ("fwhm_x_um", "fwhm_y_um", "fwhm_z_um"):
        values = np.array([getattr(b, name) for b in beads])
        coef = _plane_fit(beads, values)
        if coef is None:
            out.append(_NAN)
            continue
        fitted = np.array([(1.0, b.y_um, b.x_um) for b in beads]) @ coef
        out.append(float((fitted.max() - fitted.min()) / values.mean()))
    return out[0], out[1], out[2]


def _average(
    stack: np.ndarray, beads: tuple[BeadFit, ...], px: float, dz: float
) -> tuple[np.ndarray | None, int]:
    """Beads wholly inside the stack, registered on their fitted centres and averaged."""
    if not beads:
        return None, 0
    rl = max(_radii(b, px, dz)[0] for b in beads)
    ra = max(_radii(b, px, dz)[1] for b in beads)
    shape = (2 * ra + 1, 2 * rl + 1, 2 * rl + 1)
    total = np.zeros(shape)
    n = 0
    for b in beads:
        win, origin = _window(stack, b, rl, ra)
        if win.shape != shape or b.amplitude <= 0:
            continue
        centre = np.array([b.z_px, b.y_px, b.x_px]) - np.array(origin)
        offset = np.array([ra, rl, rl]) - centre
        total += ndimage.shift(win / b.amplitude, offset, order=1, mode="nearest")
        n += 1
    return (total / n, n) if n else (None, 0)
