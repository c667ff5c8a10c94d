"""Acquisition core: microscope backends, the z-stack engine and live PSF analysis.

No napari, Qt or magicgui here: the dock widget builds on this API, and scripts can use it alone::

    from napari_lablink.acquisition import AcquisitionEngine, SimulatedMicroscope, StackPlan

    with AcquisitionEngine(SimulatedMicroscope()) as engine:
        engine.start(StackPlan(z_start_um=0, z_end_um=10, n_slices=41, n_stacks=3))
        engine.wait()
        stack = engine.newest_stack(0).data
"""

from napari_lablink.acquisition.backends.base import Backend
from napari_lablink.acquisition.backends.optics import WidefieldPSF
from napari_lablink.acquisition.backends.pycromanager import PycromanagerBackend
from napari_lablink.acquisition.backends.pymmcore import PymmcorePlusBackend
from napari_lablink.acquisition.backends.simulated import GroundTruth, PSFModel, SimulatedMicroscope
from napari_lablink.acquisition.buffers import StackView
from napari_lablink.acquisition.engine import AcquisitionEngine, EngineState, StackGeometry
from napari_lablink.acquisition.psf import (
    BeadFailure,
    BeadFit,
    PSFAnalyzer,
    PSFOptions,
    PSFResult,
    PSFSummary,
    analyze_stack,
    find_beads,
)
from napari_lablink.acquisition.stats import AcquisitionStats
from napari_lablink.acquisition.types import (
    AcquisitionError,
    BackendInfo,
    BackendUnavailableError,
    CameraError,
    FrameInfo,
    FrameSink,
    StackPlan,
    ZMode,
)

__all__ = [
    "AcquisitionEngine",
    "AcquisitionError",
    "AcquisitionStats",
    "Backend",
    "BackendInfo",
    "BackendUnavailableError",
    "BeadFailure",
    "BeadFit",
    "CameraError",
    "EngineState",
    "FrameInfo",
    "FrameSink",
    "GroundTruth",
    "PSFAnalyzer",
    "PSFModel",
    "PSFOptions",
    "PSFResult",
    "PSFSummary",
    "PycromanagerBackend",
    "PymmcorePlusBackend",
    "SimulatedMicroscope",
    "StackGeometry",
    "StackPlan",
    "StackView",
    "WidefieldPSF",
    "ZMode",
    "analyze_stack",
    "find_beads",
]
