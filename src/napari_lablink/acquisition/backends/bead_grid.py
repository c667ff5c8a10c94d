"""Bead samples of known PSF for checking a PSF measurement: one optics/camera configuration.

Nine sites on a 3 x 3 grid, 5 um apart (far enough that their light does not meet in a fit
window), each a single bead or a pair (a bead and, ``pair_um`` away at a random angle, one half
as bright). Every bead sits at a random sub-pixel position and a random height between two
planes, so nothing lines up with the sampling. Brightness is given as photons per bead in its
in-focus frame, which is how a camera's signal level is usually judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lablink.acquisition.backends.optics import WidefieldPSF
from napari_lablink.acquisition.backends.simulated import SimulatedMicroscope

__all__ = ["BeadConfig", "bead_sample"]

_SITE_SPACING_UM = 5.0


@dataclass(frozen=True)
class BeadConfig:
    """Optics, sampling and signal of one sample; ``name`` labels it in reports."""

    name: str
    optics: WidefieldPSF
    pixel_size_um: float
    z_step_um: float
    photons: float
    background: float = 30.0
    read_noise: float = 1.5
    pair_um: float | None = None


def bead_sample(config: BeadConfig, seed: int = 0) -> tuple[SimulatedMicroscope, np.ndarray]:
    """A microscope imaging the sample, and the stage positions of a stack through it."""
    rng = np.random.default_rng(seed)
    px = config.pixel_size_um
    fz = config.optics.fwhm_um(px)[2]
    half_range = max(2.5 * fz, 2.0)
    n_planes = int(np.ceil(2 * half_range / config.z_step_um)) + 1
    z_positions = (np.arange(n_planes) - (n_planes - 1) / 2) * config.z_step_um
    z_centre = 10.0
    size_um = 3 * _SITE_SPACING_UM
    beads: list[tuple[float, float, float]] = []
    weights: list[float] = []
    for row in range(3):
        for col in range(3):
            y = (row + 0.5) * _SITE_SPACING_UM + rng.uniform(-0.5, 0.5) * px
            x = (col + 0.5) * _SITE_SPACING_UM + rng.uniform(-0.5, 0.5) * px
            beads.append((z_centre + rng.uniform(-0.5, 0.5) * config.z_step_um, y, x))
            weights.append(1.0)
            if config.pair_um is not None:
                angle = rng.uniform(0, 2 * np.pi)
                dy, dx = config.pair_um * np.sin(angle), config.pair_um * np.cos(angle)
                z = z_centre + rng.uniform(-0.5, 0.5) * config.z_step_um
                beads.append((z, y + dy, x + dx))
                weights.append(0.5)
    peak = config.photons / config.optics.total(px)
    n = int(np.ceil(size_um / px))
    scope = SimulatedMicroscope(
        frame_shape=(n, n),
        pixel_size_um=px,
        psf=config.optics,
        beads_zyx_um=np.array(beads),
        bead_amplitudes=peak * np.array(weights),
        background=config.background,
        read_noise=config.read_noise,
        seed=seed,
    )
    return scope, z_centre + z_positions
