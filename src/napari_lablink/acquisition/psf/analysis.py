"""A whole stack: find (or take) the beads, fit each, summarise; a failed bead is skipped."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from napari_lablink.acquisition.psf.finding import find_beads, refine_positions
from napari_lablink.acquisition.psf.fitting import fit_bead
from napari_lablink.acquisition.psf.results import (
    DEFAULT_OPTIONS,
    BeadFailure,
    BeadFit,
    FitError,
    PSFOptions,
    PSFResult,
    PSFSummary,
)


def analyze_stack(
    stack: np.ndarray,
    *,
    pixel_size_um: float,
    z_positions_um: np.ndarray | None = None,
    z_step_um: float | None = None,
    positions: np.ndarray | None = None,
    options: PSFOptions = DEFAULT_OPTIONS,
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
                fit_bead(i, stack, peak, peaks, pixel_size_um, z_positions_um, step, options)
            )
        except FitError as exc:
            z, y, x = (float(v) for v in peak)
            failures.append(BeadFailure(i, z, y, x, reason=str(exc)))
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
        return PSFSummary(0, len(failures), nan, nan, nan, nan, nan, nan, nan, nan, nan)
    a = np.array(
        [
            (f.fwhm_x_um, f.fwhm_y_um, f.fwhm_z_um, f.signal_to_background, f.r_squared, f.quality)
            for f in fits
        ]
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
        quality=float(mean[5]),
    )
