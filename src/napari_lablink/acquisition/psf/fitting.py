"""One bead's FWHM x/y/z: a fit window around the peak and Gaussian fits on it.

The default ``"separable"`` method fits a 1-D Gaussian plus offset to each of the three
projections (sums over the other two axes) of a window around the bead. For a separable PSF a
projection of the 3-D Gaussian is exactly a Gaussian with the same width and centre, whatever
the window cuts off in the other axes, and each projected point sums hundreds of voxels, so the
fits are well conditioned even at low signal. ``"gaussian3d"`` then refines all eight
parameters on the voxels of the window (seeded by the separable fit).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import leastsq

from napari_lablink.acquisition.psf.lines import fit_lines
from napari_lablink.acquisition.psf.results import (
    FWHM_PER_SIGMA,
    BeadFit,
    FitError,
    PSFOptions,
)


def _low(profile: np.ndarray) -> float:
    """The 10th percentile (a background level), without np.percentile's overhead."""
    return float(np.partition(profile, len(profile) // 10)[len(profile) // 10])


def _half_max_width(profile: np.ndarray, centre: int) -> float:
    """Crude FWHM (in samples) of a peak: where it first falls below half height either side."""
    base = _low(profile)
    half = base + (float(profile[centre]) - base) / 2
    below = profile < half
    left = np.flatnonzero(below[:centre])
    right = np.flatnonzero(below[centre:])
    lo = left[-1] + 1 if len(left) else 0
    hi = centre + right[0] if len(right) else len(profile)
    return float(max(hi - lo, 1))


def _window(
    stack: np.ndarray, peak: np.ndarray, options: PSFOptions, lateral_fwhm: float | None = None
) -> tuple[tuple[slice, slice, slice], tuple[int, int, int]]:
    """The fit window: ``window_fwhm`` crude FWHMs either side (``lateral_fwhm`` in y, x)."""
    z, y, x = (int(v) for v in peak)
    nz, ny, nx = stack.shape
    # widths from profiles through a 3 x 3 column/row around the peak: cheap and robust
    pz = stack[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].sum(axis=(1, 2), dtype=float)
    py = stack[z, :, max(x - 1, 0) : x + 2].sum(axis=1, dtype=float)
    px = stack[z, max(y - 1, 0) : y + 2, :].sum(axis=0, dtype=float)
    halves = []
    factors = (options.window_fwhm, *(2 * [lateral_fwhm or options.window_fwhm]))
    for profile, c, factor in zip((pz, py, px), (z, y, x), factors, strict=True):
        lo, hi = max(c - 40, 0), min(c + 41, len(profile))
        width = _half_max_width(profile[lo:hi], c - lo)
        halves.append(max(int(np.ceil(factor * width)), options.min_window_px))
    hz, hy, hx = halves
    return (
        slice(max(z - hz, 0), min(z + hz + 1, nz)),
        slice(max(y - hy, 0), min(y + hy + 1, ny)),
        slice(max(x - hx, 0), min(x + hx + 1, nx)),
    ), (hz, hy, hx)


def _gauss(x: np.ndarray, a: float, mu: float, s: float, b: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b


def _fit_1d(
    profile: np.ndarray, guess: tuple[float, float] | None = None
) -> tuple[float, float, float, float]:
    """Gaussian plus offset; returns (amplitude, centre, sigma, offset) in samples.

    ``guess`` is a (centre, sigma) known from an earlier pass, which saves iterations.
    """
    x = np.arange(len(profile), dtype=float)
    b0 = _low(profile)
    if guess is None:
        c0 = int(np.argmax(profile))
        mu0, s0 = float(c0), _half_max_width(profile, c0) / FWHM_PER_SIGMA
    else:
        mu0, s0 = guess
        c0 = min(max(round(mu0), 0), len(profile) - 1)
    a0 = float(profile[c0]) - b0
    if a0 <= 0:
        raise FitError("no peak above the background")
    jac = np.empty((4, len(x)))
    jac[3] = 1.0

    def residuals(p: np.ndarray) -> np.ndarray:
        r: np.ndarray = _gauss(x, *p) - profile
        return r

    def jacobian(p: np.ndarray) -> np.ndarray:  # one row per parameter (col_deriv)
        a, mu, s, _ = p
        d = (x - mu) / s
        np.exp(-0.5 * d * d, out=jac[0])
        np.multiply(jac[0], a * d / s, out=jac[1])
        np.multiply(jac[1], d, out=jac[2])
        return jac

    # MINPACK's leastsq directly: least_squares' Python wrapper costs ~2x for 4 parameters
    p, ier = leastsq(residuals, [a0, mu0, max(s0, 0.3), b0], Dfun=jacobian, col_deriv=True)
    if ier not in (1, 2, 3, 4):
        raise FitError(f"the fit did not converge (MINPACK status {ier})")
    a, mu, s, b = (float(v) for v in p)
    return a, mu, abs(s), b


def fit_bead(
    index: int,
    stack: np.ndarray,
    peak: np.ndarray,
    peaks: np.ndarray,
    pixel_size_um: float,
    z_positions_um: np.ndarray,
    z_step: float,
    options: PSFOptions,
    background: float | None = None,
) -> BeadFit:
    """Measure one bead; ``background``: the stack's level without beads (``"lines"`` only)."""
    if peak[0] < 0:
        raise FitError("marked position is outside the image")
    if options.method == "lines":
        level = float(np.median(stack[:, ::4, ::4])) if background is None else background
        return _fit_by_lines(
            index, stack, peak, peaks, pixel_size_um, z_positions_um, options, level
        )
    (sz, sy, sx), halves = _window(stack, peak, options)
    for j, other in enumerate(peaks):
        if j != index and all(abs(int(other[k]) - int(peak[k])) <= halves[k] for k in (1, 2)):
            raise FitError(f"another bead (#{j}) lies inside the fit window")
    win = stack[sz, sy, sx].astype(np.float64)
    if min(win.shape) < 5:
        raise FitError(f"too close to the edge of the stack (window {win.shape})")
    amplitude, centre, sigmas, background = _separable_fit(win)
    zz, yy, xx = (np.arange(n, dtype=float) for n in win.shape)
    if options.method == "gaussian3d":
        amplitude, centre, sigmas, background = _fit_3d(win, amplitude, centre, sigmas, background)
    gz, gy, gx = (
        np.exp(-0.5 * ((ax - c) / s) ** 2)
        for ax, c, s in zip((zz, yy, xx), centre, sigmas, strict=True)
    )
    model = amplitude * gz[:, None, None] * gy[None, :, None] * gx[None, None, :] + background
    ss_res = float(((win - model) ** 2).sum())
    ss_tot = float(((win - win.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    if amplitude <= 0:
        raise FitError("fitted amplitude is not positive")
    if r2 < options.min_r_squared:
        raise FitError(f"poor fit (R^2 = {r2:.2f} < {options.min_r_squared})")
    zc, yc, xc = (float(c) + s.start for c, s in zip(centre, (sz, sy, sx), strict=True))
    z_um = float(np.interp(zc, np.arange(len(z_positions_um)), z_positions_um))
    return BeadFit(
        bead=index,
        z_px=zc,
        y_px=yc,
        x_px=xc,
        z_um=z_um,
        y_um=yc * pixel_size_um,
        x_um=xc * pixel_size_um,
        fwhm_x_um=float(sigmas[2]) * pixel_size_um * FWHM_PER_SIGMA,
        fwhm_y_um=float(sigmas[1]) * pixel_size_um * FWHM_PER_SIGMA,
        fwhm_z_um=float(sigmas[0]) * abs(z_step) * FWHM_PER_SIGMA,
        amplitude=float(amplitude),
        background=float(background),
        signal_to_background=float(amplitude / background) if background > 0 else float("inf"),
        r_squared=r2,
        quality=r2,
    )


# the plane fits of "lines" see the bead's defocused pedestal and first ring laterally
_LINES_LATERAL_FWHM = 2.5


def _fit_by_lines(
    index: int,
    stack: np.ndarray,
    peak: np.ndarray,
    peaks: np.ndarray,
    pixel_size_um: float,
    z_positions_um: np.ndarray,
    options: PSFOptions,
    background: float,
) -> BeadFit:
    (sz, sy, sx), halves = _window(stack, peak, options, lateral_fwhm=_LINES_LATERAL_FWHM)
    win = stack[sz, sy, sx].astype(np.float64)
    if min(win.shape) < 5:
        raise FitError(f"too close to the edge of the stack (window {win.shape})")
    fwhm_px = min(halves[1:]) / _LINES_LATERAL_FWHM
    keep = _own_pixels(index, peak, peaks, sy, sx, 1.5 * fwhm_px)
    centre = (int(peak[0]) - sz.start, int(peak[1]) - sy.start, int(peak[2]) - sx.start)
    fit = fit_lines(win, keep, centre, background)
    if fit.quality < options.min_quality:
        raise FitError(f"poor fit (quality {fit.quality:.2f} < {options.min_quality})")
    zc, yc, xc = fit.z + sz.start, fit.y + sy.start, fit.x + sx.start
    planes = np.arange(len(z_positions_um), dtype=float)
    z_um = float(np.interp(zc, planes, z_positions_um))
    z_lo = float(np.interp(zc - fit.fwhm_z_planes / 2, planes, z_positions_um))
    z_hi = float(np.interp(zc + fit.fwhm_z_planes / 2, planes, z_positions_um))
    return BeadFit(
        bead=index,
        z_px=zc,
        y_px=yc,
        x_px=xc,
        z_um=z_um,
        y_um=yc * pixel_size_um,
        x_um=xc * pixel_size_um,
        fwhm_x_um=fit.fwhm_x_px * pixel_size_um,
        fwhm_y_um=fit.fwhm_y_px * pixel_size_um,
        fwhm_z_um=abs(z_hi - z_lo),
        amplitude=fit.amplitude,
        background=fit.background,
        signal_to_background=(
            fit.amplitude / fit.background if fit.background > 0 else float("inf")
        ),
        r_squared=fit.r_squared,
        quality=fit.quality,
    )


def _own_pixels(
    index: int, peak: np.ndarray, peaks: np.ndarray, sy: slice, sx: slice, too_close: float
) -> np.ndarray:
    """The window's (y, x) pixels nearer to this bead than to any other: neighbours masked.

    A neighbour nearer than ``too_close`` pixels (its light overlaps the core) fails the bead.
    """
    yy, xx = np.mgrid[sy, sx]
    own = (yy - peak[1]) ** 2 + (xx - peak[2]) ** 2
    keep = np.ones(yy.shape, dtype=bool)
    for j, other in enumerate(peaks):
        if j == index:
            continue
        if np.hypot(other[1] - peak[1], other[2] - peak[2]) < too_close:
            raise FitError(f"another bead (#{j}) lies too close to measure this one")
        keep &= own <= (yy - other[1]) ** 2 + (xx - other[2]) ** 2
    return keep


def _separable_fit(win: np.ndarray, passes: int = 2) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Amplitude, centre, sigmas and background from three 1-D fits on weighted projections.

    The first pass projects with flat weights; later passes weight the other two axes by the
    Gaussians just fitted (a matched filter), which keeps the projection exactly Gaussian but
    stops the background far from the bead from drowning it at low signal.
    """
    axes = [np.arange(n, dtype=float) for n in win.shape]
    weights = [np.ones(n) for n in win.shape]
    fits: list[tuple[float, float, float, float]] = []
    for _ in range(passes):
        wz, wy, wx = weights
        zy = win @ wx  # (z, y): x summed out
        profiles = (zy @ wy, wz @ zy, wz @ np.tensordot(win, wy, axes=([1], [0])))
        guesses = [None] * 3 if not fits else [(f[1], f[2]) for f in fits]
        fits = []
        for k, profile in enumerate(profiles):
            a, mu, s, b = _fit_1d(profile, guesses[k])
            n = win.shape[k]
            if not (0.0 <= mu <= n - 1):
                raise FitError("fitted centre lies outside the fit window")
            if s > n:
                raise FitError(
                    f"no bead-like spot: the fitted width ({s:.1f} samples) exceeds the "
                    f"{n}-sample fit window"
                )
            if s < 0.2:
                raise FitError(
                    f"no bead-like spot: the fitted width ({s:.2f} samples) is below a pixel "
                    "(noise or a hot pixel?)"
                )
            fits.append((a, mu, s, b))
        used = weights
        weights = [
            np.exp(-0.5 * ((ax - mu) / s) ** 2)
            for ax, (_, mu, s, _) in zip(axes, fits, strict=True)
        ]
    # the z profile is A * sum(wy * gy) * sum(wx * gx) * gz + b * sum(wy) * sum(wx)
    _, gy, gx = weights
    a_z, _, _, b_z = fits[0]
    amplitude = a_z / (float(used[1] @ gy) * float(used[2] @ gx))
    background = b_z / (float(used[1].sum()) * float(used[2].sum()))
    centre = np.array([f[1] for f in fits])
    sigmas = np.array([f[2] for f in fits])
    return amplitude, centre, sigmas, background


def _fit_3d(
    win: np.ndarray, amplitude: float, centre: np.ndarray, sigmas: np.ndarray, background: float
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """All eight parameters of an axis-aligned 3-D Gaussian, seeded by the separable fit."""
    axes = [np.arange(n, dtype=float) for n in win.shape]
    data = win.ravel()

    def parts(p: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        ds = [(ax - c) / s for ax, c, s in zip(axes, p[1:4], p[4:7], strict=True)]
        gs = [np.exp(-0.5 * d * d) for d in ds]
        g = gs[0][:, None, None] * gs[1][None, :, None] * gs[2][None, None, :]
        return ds, gs, g

    def residuals(p: np.ndarray) -> np.ndarray:
        _, _, g = parts(p)
        r: np.ndarray = (p[0] * g + p[7]).ravel() - data
        return r

    jac = np.empty((8, *win.shape))
    jac[7] = 1.0

    def jacobian(p: np.ndarray) -> np.ndarray:  # one row per parameter (col_deriv)
        ds, _, g = parts(p)
        jac[0] = g
        for k in range(3):
            d = ds[k].reshape([-1 if i == k else 1 for i in range(3)])
            np.multiply(g, p[0] * d / p[4 + k], out=jac[1 + k])
            np.multiply(jac[1 + k], d, out=jac[4 + k])
        return jac.reshape(8, -1)

    p0 = np.concatenate([[amplitude], centre, sigmas, [background]])
    p, ier = leastsq(residuals, p0, Dfun=jacobian, col_deriv=True)
    if ier not in (1, 2, 3, 4):
        raise FitError(f"the 3-D fit did not converge (MINPACK status {ier})")
    return float(p[0]), p[1:4], np.abs(p[4:7]), float(p[7])
