"""PSF measurement on bead stacks: find beads, fit each, report FWHM x/y/z in micrometres.

``finding`` locates beads, ``fitting`` measures one bead, ``analysis`` runs a whole stack and
``analyzer`` does that live, newest-wins, in a worker thread.
"""

from napari_lablink.acquisition.psf.analysis import analyze_stack
from napari_lablink.acquisition.psf.analyzer import PSFAnalyzer
from napari_lablink.acquisition.psf.finding import find_beads, refine_positions
from napari_lablink.acquisition.psf.results import (
    FWHM_PER_SIGMA,
    BeadFailure,
    BeadFit,
    FitError,
    PSFOptions,
    PSFResult,
    PSFSummary,
)

__all__ = [
    "FWHM_PER_SIGMA",
    "BeadFailure",
    "BeadFit",
    "FitError",
    "PSFAnalyzer",
    "PSFOptions",
    "PSFResult",
    "PSFSummary",
    "analyze_stack",
    "find_beads",
    "refine_positions",
]
