"""FWHM along the lines through a bead's 3-D maximum, as the field defines the PSF's widths.

A real objective's PSF is not separable: its planes widen and change shape with defocus, so a
projection (or a separable Gaussian) is wider than the line through the bead; a Gaussian is
narrower than an Airy core; and with spherical aberration the axial profile is lopsided. Two
steps:

- Every plane of the window gets its own 2-D generalised Gaussian
  ``B + A * 2 ** -(q ** (p / 2))``, ``q = (dx / hx)**2 + (dy / hy)**2``, fitted outwards from the
  brightest plane. These give the bead's centre, seeds for its widths, and a smooth picture of
  where its light is (``quality`` comes from them too).
- One 3-D model is then fitted to the bead's *core*: the voxels where the plane fits exceed 12 %
  of the peak (chosen from the fits, not the noisy data, so the choice does not bias). On the
  axis the model is a generalised Gaussian in z with its own half width either side of the
  maximum; across, a generalised Gaussian whose widths grow with defocus. Its exponents are those
  of a diffraction-limited core, so its half widths are the FWHMs along the lines through the
  maximum: FWHM z = lower + upper half width, FWHM x, y = twice the lateral half widths. It
  pools every bright voxel of the bead (a dim bead's widths are not left to one noisy plane or
  line) and leaves out the rings and the defocused pedestal, which no smooth model describes.

Pixels nearer to another bead than to this one are left out of every fit. ``quality`` is the
share of the bead's signal the plane models explain, with the noise's share taken out
(estimated from the residual's pixel-to-pixel roughness, which a model mismatch hardly has): it
stays near 1 for a true bead at any signal level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
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
    """Seeds from the plane fits, then one 3-D model on the bead's core voxels."""
    ks = np.array(sorted(planes))
    if len(ks) < 3:
        raise FitError("the bead is visible in fewer than 3 planes")
    fitted = [planes[k] for k in ks]
    params = np.array([p.params for p in fitted])
    models = np.array([p.model for p in fitted]) - background
    zs = np.arange(len(ks), dtype=float)
    ly, lx = float(top.params[1]), float(top.params[2])
    line = np.array([_plane_model(p, np.array([ly]), np.array([lx]))[0] for p in params])
    try:
        z0, peak, fwhm_z = _spline_fwhm(zs, line - background)
    except FitError:  # a dim bead's plane fits may stop above half maximum: a rough seed
        z0, peak, fwhm_z = float(np.argmax(line)), float(line.max() - background), len(zs) / 2
    if peak <= 0:
        raise FitError("no peak above the background")
    seed = np.array([peak, z0, ly, lx, fwhm_z / 2, fwhm_z / 2, top.params[3], top.params[4]])
    core = np.broadcast_to(keep, models.shape) & (models > _CORE * peak)
    fit = _fit_core(win[ks] - background, core, np.append(seed, fwhm_z))
    quality, r2 = _quality(win[ks], keep, fitted)
    step = float(np.mean(np.diff(ks)))
    return LineFit(
        z=float(ks[0] + fit[1] * step),
        y=float(fit[2]),
        x=float(fit[3]),
        fwhm_z_planes=float(fit[4] + fit[5]) * step,
        fwhm_y_px=2 * float(fit[6]),
        fwhm_x_px=2 * float(fit[7]),
        amplitude=float(fit[0]),
        background=background,
        quality=quality,
        r_squared=r2,
    )


# The core: voxels where the plane fits exceed this share of the peak. Below it the rings and
# the defocused pedestal begin, which a smooth model does not describe; above it too few voxels
# remain at low signal.
_CORE = 0.12
# The core model's exponents across and along the axis: a diffraction-limited core (an Airy
# disc box-averaged over a pixel; the axial profile of a widefield objective) from its top down
# to ~12 % is flatter than a Gaussian (exponent 2). Fitted to psfmodels' PSFs over NA 0.8-1.45,
# these keep the FWHMs within ~2 % of the truth, and within ~2 % of a Gaussian PSF's too.
_P = 2.1
_PZ = 2.2
_M = 2 * _PZ / _P  # the power of the axial term in u, so that on the axis the exponent is _PZ


