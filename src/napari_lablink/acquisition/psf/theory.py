"""The FWHMs a perfect widefield objective would give: the reference a measured PSF is held to.

The lateral width is that of the Airy disc's intensity, ``0.51 λ / NA``; the axial width
``0.88 λ / (n - sqrt(n² - NA²))`` holds at high NA, where the paraxial ``2 n λ / NA²``
underestimates it (both as compiled by Cole, Jinadasa and Brown, Nature Protocols 2011, for
widefield). They ignore the camera pixel and any aberration, so a measured PSF is never
narrower than about these numbers; how much wider it is says how far from ideal the optics are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Optics", "theoretical_fwhm_um"]


@dataclass(frozen=True)
class Optics:
    """What the widget asks the user: numerical aperture, emission wavelength, immersion index."""

    na: float = 1.4
    wavelength_um: float = 0.52
    immersion_index: float = 1.515

    def __post_init__(self) -> None:
        if self.wavelength_um <= 0 or not 0 < self.na < self.immersion_index:
            raise ValueError(
                f"need a positive wavelength and 0 < NA < n, got λ={self.wavelength_um} µm, "
                f"NA={self.na}, n={self.immersion_index}"
            )

    def fwhm_um(self) -> tuple[float, float, float]:
        """(x, y, z) widths of the ideal widefield PSF."""
        return theoretical_fwhm_um(self.na, self.wavelength_um, self.immersion_index)


def theoretical_fwhm_um(
    na: float, wavelength_um: float, immersion_index: float
) -> tuple[float, float, float]:
    """(x, y, z) FWHM of an ideal widefield PSF in micrometres."""
    lateral = 0.51 * wavelength_um / na
    n = immersion_index
    axial = 0.88 * wavelength_um / (n - math.sqrt(n * n - na * na))
    return lateral, lateral, axial
