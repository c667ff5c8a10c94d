"""Realistic widefield optics for the simulated microscope, computed with ``psfmodels``.

The separable Gaussian of ``PSFModel`` is fast, but a PSF measurement tuned on it can be biased
on real optics: an objective's PSF has Airy rings, a defocus-dependent shape and, when the
immersion and sample indices differ, spherical aberration that grows with depth. ``WidefieldPSF``
describes such optics; ``psfmodels`` (Aguet's vectorial or Gibson-Lanni's scalar model)
computes the PSF once into a radial table (intensity against defocus and distance from the
axis, the PSF being rotationally symmetric), which is cached per optics, so live rendering only
interpolates.

A camera pixel integrates the light falling on it: ``render`` averages the table over each
pixel's square (a k x k midpoint rule, k chosen from the pixel size relative to the PSF).
Ground truth follows the field's definition: the full width at half maximum of the noise-free
PSF box-averaged over one camera pixel, along the x, y and z lines through its 3-D maximum.
Defocus is counted from that maximum, so a bead's z is where it looks sharpest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

import numpy as np

__all__ = ["PSFTable", "WidefieldPSF", "fwhm_of_samples"]

_TRUTH_SUBSAMPLES = 21  # midpoint rule per pixel when computing the truth: < 0.1 % error


@dataclass(frozen=True)
class WidefieldPSF:
    """A widefield objective imaging point sources at ``depth_um`` below the coverslip.

    ``immersion_index`` is the medium the objective was designed for; ``sample_index`` the
    medium around the beads. With a mismatch the PSF is aberrated, more so the deeper the beads
    lie. ``wavelength_um`` is the emission wavelength.
    """

    na: float = 1.4
    wavelength_um: float = 0.6
    immersion_index: float = 1.515
    sample_index: float = 1.515
    depth_um: float = 0.0
    model: Literal["vectorial", "scalar"] = "vectorial"

    def __post_init__(self) -> None:
        if not 0.0 < self.na < self.immersion_index:
            raise ValueError(
                f"NA {self.na} must be positive and below the immersion index "
                f"{self.immersion_index}"
            )
        if self.wavelength_um <= 0 or self.depth_um < 0:
            raise ValueError("the wavelength must be positive and the depth not negative")

    @property
    def table(self) -> PSFTable:
        return _table(self)

    def fwhm_um(self, pixel_size_um: float) -> tuple[float, float, float]:
        """Ground truth (x, y, z) for a camera with this pixel size."""
        return _truth(self, pixel_size_um)[:3]

    def peak(self, pixel_size_um: float) -> float:
        """The box-averaged PSF's maximum, by which ``render`` divides (so its peak is 1)."""
        return _truth(self, pixel_size_um)[3]

    def total(self, pixel_size_um: float) -> float:
        """Sum of ``render`` over an in-focus frame: converts photons per bead to a peak."""
        return _in_focus_sum(self, pixel_size_um)

    def window_radius_um(self) -> float:
        return float(self.table.r_um[-1])

    def visible(self, defocus_um: np.ndarray) -> np.ndarray:
        z = self.table.z_um
        inside: np.ndarray = (defocus_um > z[0]) & (defocus_um < z[-1])
        return inside

    def render(
        self, defocus_um: float, dy_um: np.ndarray, dx_um: np.ndarray, pixel_size_um: float
    ) -> np.ndarray:
        """Expected intensity of the pixels centred (dy, dx) from the bead, peak 1 in focus."""
        values = self.table.box_average(defocus_um, dy_um, dx_um, pixel_size_um)
        values /= self.peak(pixel_size_um)
        return values


@dataclass(frozen=True)
class PSFTable:
    """Intensity on a (defocus, radius) grid; defocus 0 is the on-axis maximum."""

    z_um: np.ndarray
    r_um: np.ndarray
    values: np.ndarray  # (len(z_um), len(r_um))
    focus: int

    def profile(self, defocus_um: float) -> np.ndarray:
        """The radial profile at a defocus, linear between the table's planes."""
        z = self.z_um
        t = float(np.interp(defocus_um, z, np.arange(len(z), dtype=float)))
        i = min(int(t), len(z) - 2)
        f = t - i
        row: np.ndarray = (1.0 - f) * self.values[i] + f * self.values[i + 1]
        return row

    def box_average(
        self,
        defocus_um: float,
        dy_um: np.ndarray,
        dx_um: np.ndarray,
        pixel_size_um: float,
        subsamples: int | None = None,
    ) -> np.ndarray:
        """Mean intensity over the pixels centred at (dy, dx) (broadcast together)."""
        k = subsamples or self.subsamples(pixel_size_um)
        row = self.profile(defocus_um)
        offsets = ((np.arange(k) + 0.5) / k - 0.5) * pixel_size_um
        dy, dx = np.broadcast_arrays(np.asarray(dy_um, float), np.asarray(dx_um, float))
        out = np.zeros(dy.shape)
        for oy in offsets:
            yy = (dy + oy) ** 2
            for ox in offsets:
                out += np.interp(np.sqrt(yy + (dx + ox) ** 2), self.r_um, row, right=0.0)
        out /= k * k
        return out

    def subsamples(self, pixel_size_um: float) -> int:
        """Midpoints per pixel side, at most 1/8 of the PSF's FWHM apart (the table's radial
        step is 1/12 of it): the midpoint rule is then within ~0.3 % of the pixel's mean."""
        step = float(self.r_um[1])
        fine = max(int(np.ceil(pixel_size_um / (1.5 * step))), 1)
        return min(fine | 1, 11)


