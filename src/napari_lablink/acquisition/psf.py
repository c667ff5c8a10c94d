"""PSF measurement on bead stacks: find beads, fit each, report FWHM x/y/z in micrometres.

Fitting. The default ``"separable"`` method fits a 1-D Gaussian plus offset to each of the
three projections (sums over the other two axes) of a window around the bead. For a separable
PSF a projection of the 3-D Gaussian is exactly a Gaussian with the same width and centre,
whatever the window cuts off in the other axes, and each projected point sums hundreds of
voxels, so the fits are well conditioned even at low signal. ``"gaussian3d"`` then refines all
eight parameters on the voxels of the window (seeded by the separable fit). Measured in
``benchmarks/bench_acquisition.py``: both meet the 5% accuracy target on the simulated
microscope; the separable fit is several times faster, so it is the default.

Live use. ``PSFAnalyzer`` runs the analysis in one worker thread, newest-wins: submitting a
stack replaces any stack still waiting, so a slow analysis never queues work and never slows
acquisition. Attached to an engine, it leases the newest stack only when it starts analysing,
so no stack is copied.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import ndimage
from scipy.optimize import leastsq

from napari_lablink.acquisition.callbacks import Callbacks

if TYPE_CHECKING:
    from napari_lablink.acquisition.buffers import StackView
    from napari_lablink.acquisition.engine import AcquisitionEngine

log = logging.getLogger(__name__)

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
Method = Literal["separable", "gaussian3d"]


@dataclass(frozen=True)
class PSFOptions:
    """How beads are found and fitted.

    ``min_snr``: a bead's peak must stand this many noise standard deviations above the
    background of the maximum projection. ``window_fwhm``: the fit window extends this many
    (estimated) FWHMs either side of the peak. ``min_r_squared``: fits explaining less of the
    window's variance are reported as failed.
    """

    method: Method = "separable"
    max_beads: int = 50
    min_snr: float = 10.0
    min_separation_px: int = 3
    window_fwhm: float = 1.75
    min_window_px: int = 4
    min_r_squared: float = 0.5
    refine_radius_px: int = 3


@dataclass(frozen=True)
class BeadFit:
    """One bead: centre (stack pixels and micrometres), widths, brightness and fit quality.

    ``signal_to_background`` is the fitted peak amplitude over the background level.
    """

    bead: int
    z_px: float
    y_px: float
    x_px: float
    z_um: float
    y_um: float
    x_um: float
    fwhm_x_um: float
    fwhm_y_um: float
    fwhm_z_um: float
    amplitude: float
    background: float
    signal_to_background: float
    r_squared: float


@dataclass(frozen=True)
class BeadFailure:
    """A bead that could not be measured, and why (it is skipped, not fatal)."""

    bead: int
    z_px: float
    y_px: float
    x_px: float
    reason: str


@dataclass(frozen=True)
class PSFSummary:
    """Means (and standard deviations) over the beads that were fitted."""

    n_beads: int
    n_failed: int
    fwhm_x_um: float
    fwhm_y_um: float
    fwhm_z_um: float
    fwhm_x_std_um: float
    fwhm_y_std_um: float
    fwhm_z_std_um: float
    signal_to_background: float
    r_squared: float


@dataclass(frozen=True)
class PSFResult:
    """The analysis of one stack; ``version``/``stack_index`` say which engine stack it was."""

    beads: tuple[BeadFit, ...]
    failures: tuple[BeadFailure, ...]
    summary: PSFSummary
    pixel_size_um: float
    z_step_um: float
    channel: int = 0
    version: int = 0
    stack_index: int = -1
    analysis_s: float = 0.0

    def rows(self) -> list[dict[str, object]]:
        """One dict per bead (failed ones with their reason), e.g. for a table or CSV."""
        rows: list[dict[str, object]] = [{**asdict(b), "status": "ok"} for b in self.beads]
        for f in self.failures:
            rows.append({**asdict(f), "status": f"failed: {f.reason}"})
        rows.sort(key=lambda r: int(r["bead"]))  # type: ignore[call-overload]
        return rows

    def to_csv(self) -> str:
        columns = [*BeadFit.__dataclass_fields__, "status"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        for row in self.rows():
            writer.writerow(row)
        return out.getvalue()


class FitError(ValueError):
    """A single bead could not be fitted; carries the reason shown to the user."""


# -- bead finding ------------------------------------------------------------------------------


def find_beads(stack: np.ndarray, options: PSFOptions = PSFOptions()) -> np.ndarray:
    """Integer (z, y, x) peaks of bright, isolated spots, brightest first.

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
    order = np.argsort(smooth[ys, xs])[::-1][: options.max_beads]
    ys, xs = ys[order], xs[order]
    zs = np.array([_brightest_plane(stack, y, x) for y, x in zip(ys, xs, strict=True)])
    return np.stack([zs, ys, xs], axis=1).astype(int)


