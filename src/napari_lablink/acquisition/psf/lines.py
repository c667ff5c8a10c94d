"""FWHM along the lines through a bead's 3-D maximum, as the field defines the PSF's widths.

A real objective's PSF is not separable: its planes widen and change shape with defocus, so a
projection (or a separable Gaussian) is wider than the line through the bead, and a Gaussian is
narrower than an Airy core. Here every plane of the window gets its own 2-D fit with a
generalised Gaussian ``B + A * 2 ** -(q ** (p / 2))``, ``q = (dx / hx)**2 + (dy / hy)**2``,
whose half widths ``hx``, ``hy`` are half the FWHMs along x and y whatever the shape ``p`` (kept
between 1.7 and 2.8: an Airy core box-averaged over a pixel lies inside). Each plane uses all of
its pixels, so the line values it yields are far less noisy than single pixels.

- The axial profile is the plane models' values on the line through the centre minus their
  background; its maximum (a parabola through the top in log space) and its half-maximum
  crossings (a local quadratic through the samples around each crossing) give z and FWHM z,
  with no assumption about the profile's shape: aberrated profiles are lopsided.
- FWHM x and y are the plane fits' widths interpolated to that maximum.
- Pixels nearer to another bead than to this one are left out of every fit.
- ``quality`` is the share of the bead's signal the models explain, with the noise's share
  taken out (estimated from the residual's pixel-to-pixel roughness, which a model mismatch
  hardly has): it stays near 1 for a true bead at any signal level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import leastsq

from napari_lablink.acquisition.psf.results import FitError

__all__ = ["LineFit", "fit_lines"]

_P_LOW, _P_HIGH = 1.7, 2.8
_STOP_FRACTION = 0.25  # planes are fitted outwards from the brightest until below this


@dataclass(frozen=True)
class LineFit:
    """Results in window pixels/planes (z as a fractional plane index)."""

    z: float
    y: float
    x: float
    fwhm_z_planes: float
    fwhm_y_px: float
    fwhm_x_px: float
    amplitude: float
    background: float
    quality: float
    r_squared: float


@dataclass
class _Plane:
    params: np.ndarray  # A, y0, x0, hy, hx, B, t (p from t)
    residual: np.ndarray
    model: np.ndarray


def _shape(t: float) -> float:
    return _P_LOW + (_P_HIGH - _P_LOW) / (1.0 + float(np.exp(-np.clip(t, -30.0, 30.0))))


def _plane_model(p: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    a, y0, x0, hy, hx, b, t = p
    q = ((yy - y0) / hy) ** 2 + ((xx - x0) / hx) ** 2
    values: np.ndarray = b + a * np.exp2(-(q ** (_shape(float(t)) / 2)))
    return values


def _fit_plane(
    data: np.ndarray, keep: np.ndarray, guess: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> _Plane | None:
    """One plane's generalised Gaussian on the kept pixels; None if it did not converge."""
    y, x, d = yy[keep], xx[keep], data[keep]

    def residuals(p: np.ndarray) -> np.ndarray:
        r: np.ndarray = _plane_model(p, y, x) - d
        return r

    p, ier = leastsq(residuals, guess, maxfev=400)
    p = np.asarray(p, dtype=float)
    if ier not in (1, 2, 3, 4) or not np.all(np.isfinite(p)):
        return None
    p[3:5] = np.abs(p[3:5])
    model = _plane_model(p, yy, xx)
    return _Plane(p, np.where(keep, data - model, 0.0), model)


