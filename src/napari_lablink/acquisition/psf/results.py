"""What a PSF measurement reports: options in, per-bead fits and a summary out."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

FWHM_PER_SIGMA = float(2.0 * np.sqrt(2.0 * np.log(2.0)))
Method = Literal["lines", "separable", "gaussian3d"]


@dataclass(frozen=True)
class PSFOptions:
    """How beads are found and fitted.

    ``min_snr``: a bead's peak must stand this many noise standard deviations above the
    background of the maximum projection. ``window_fwhm``: the fit window extends this many
    (estimated) FWHMs either side of the peak. ``method``: ``"lines"`` measures along the
    lines through the bead's maximum (right on real optics); ``"separable"`` and
    ``"gaussian3d"`` fit Gaussians (exact only for a Gaussian PSF). Beads are reported as
    failed when ``quality`` (``"lines"``) or R-squared (the Gaussian methods) is below
    ``min_quality`` or ``min_r_squared``. ``side_lobe_ratio``: a detected spot near a brighter
    bead and at most this share of its brightness is taken for its ring or lobe, not a bead
    (0 keeps every spot).
    """

    method: Method = "lines"
    max_beads: int = 50
    min_snr: float = 10.0
    min_separation_px: int = 3
    window_fwhm: float = 1.75
    min_window_px: int = 4
    min_r_squared: float = 0.5
    min_quality: float = 0.6
    refine_radius_px: int = 3
    side_lobe_ratio: float = 0.6


DEFAULT_OPTIONS = PSFOptions()


@dataclass(frozen=True)
class BeadFit:
    """One bead: centre (stack pixels and micrometres), widths, brightness and fit quality.

    ``signal_to_background`` is the fitted peak amplitude over the background level.
    ``r_squared`` is the share of the window's variance the model explains (it falls with the
    noise); ``quality`` the share of the bead's signal it explains with the noise's share taken
    out (near 1 for a true bead whatever the signal; the Gaussian methods report R-squared).
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
    quality: float


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
    quality: float


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
    alignment: Alignment | None = None  # the live analyzer adds the alignment read-outs
    run_id: int = -1  # the engine run the stack came from (-1: submitted directly)

    def rows(self) -> list[dict[str, object]]:
        """One dict per bead (failed ones with their reason), e.g. for a table or CSV."""
        keyed = [(b.bead, {**asdict(b), "status": "ok"}) for b in self.beads]
        keyed += [(f.bead, {**asdict(f), "status": f"failed: {f.reason}"}) for f in self.failures]
        keyed.sort(key=lambda pair: pair[0])
        return [row for _, row in keyed]

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


# -- what a microscopist aligns by (filled by psf.alignment) -------------------------------


@dataclass(frozen=True, eq=False)
class Profile:
    """Samples along one axis through a bead and the fitted curve at the same positions."""

    position_um: np.ndarray
    values: np.ndarray
    centre_um: float
    fwhm_um: float
    amplitude: float
    background: float

    def model(self, position_um: np.ndarray) -> np.ndarray:
        """The fit drawn as a Gaussian of the measured width, height and centre."""
        sigma = self.fwhm_um / FWHM_PER_SIGMA
        values: np.ndarray = self.background + self.amplitude * np.exp(
            -0.5 * ((np.asarray(position_um) - self.centre_um) / sigma) ** 2
        )
        return values

    @property
    def fit(self) -> np.ndarray:
        return self.model(self.position_um)


@dataclass(frozen=True, eq=False)
class BeadAlignment:
    """One bead's read-outs and its x, y and z profiles."""

    bead: int
    axial_asymmetry: float
    astigmatism_um: float
    drift_x: float
    drift_y: float
    x: Profile
    y: Profile
    z: Profile


@dataclass(frozen=True, eq=False)
class Alignment:
    """Medians over the beads, the field dependence and the average PSF of one stack."""

    beads: tuple[BeadAlignment, ...]
    axial_asymmetry: float
    astigmatism_um: float
    drift_x: float
    drift_y: float
    focus_tilt: tuple[float, float]  # dz/dy, dz/dx of the beads' foci, µm per µm
    fwhm_field_change: tuple[float, float, float]  # x, y, z: range across the beads / mean
    average_psf: np.ndarray | None  # (z, y, x), peak near 1, centred
    voxel_um: tuple[float, float, float]
    n_averaged: int = 0
    extras: dict[str, float] = field(default_factory=dict)

    def bead(self, index: int) -> BeadAlignment | None:
        for b in self.beads:
            if b.bead == index:
                return b
        return None
