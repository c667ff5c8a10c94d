"""The microscope backends the PSF widget offers, and how each is built from the form.

Only backends whose package imports are offered, so a user without Micro-Manager sees the
simulated microscope alone instead of a choice that can only fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec

from napari_lablink.acquisition import (
    Backend,
    PycromanagerBackend,
    PymmcorePlusBackend,
    SimulatedMicroscope,
)
from napari_lablink.acquisition.backends.optics import WidefieldPSF

__all__ = [
    "SIMULATED",
    "SIMULATED_OPTICS",
    "BackendFactory",
    "MMSettings",
    "default_adapter_path",
    "default_backends",
    "simulated_microscope",
]

SIMULATED = "simulated microscope"
PYMMCORE = "pymmcore-plus"
PYCRO_JAVA = "pycromanager (Micro-Manager app)"
PYCRO_PYTHON = "pycromanager (Python backend)"


@dataclass(frozen=True)
class MMSettings:
    """What the form knows about a Micro-Manager installation (empty: use what is running)."""

    config_file: str | None = None
    adapter_path: str | None = None


BackendFactory = Callable[[MMSettings], Backend]

#: The simulated microscope's optics: an NA 1.4 oil objective. GFP beads sit in mounting
#: medium matched to the oil; RFP beads 3 µm deep in a medium of index 1.45, so their PSF shows
#: the spherical aberration a mismatch brings (a lopsided axial profile), as real samples do.
SIMULATED_OPTICS = {
    "GFP": WidefieldPSF(na=1.4, wavelength_um=0.51),
    "RFP": WidefieldPSF(na=1.4, wavelength_um=0.61, sample_index=1.45, depth_um=3.0),
}


def simulated_microscope(settings: MMSettings | None = None) -> SimulatedMicroscope:
    """Two bead channels imaged through realistic optics (``SIMULATED_OPTICS``).

    The PSF tables are computed once per process (about a second each) and cached, so
    rendering stays an interpolation. The frame rate is capped high so the exposure time sets
    the pace, as on a real camera.
    """
    return SimulatedMicroscope(
        frame_shape=(256, 256),
        pixel_size_um=0.1,
        channel_psfs=dict(SIMULATED_OPTICS),
        n_beads=8,
        frame_rate_hz=2000.0,
        ring_frames=64,  # a camera's circular buffer: rides out a busy display thread
    )


def default_adapter_path() -> str | None:
    """Micro-Manager's demo adapters (package mm-test-adapters), if installed."""
    if find_spec("mm_test_adapters") is None:
        return None
    from mm_test_adapters import device_adapter_path

    return str(device_adapter_path())


def _pymmcore(settings: MMSettings) -> Backend:
    adapters = (settings.adapter_path,) if settings.adapter_path else ()
    return PymmcorePlusBackend(config_file=settings.config_file, adapter_paths=adapters)


def _pycro_java(settings: MMSettings) -> Backend:
    return PycromanagerBackend()


def _pycro_python(settings: MMSettings) -> Backend:
    return PycromanagerBackend(
        python_backend=True, mm_app_path=settings.adapter_path, config_file=settings.config_file
    )


def default_backends() -> dict[str, BackendFactory]:
    """Name -> factory for every backend usable in this environment, simulated first."""
    choices: dict[str, BackendFactory] = {SIMULATED: simulated_microscope}
    if find_spec("pymmcore_plus") is not None:
        choices[PYMMCORE] = _pymmcore
    if find_spec("pycromanager") is not None:
        choices[PYCRO_JAVA] = _pycro_java
        choices[PYCRO_PYTHON] = _pycro_python
    return choices