def fit_lines(
    win: np.ndarray, keep: np.ndarray, centre: tuple[int, int, int], background: float
) -> LineFit:
    """Fit the bead near ``centre`` (window indices) in ``win``; ``keep``: its (y, x) pixels.

    ``background`` is the camera's level without beads (taken from the whole stack: near an
    aberrated bead its own defocused light lifts every local estimate).
    """
    nz, ny, nx = win.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    z0, y0, x0 = centre
    first = win[z0]
    b0 = float(np.median(first[keep]))
    a0 = float(first[y0, x0]) - b0
    if a0 <= 0:
        raise FitError("no peak above the background")
    above = (first - b0 > a0 / 2) & keep
    h0 = max(float(np.sqrt(above.sum() / np.pi)), 0.7)
    guess = np.array([a0, y0, x0, h0, h0, b0, 0.0])
    planes: dict[int, _Plane] = {}
    top = _fit_plane(first, keep, guess, yy, xx)
    if top is None:
        raise FitError("the in-focus plane's fit did not converge")
    planes[z0] = top
    for step in (-1, 1):  # outwards from the brightest plane, each seeded by its neighbour
        seed, k = top.params, z0 + step
        while 0 <= k < nz:
            fit = _fit_plane(win[k], keep, seed, yy, xx)
            if fit is None or not _plausible(fit.params, ny, nx):
                break
            planes[k] = fit
            if fit.params[0] < _STOP_FRACTION * top.params[0]:
                break
            seed, k = fit.params, k + step
    return _combine(win, keep, planes, top, background)


def _plausible(p: np.ndarray, ny: int, nx: int) -> bool:
    a, y0, x0, hy, hx = p[:5]
    return bool(
        a > 0 and 0 <= y0 <= ny - 1 and 0 <= x0 <= nx - 1 and 0.15 < hy < ny and 0.15 < hx < nx
    )


def _combine(
    win: np.ndarray, keep: np.ndarray, planes: dict[int, _Plane], top: _Plane, background: float
) -> LineFit:
    """The line values are the plane models on the line minus the window's background: a
    plane's own background would take in the bead's defocused light, which is part of the PSF.
    """
    ks = np.array(sorted(planes))
    params = np.array([planes[k].params for k in ks])
    if len(ks) < 3:
        raise FitError("the bead is visible in fewer than 3 planes")
    # the line through the maximum: the brightest plane's centre, refined once with z
    ly, lx = top.params[1], top.params[2]
    for _ in range(2):
        line = np.array(
            [_plane_model(p, np.array([ly]), np.array([lx]))[0] - background for p in params]
        )
        z, peak = _vertex(ks.astype(float), line)
        ly = float(np.interp(z, ks, params[:, 1]))
        lx = float(np.interp(z, ks, params[:, 2]))
    fwhm_z = _crossings(ks.astype(float), line, peak, z)
    # a plane's background above the window's is the bead's own pedestal: widths are taken at
    # half of the height above the window's background, as on the line
    amplitude, pedestal, shape = params[:, 0], params[:, 5] - background, params[:, 6]
    ratio = np.clip(2 * amplitude / np.maximum(amplitude - pedestal, 1e-3 * amplitude), 1.0, 4.0)
    stretch = np.log2(ratio) ** (1.0 / np.array([_shape(float(t)) for t in shape]))
    hy = _at(ks, params[:, 3] * stretch, z, fwhm_z)
    hx = _at(ks, params[:, 4] * stretch, z, fwhm_z)
    quality, r2 = _quality(win[ks], keep, [planes[k] for k in ks])
    return LineFit(
        z=z,
        y=ly,
        x=lx,
        fwhm_z_planes=fwhm_z,
        fwhm_y_px=2 * hy,
        fwhm_x_px=2 * hx,
        amplitude=peak,
        background=background,
        quality=quality,
        r_squared=r2,
    )