def _brightest_plane(stack: np.ndarray, y: int, x: int) -> int:
    column = stack[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
    return int(np.argmax(column.sum(axis=(1, 2), dtype=np.float64)))


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


# -- fitting -----------------------------------------------------------------------------------


def analyze_stack(
    stack: np.ndarray,
    *,
    pixel_size_um: float,
    z_positions_um: np.ndarray | None = None,
    z_step_um: float | None = None,
    positions: np.ndarray | None = None,
    options: PSFOptions = PSFOptions(),
) -> PSFResult:
    """Measure the PSF on every bead of a (z, y, x) stack.

    Pass ``z_positions_um`` (one per plane) or ``z_step_um``. ``positions`` (pixels, (y, x) or
    (z, y, x)) replaces bead finding, e.g. with the points a user marked.
    """
    t0 = time.perf_counter()
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"a PSF stack must be 3-D (z, y, x), got shape {stack.shape}")
    if z_positions_um is None:
        if z_step_um is None:
            raise ValueError("give z_positions_um or z_step_um")
        z_positions_um = np.arange(stack.shape[0]) * z_step_um
    z_positions_um = np.asarray(z_positions_um, dtype=float)
    step = float(np.mean(np.diff(z_positions_um))) if len(z_positions_um) > 1 else 0.0
    if positions is None:
        peaks = find_beads(stack, options)
    else:
        peaks = refine_positions(stack, positions, options.refine_radius_px)
    fits: list[BeadFit] = []
    failures: list[BeadFailure] = []
    for i, peak in enumerate(peaks):
        try:
            fits.append(
                _fit_bead(i, stack, peak, peaks, pixel_size_um, z_positions_um, step, options)
            )
        except FitError as exc:
            failures.append(BeadFailure(i, *(float(v) for v in peak), reason=str(exc)))
    return PSFResult(
        beads=tuple(fits),
        failures=tuple(failures),
        summary=_summarise(fits, failures),
        pixel_size_um=pixel_size_um,
        z_step_um=step,
        analysis_s=time.perf_counter() - t0,
    )


def _summarise(fits: Sequence[BeadFit], failures: Sequence[BeadFailure]) -> PSFSummary:
    if not fits:
        nan = float("nan")
        return PSFSummary(0, len(failures), nan, nan, nan, nan, nan, nan, nan, nan)
    a = np.array(
        [(f.fwhm_x_um, f.fwhm_y_um, f.fwhm_z_um, f.signal_to_background, f.r_squared) for f in fits]
    )
    mean, std = a.mean(axis=0), a.std(axis=0)
    return PSFSummary(
        n_beads=len(fits),
        n_failed=len(failures),
        fwhm_x_um=float(mean[0]),
        fwhm_y_um=float(mean[1]),
        fwhm_z_um=float(mean[2]),
        fwhm_x_std_um=float(std[0]),
        fwhm_y_std_um=float(std[1]),
        fwhm_z_std_um=float(std[2]),
        signal_to_background=float(mean[3]),
        r_squared=float(mean[4]),
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
    stack: np.ndarray, peak: np.ndarray, options: PSFOptions
) -> tuple[tuple[slice, slice, slice], tuple[int, int, int]]:
    z, y, x = (int(v) for v in peak)
    nz, ny, nx = stack.shape
    # widths from profiles through a 3 x 3 column/row around the peak: cheap and robust
    pz = stack[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].sum(axis=(1, 2), dtype=float)
    py = stack[z, :, max(x - 1, 0) : x + 2].sum(axis=1, dtype=float)
    px = stack[z, max(y - 1, 0) : y + 2, :].sum(axis=0, dtype=float)
    halves = []
    for profile, c in ((pz, z), (py, y), (px, x)):
        lo, hi = max(c - 40, 0), min(c + 41, len(profile))
        width = _half_max_width(profile[lo:hi], c - lo)
        halves.append(max(int(np.ceil(options.window_fwhm * width)), options.min_window_px))
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
        return _gauss(x, *p) - profile

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


def _fit_bead(
    index: int,
    stack: np.ndarray,
    peak: np.ndarray,
    peaks: np.ndarray,
    pixel_size_um: float,
    z_positions_um: np.ndarray,
    z_step: float,
    options: PSFOptions,
) -> BeadFit:
    if peak[0] < 0:
        raise FitError("marked position is outside the image")
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
    )


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
        return (p[0] * g + p[7]).ravel() - data

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


