"""``File > Open Sample``: the bead stack has the PSF it claims, the MIBItiff is a real one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from napari_lablink._napari.sample_data import (
    BEAD_PSF,
    BEAD_Z_STEP_UM,
    MIBI_FOV_UM,
    MIBI_PANEL,
    bead_stack,
    mibitiff_sample,
)
from napari_lablink.acquisition.backends.simulated import FWHM_PER_SIGMA


def _fwhm(profile: np.ndarray, step: float) -> float:
    def gauss(x, a, mu, sigma, b):
        return a * np.exp(-0.5 * ((x - mu) / sigma) ** 2) + b

    x = np.arange(len(profile)) * step
    start = (profile.max() - profile.min(), x[np.argmax(profile)], 2 * step, profile.min())
    (_, _, sigma, _), _ = curve_fit(gauss, x, profile.astype(float), p0=start)
    return abs(sigma) * FWHM_PER_SIGMA


def test_bead_stack_has_the_psf_its_metadata_states() -> None:
    (stack, image, kind), (beads, _points, points_kind) = bead_stack()
    assert (kind, points_kind) == ("image", "points")
    assert stack.shape == (41, 160, 160) and stack.dtype == np.uint16
    z_step, pixel, _ = image["scale"]
    truth = image["metadata"]["lablink"]["psf_truth"]
    fwhm_x, _, fwhm_z = BEAD_PSF.fwhm_um(pixel)
    assert (truth["fwhm_x_um"], truth["fwhm_z_um"]) == (fwhm_x, fwhm_z)
    assert z_step == BEAD_Z_STEP_UM == truth["z_step_um"] and pixel == truth["pixel_size_um"]
    np.testing.assert_allclose(beads, truth["beads_zyx_um"], atol=1e-4)
    assert len(beads) == 6
    for bz, by, bx in beads:
        z, y, x = round(bz / z_step), round(by / pixel), round(bx / pixel)
        window = stack[z - 3 : z + 4, y - 3 : y + 4, x - 3 : x + 4]
        peak = np.unravel_index(np.argmax(window), window.shape)
        assert np.abs(np.subtract(peak, 3)).max() <= 1  # the brightest voxel is at the bead
        measured_x = _fwhm(stack[z, y, x - 12 : x + 13], pixel)
        measured_z = _fwhm(stack[max(z - 15, 0) : z + 16, y, x], z_step)
        assert measured_x == pytest.approx(fwhm_x, rel=0.2)
        assert measured_z == pytest.approx(fwhm_z, rel=0.2)
    # Generated the same way every time.
    np.testing.assert_array_equal(bead_stack()[0][0], stack)


def test_mibitiff_sample_is_a_read_back_mibitiff() -> None:
    (data, kwargs, kind), *rest = mibitiff_sample()
    assert kind == "image" and not rest
    assert data.shape == (5, 256, 256) and data.dtype == np.uint16
    expected = sorted(f"{target} ({mass})" for mass, target, _, _ in MIBI_PANEL)
    assert sorted(kwargs["name"]) == expected
    assert kwargs["channel_axis"] == 0 and kwargs["blending"] == "additive"
    assert kwargs["scale"] == (MIBI_FOV_UM / 256, MIBI_FOV_UM / 256)
    mibi = kwargs["metadata"]["lablink"]["mibitiff"]
    assert (mibi["run"], mibi["fov_id"], mibi["size"]) == ("sample-run", "FOV1", MIBI_FOV_UM)
    channel = dict(zip(kwargs["name"], data, strict=True))
    # Ion counts where the markers are: DNA in nuclei, gold on the bare slide, not elsewhere.
    dna, gold = channel["dsDNA (89)"], channel["Au (197)"]
    assert dna.max() > 5 and gold.max() > 3
    assert np.mean(dna[gold > 0] > 0) < 0.2


@pytest.mark.viewer
def test_samples_open_from_the_file_menu(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-lablink", "beads")
    viewer.open_sample("napari-lablink", "mibitiff")
    names = [layer.name for layer in viewer.layers]
    assert names[:2] == ["Simulated beads", "Bead centres (truth)"]
    assert "dsDNA (89)" in names and len(names) == 7
    assert viewer.layers["Simulated beads"].scale.tolist() == [0.1, 0.1, 0.1]