def _vertex(z: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Position and height of the maximum: a parabola through log values near the top."""
    i = int(np.argmax(v))
    if v[i] <= 0:
        raise FitError("no peak on the line through the bead")
    lo, hi = i, i + 1  # the run of samples above 60 % of the top, at least three
    while lo > 0 and (v[lo - 1] > 0.6 * v[i] or i - lo < 1):
        lo -= 1
    while hi < len(v) and (v[hi] > 0.6 * v[i] or hi - i < 2):
        hi += 1
    if hi - lo < 3:
        return float(z[i]), float(v[i])
    zz, vv = z[lo:hi], np.log(np.maximum(v[lo:hi], v[i] * 1e-3))
    c2, c1, c0 = np.polyfit(zz - z[i], vv, 2, w=np.sqrt(np.maximum(v[lo:hi], 0.0)))
    if c2 >= 0:
        return float(z[i]), float(v[i])
    dz = float(np.clip(-c1 / (2 * c2), -1.0, 1.0))
    return float(z[i] + dz), float(np.exp(c0 + c1 * dz + c2 * dz * dz))


def _crossings(z: np.ndarray, v: np.ndarray, peak: float, centre: float) -> float:
    """Distance between the half-maximum crossings either side of the maximum."""
    half = peak / 2
    i = int(np.argmax(v))
    below_left = np.flatnonzero(v[:i] < half)
    below_right = np.flatnonzero(v[i:] < half)
    if not len(below_left) or not len(below_right):
        raise FitError("the profile does not fall to half its maximum inside the window")
    left = _cross(z, v, int(below_left[-1]), half, peak, -1)
    right = _cross(z, v, i + int(below_right[0]) - 1, half, peak, 1)
    return right - left


def _cross(z: np.ndarray, v: np.ndarray, j: int, half: float, peak: float, side: int) -> float:
    """Where the profile crosses ``half`` between samples j and j + 1.

    A straight line through the samples between 20 % and 85 % of the peak around the pair
    (their noise averages out; a half-maximum lies near the inflection, where the profile is
    nearly straight), or just through the pair when fewer are there.
    """
    z0, z1, v0, v1 = z[j], z[j + 1], v[j], v[j + 1]
    linear = float(z0 + (half - v0) * (z1 - z0) / (v1 - v0))
    lo, hi = j, j + 2
    while lo > 0 and 0.2 * peak < v[lo - 1] < 0.85 * peak:
        lo -= 1
    while hi < len(v) and 0.2 * peak < v[hi] < 0.85 * peak:
        hi += 1
    if hi - lo < 3:
        return linear
    slope, intercept = np.polyfit(z[lo:hi], v[lo:hi], 1)
    if slope == 0 or (slope < 0) != (side > 0):
        return linear
    crossing = float((half - intercept) / slope)
    return crossing if z[lo] - (z1 - z0) <= crossing <= z[hi - 1] + (z1 - z0) else linear


def _at(ks: np.ndarray, values: np.ndarray, z: float, fwhm_z: float) -> float:
    """A plane quantity at a fractional plane: a parabola through the planes within 0.4 axial
    FWHM (at least the three nearest), which the width follows near focus."""
    near = np.abs(ks - z)
    order = np.flatnonzero(near <= max(0.4 * fwhm_z, float(np.sort(near)[min(2, len(near) - 1)])))
    if len(order) < 3:
        return float(np.interp(z, ks, values))
    c = np.polyfit(ks[order] - z, values[order], 2 if len(order) >= 4 else 1)
    picked = values[order]
    return float(np.clip(c[-1], picked.min() * 0.8, picked.max()))


def _quality(data: np.ndarray, keep: np.ndarray, planes: list[_Plane]) -> tuple[float, float]:
    """Noise-corrected share of the signal explained, and the plain R-squared."""
    residual = np.array([p.residual for p in planes])
    model = np.array([p.model - p.params[5] for p in planes])
    mask = np.broadcast_to(keep, residual.shape)
    ss_res = float((residual[mask] ** 2).sum())
    rough = residual - ndimage.uniform_filter(residual, size=(1, 3, 3), mode="nearest")
    # white noise keeps 8/9 of its variance through "minus its 3 x 3 mean"
    ss_noise = float((rough[mask] ** 2).sum()) * 9.0 / 8.0
    ss_sig = float((model[mask] ** 2).sum())
    d = data[mask]
    ss_tot = float(((d - d.mean()) ** 2).sum())
    quality = 1.0 - max(ss_res - ss_noise, 0.0) / ss_sig if ss_sig > 0 else 0.0
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return quality, r2