# -- live analysis -----------------------------------------------------------------------------


@dataclass
class _Job:
    """One submission: how to get hold of the stack once the worker starts on it."""

    channel: int
    acquire: Callable[[], AbstractContextManager[StackView | np.ndarray | None]]
    pixel_size_um: float
    z_positions_um: np.ndarray | None
    version: int = 0


class PSFAnalyzer:
    """Analyses the newest stack of each channel in one worker thread, dropping older ones.

    ``submit`` (any thread, returns at once) hands over a stack; ``attach(engine)`` makes every
    completed stack of the engine a submission, leased from the engine only when the worker
    starts on it. Results arrive through ``result_ready(result)`` on the worker thread and
    are kept in ``latest(channel)``. ``set_positions`` pins the analysis to user-marked beads.
    """

    def __init__(self, options: PSFOptions = PSFOptions()) -> None:
        self.options = options
        self.result_ready: Callbacks[[PSFResult]] = Callbacks("result_ready")
        self.analysis_failed: Callbacks[[str]] = Callbacks("analysis_failed")
        self.analysed = 0
        self.superseded = 0
        self._positions: np.ndarray | None = None
        self._pending: dict[int, _Job] = {}
        self._latest: dict[int, PSFResult] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._engine: AcquisitionEngine | None = None
        self._pixel_size_um: float | None = None
        self._thread = threading.Thread(target=self._work, name="lablink-psf", daemon=True)
        self._thread.start()

    def set_positions(self, positions: np.ndarray | None) -> None:
        """Bead positions in stack pixels ((y, x) or (z, y, x)); None: find beads again."""
        self._positions = None if positions is None else np.array(positions, dtype=float)

    def submit(
        self,
        stack: np.ndarray,
        *,
        pixel_size_um: float,
        z_positions_um: np.ndarray | None = None,
        z_step_um: float | None = None,
        channel: int = 0,
        version: int = 0,
    ) -> None:
        """Analyse ``stack`` (not copied: do not change it until its result arrives)."""
        if z_positions_um is None:
            if z_step_um is None:
                raise ValueError("give z_positions_um or z_step_um")
            z_positions_um = np.arange(stack.shape[0]) * z_step_um
        self._enqueue(
            _Job(channel, lambda: nullcontext(stack), pixel_size_um, z_positions_um, version)
        )

    def attach(self, engine: AcquisitionEngine, pixel_size_um: float | None = None) -> None:
        """Analyse every stack ``engine`` completes (the widget passes its pixel size)."""
        self.detach()
        self._engine = engine
        self._pixel_size_um = pixel_size_um
        engine.stack_completed.connect(self._on_stack)

    def detach(self) -> None:
        if self._engine is not None:
            self._engine.stack_completed.disconnect(self._on_stack)
            self._engine = None

    def latest(self, channel: int = 0) -> PSFResult | None:
        return self._latest.get(channel)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being analysed (for scripts and tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        self.detach()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> PSFAnalyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------

    def _on_stack(self, view: StackView) -> None:
        engine = self._engine
        if engine is None:
            return
        channel = view.channel
        geometry = engine.geometry
        pixel = self._pixel_size_um or (geometry.pixel_size_um if geometry else None) or 1.0
        self._enqueue(
            _Job(channel, lambda: engine.lease_newest(channel), pixel, None, view.version)
        )

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                return
            if job.channel in self._pending:
                self.superseded += 1
            self._pending[job.channel] = job
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    return
                channel = next(iter(self._pending))
                job = self._pending.pop(channel)
                self._busy = True
            try:
                self._run(job)
            except Exception as exc:
                log.exception("PSF analysis failed")
                self.analysis_failed(f"PSF analysis of channel {job.channel} failed: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, job: _Job) -> None:
        with job.acquire() as got:
            if got is None:
                return
            if isinstance(got, np.ndarray):
                stack, z, version, stack_index = got, job.z_positions_um, job.version, -1
            else:  # a leased engine stack: the newest, which may be newer than the one notified
                stack, z, version, stack_index = (
                    got.data,
                    got.z_positions_um,
                    got.version,
                    got.stack_index,
                )
            result = analyze_stack(
                stack,
                pixel_size_um=job.pixel_size_um,
                z_positions_um=z,
                positions=self._positions,
                options=self.options,
            )
        result = replace(result, channel=job.channel, version=version, stack_index=stack_index)
        self._latest[job.channel] = result
        self.analysed += 1
        self.result_ready(result)