def fwhm_of_samples(values: np.ndarray, spacing: float, centre: int) -> float:
    """Width at half of ``values[centre]``, the crossings interpolated linearly."""
    half = float(values[centre]) / 2
    left = np.flatnonzero(values[:centre] < half)
    right = np.flatnonzero(values[centre:] < half)
    if not len(left) or not len(right):
        return float("nan")
    i, j = int(left[-1]), centre + int(right[0])
    lo = i + (half - values[i]) / (values[i + 1] - values[i])
    hi = j - 1 + (values[j - 1] - half) / (values[j - 1] - values[j])
    return float((hi - lo) * spacing)


def _model_psf(psf: WidefieldPSF, zv: np.ndarray, nx: int, dxy: float) -> np.ndarray:
    import psfmodels

    params = {
        "NA": psf.na,
        "ni": psf.immersion_index,
        "ni0": psf.immersion_index,
        "ns": psf.sample_index,
        "sf": 1,
        "mode": 0,  # sample at points: pixel integration is done here, for any bead position
    }
    # psfmodels' functions carry no annotations
    compute = cast(
        Callable[..., np.ndarray],
        psfmodels.vectorial_psf if psf.model == "vectorial" else psfmodels.scalar_psf,
    )
    values = compute(
        np.ascontiguousarray(zv, dtype=float),
        nx=nx,
        dxy=dxy,
        pz=psf.depth_um,
        wvl=psf.wavelength_um,
        params=params,
        normalize=False,
    )
    return values


@lru_cache(maxsize=16)
def _table(psf: WidefieldPSF) -> PSFTable:
    """Two passes: on the axis only to find the focus and the axial extent, then the table."""
    lateral = 0.51 * psf.wavelength_um / psf.na
    n = psf.immersion_index
    axial = 0.88 * psf.wavelength_um / (n - float(np.sqrt(n**2 - psf.na**2)))
    span = 4 * axial + psf.depth_um * 0.5 + 2.0
    zv = psf.depth_um + np.arange(-span, span, axial / 20)
    on_axis = _model_psf(psf, zv, 1, lateral / 10)[:, 0, 0]
    focus = int(np.argmax(on_axis))
    width = fwhm_of_samples(on_axis, float(zv[1] - zv[0]), focus)
    if not np.isfinite(width):
        width = axial
    half_range = float(np.clip(3.0 * width, 2.5, 10.0))
    dz = width / 15
    z = np.arange(-half_range, half_range + dz / 2, dz)
    dr = lateral / 12
    n_r = int(np.ceil(max(1.6, 6.0 * lateral) / dr))
    grid = _model_psf(psf, zv[focus] + z, 2 * n_r + 1, dr)
    values = np.ascontiguousarray(grid[:, n_r, n_r:])
    return PSFTable(
        z_um=z, r_um=np.arange(n_r + 1) * dr, values=values, focus=int(np.argmin(np.abs(z)))
    )


@lru_cache(maxsize=64)
def _truth(psf: WidefieldPSF, pixel_size_um: float) -> tuple[float, float, float, float]:
    """Widths of the box-averaged PSF as rendered (linear between the table's planes).

    Box-averaging is linear in the profile, so the on-axis value of every plane is one dot
    product with the averaged interpolation weights of the k x k midpoints' radii; and the
    maximum of a function linear between planes lies on a plane.
    """
    table = _table(psf)
    k = _TRUTH_SUBSAMPLES
    offsets = ((np.arange(k) + 0.5) / k - 0.5) * pixel_size_um
    radii = np.hypot(offsets[:, None], offsets[None, :]).ravel()
    step = float(table.r_um[1])
    weights = np.zeros(len(table.r_um))
    index = radii / step
    low = np.minimum(index.astype(int), len(weights) - 2)
    frac = index - low
    np.add.at(weights, low, 1.0 - frac)
    np.add.at(weights, low + 1, frac)
    weights /= len(radii)
    on_axis = table.values @ weights
    top = int(np.argmax(on_axis))
    fwhm_z = fwhm_of_samples(on_axis, float(table.z_um[1] - table.z_um[0]), top)
    x = np.arange(-len(table.r_um) + 1, len(table.r_um)) * step
    line = table.box_average(float(table.z_um[top]), np.zeros(1), x, pixel_size_um, k)
    centre = len(table.r_um) - 1
    fwhm_xy = fwhm_of_samples(line, step, int(np.argmax(line)))
    return fwhm_xy, fwhm_xy, fwhm_z, float(max(line[centre], on_axis[top]))


@lru_cache(maxsize=64)
def _in_focus_sum(psf: WidefieldPSF, pixel_size_um: float) -> float:
    table = _table(psf)
    n = int(np.ceil(table.r_um[-1] / pixel_size_um))
    grid = np.arange(-n, n + 1) * pixel_size_um
    plane = table.box_average(0.0, grid[:, None], grid[None, :], pixel_size_um)
    return float(plane.sum() / psf.peak(pixel_size_um))
