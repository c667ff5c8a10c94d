"""PSF measurement on bead stacks: find beads, fit each, report FWHM x/y/z in micrometres.

``finding`` locates beads, ``fitting`` measures one bead, ``analysis`` runs a whole stack,
``alignment`` reads what to align by off the beads, ``theory`` gives the ideal widths,
and ``analyzer`` does that live, newest-wins, in a worker thread.
"""

from napari_lablink.acquisition.psf.alignment import assess_alignment
from napari_lablink.acquisition.psf.analysis import analyze_stack
from napari_lablink.acquisition.psf.analyzer import PSFAnalyzer
from napari_lablink.acquisition.psf.finding import find_beads, refine_positions
from napari_lablink.acquisition.psf.results import (
    FWHM_PER_SIGMA,
    Alignment,
    BeadFailure,
    BeadFit,
    FitError,
    PSFOptions,
    PSFResult,
    PSFSummary,
)
from napari_lablink.acquisition.psf.theory import Optics, theoretical_fwhm_um

__all__ = [
    "FWHM_PER_SIGMA",
    "Alignment",
    "BeadFailure",
    "BeadFit",
    "FitError",
    "Optics",
    "PSFAnalyzer",
    "PSFOptions",
    "PSFResult",
    "PSFSummary",
    "analyze_stack",
    "assess_alignment",
    "find_beads",
    "refine_positions",
    "theoretical_fwhm_um",
]