def _fit_core(data: np.ndarray, core: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """``a 2**-(u ** (P/2))`` with ``u = |dz/h|**M + ((dy/hy)**2 + (dx/hx)**2) / g(dz)``.

    ``h`` is ``hl`` below the maximum and ``hr`` above it (aberrated profiles are lopsided),
    ``g = 1 + (dz/d)**2`` widens the planes with defocus. At the maximum, the half-maximum
    lies at ``dz = -hl, +hr`` on the axis and at ``hy``, ``hx`` across it: the FWHMs are
    ``hl + hr``, ``2 hy`` and ``2 hx``. Parameters: a, z0, y0, x0, hl, hr, hy, hx, d.
    ``data`` is background-free; ``core`` the voxels fitted.
    """
    z, y, x = (c.astype(float) for c in np.nonzero(core))
    v = data[core]
    if len(v) < 12:
        raise FitError("too few voxels in the bead's core")
    half_p = _P / 2
    jac = np.empty((9, len(v)))

    def terms(p: np.ndarray) -> tuple[np.ndarray, ...]:
        _, z0, y0, x0, hl, hr, hy, hx, d = p
        dz, dy, dx = z - z0, y - y0, x - x0
        below = dz < 0
        h = np.where(below, hl, hr)
        grow = 1.0 + (dz / d) ** 2
        lateral = (dy / hy) ** 2 + (dx / hx) ** 2
        axial = np.abs(dz / h) ** _M
        u = np.maximum(axial + lateral / grow, 1e-12)
        e = np.exp2(-(u**half_p))
        return dz, dy, dx, below, h, grow, lateral, u, e, axial

    def residuals(p: np.ndarray) -> np.ndarray:
        e = terms(p)[-2]
        r: np.ndarray = p[0] * e - v
        return r

    def jacobian(p: np.ndarray) -> np.ndarray:  # one row per parameter (col_deriv)
        a, _, _, _, _, _, hy, hx, d = p
        dz, dy, dx, below, h, grow, lateral, u, e, axial = terms(p)
        slope = np.divide(_M * axial, dz, out=np.zeros_like(dz), where=dz != 0)
        du = -a * e * np.log(2.0) * half_p * u ** (half_p - 1)  # d value / d u
        jac[0] = e
        jac[1] = du * (-slope + lateral * 2 * dz / (d * d * grow * grow))
        jac[2] = du * (-2 * dy / (hy * hy * grow))
        jac[3] = du * (-2 * dx / (hx * hx * grow))
        dh = du * (-_M * axial / h)
        jac[4] = np.where(below, dh, 0.0)
        jac[5] = np.where(below, 0.0, dh)
        jac[6] = du * (-2 * dy * dy / (hy**3 * grow))
        jac[7] = du * (-2 * dx * dx / (hx**3 * grow))
        jac[8] = du * lateral * 2 * dz * dz / (d**3 * grow * grow)
        return jac

    p, ier = leastsq(residuals, p0, Dfun=jacobian, col_deriv=True, maxfev=400)
    p = np.asarray(p, dtype=float)
    if ier not in (1, 2, 3, 4) or not np.all(np.isfinite(p)) or p[0] <= 0:
        raise FitError("the fit of the bead's core did not converge")
    p[4:8] = np.abs(p[4:8])
    if not (z.min() <= p[1] <= z.max() and y.min() <= p[2] <= y.max()):
        raise FitError("the fitted maximum lies outside the bead's core")
    return p


def _spline_fwhm(t: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Position and height of the maximum and the FWHM of a smooth sampled profile."""
    fine = np.linspace(t[0], t[-1], 20 * (len(t) - 1) + 1)
    f = CubicSpline(t, v)(fine)
    i = int(np.argmax(f))
    peak = float(f[i])
    half = peak / 2
    left = np.flatnonzero(f[:i] < half)
    right = np.flatnonzero(f[i:] < half)
    if peak <= 0 or not len(left) or not len(right):
        raise FitError("the profile does not fall to half its maximum inside the window")
    j, k = int(left[-1]), i + int(right[0])
    d = fine[1] - fine[0]
    lo = fine[j] + (half - f[j]) / (f[j + 1] - f[j]) * d
    hi = fine[k - 1] + (f[k - 1] - half) / (f[k - 1] - f[k]) * d
    return float(fine[i]), peak, float(hi - lo)


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
