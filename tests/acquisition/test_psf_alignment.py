"""Alignment read-outs and the ideal widths, on stacks whose answer is known by construction."""

from __future__ import annotations

from dataclasses import replace

import matplotlib.image
import numpy as np
import pytest

from napari_lablink.acquisition import PSFModel, SimulatedMicroscope
from napari_lablink.acquisition.backends.optics import fwhm_of_samples
from napari_lablink.acquisition.psf import (
    Optics,
    PSFAnalyzer,
    analyze_stack,
    assess_alignment,
    theoretical_fwhm_um,
)
from napari_lablink.acquisition.report import write_psf_report

PX, DZ = 0.1, 0.1
Z = np.arange(61) * DZ  # 0 to 6 um
BEADS_UM = np.array([(3.0, 2.5, 2.6), (2.8, 2.4, 8.1), (3.2, 8.3, 2.9), (3.1, 8.0, 8.4)])


def test_theoretical_fwhm_matches_the_textbook_values() -> None:
    # oil, NA 1.4, 600 nm: 0.51 * 0.6 / 1.4 and 0.88 * 0.6 / (1.515 - sqrt(1.515² - 1.4²))
    x, y, z = theoretical_fwhm_um(1.4, 0.6, 1.515)
    assert x == y == pytest.approx(0.21857, abs=1e-4)
    assert z == pytest.approx(0.56409, abs=1e-4)
    # dry NA 0.8 at 500 nm: n - sqrt(n² - NA²) = 1 - 0.6
    assert Optics(na=0.8, wavelength_um=0.5, immersion_index=1.0).fwhm_um() == pytest.approx(
        (0.31875, 0.31875, 1.1)
    )
    with pytest.raises(ValueError, match="NA"):
        Optics(na=1.6, immersion_index=1.515)


def microscope(psf: PSFModel, beads: np.ndarray = BEADS_UM, **kwargs) -> SimulatedMicroscope:
    return SimulatedMicroscope(
        frame_shape=(110, 110),
        pixel_size_um=PX,
        psf=psf,
        beads_zyx_um=beads,
        amplitude=3000.0,
        amplitude_spread=0.0,
        seed=3,
        **kwargs,
    )


def alignment_of(stack: np.ndarray):
    result = analyze_stack(stack, pixel_size_um=PX, z_positions_um=Z)
    assert len(result.beads) == 4
    return result, assess_alignment(stack, result, Z)


@pytest.mark.parametrize("asymmetry", [0.3, -0.3, 0.0])
def test_axial_asymmetry_has_the_sign_and_size_of_the_lopsided_profile(asymmetry) -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9, asymmetry=asymmetry)
    _, a = alignment_of(microscope(psf).render_stack(Z))
    assert a.axial_asymmetry == pytest.approx(asymmetry, abs=0.06)


def test_lateral_drift_with_z_is_the_tilt_of_the_psf() -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9, tilt=0.25)
    _, a = alignment_of(microscope(psf).render_stack(Z))
    assert a.drift_x == pytest.approx(0.25, abs=0.04)
    assert a.drift_y == pytest.approx(0.0, abs=0.04)
    straight = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9)
    _, b = alignment_of(microscope(straight).render_stack(Z))
    assert abs(b.drift_x) < 0.04 and abs(b.drift_y) < 0.04


def astigmatic_stack(shift_um: float, seed: int = 0) -> np.ndarray:
    """Gaussian beads whose x focus lies ``shift_um / 2`` above and y focus as far below the
    bead (widths growing as a Gaussian beam's, 0.5 um Rayleigh range), with Poisson noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:110, 0:110] * PX
    expected = np.full((len(Z), 110, 110), 100.0)
    s0, zr = 0.13, 0.5
    for bz, by, bx in BEADS_UM:
        for k, z in enumerate(Z):
            sx = s0 * np.sqrt(1 + ((z - bz - shift_um / 2) / zr) ** 2)
            sy = s0 * np.sqrt(1 + ((z - bz + shift_um / 2) / zr) ** 2)
            peak = 3000.0 * s0 * s0 / (sx * sy)
            expected[k] += peak * np.exp(-0.5 * (((xx - bx) / sx) ** 2 + ((yy - by) / sy) ** 2))
    return rng.poisson(expected).astype(np.uint16)


@pytest.mark.parametrize("shift", [0.6, -0.4, 0.0])
def test_astigmatism_is_the_distance_between_the_x_and_y_foci(shift) -> None:
    _, a = alignment_of(astigmatic_stack(shift))
    assert a.astigmatism_um == pytest.approx(shift, abs=0.08)
    assert all(b.astigmatism_um == pytest.approx(shift, abs=0.12) for b in a.beads)


def test_field_dependence_sees_a_tilted_sample() -> None:
    tilted = BEADS_UM.copy()
    tilted[:, 0] = 2.6 + 0.08 * tilted[:, 2]  # the focus climbs 0.08 um per um along x
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9)
    _result, a = alignment_of(microscope(psf, tilted).render_stack(Z))
    dz_dy, dz_dx = a.focus_tilt
    assert dz_dx == pytest.approx(0.08, abs=0.01)
    assert dz_dy == pytest.approx(0.0, abs=0.01)
    # the same optics everywhere: the widths do not change across the field
    assert max(a.fwhm_field_change) < 0.08


def test_average_psf_is_centred_normalised_and_as_wide_as_the_truth() -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.4, fwhm_z_um=0.9)
    _result, a = alignment_of(microscope(psf).render_stack(Z))
    avg = a.average_psf
    assert avg is not None and a.n_averaged == 4
    centre = tuple(s // 2 for s in avg.shape)
    assert np.unravel_index(np.argmax(avg), avg.shape) == centre
    assert avg[centre] == pytest.approx(1.0, abs=0.1)
    cz, cy, cx = centre
    # linear registration blurs a little: within 10 % of the truth
    assert fwhm_of_samples(avg[cz, cy, :], PX, cx) == pytest.approx(0.3, rel=0.1)
    assert fwhm_of_samples(avg[cz, :, cx], PX, cy) == pytest.approx(0.4, rel=0.1)
    assert fwhm_of_samples(avg[:, cy, cx], DZ, cz) == pytest.approx(0.9, rel=0.1)


def test_profiles_carry_data_and_the_fitted_curve_through_each_bead() -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9)
    result, a = alignment_of(microscope(psf).render_stack(Z))
    fit = result.beads[0]
    bead = a.bead(fit.bead)
    assert bead is not None
    for profile, centre in ((bead.x, fit.x_um), (bead.y, fit.y_um), (bead.z, fit.z_um)):
        assert profile.values.shape == profile.fit.shape == profile.position_um.shape
        top = profile.position_um[np.argmax(profile.fit)]
        assert top == pytest.approx(centre, abs=0.1)
        # the curve is the fit: it follows the data to within the noise at the peak
        assert profile.fit.max() == pytest.approx(profile.values.max(), rel=0.15)


def test_the_analyzer_adds_the_alignment_to_every_result() -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9, tilt=0.25)
    stack = microscope(psf).render_stack(Z)
    with PSFAnalyzer() as analyzer:
        analyzer.submit(stack, pixel_size_um=PX, z_positions_um=Z)
        assert analyzer.wait_idle(60)
        result = analyzer.latest()
    assert result is not None and result.alignment is not None
    assert result.alignment.drift_x == pytest.approx(0.25, abs=0.04)


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_psf_report_is_written_as_png_or_pdf(tmp_path, suffix) -> None:
    psf = PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.3, fwhm_z_um=0.9)
    stack = microscope(psf).render_stack(Z)
    result, a = alignment_of(stack)
    result = replace(result, alignment=a)
    path = write_psf_report(
        tmp_path / f"report{suffix}",
        result,
        stack,
        settings={"channel": "GFP", "exposure": "2 ms"},
        optics=Optics(na=1.4, wavelength_um=0.51),
    )
    head = path.read_bytes()[:8]
    if suffix == ".pdf":
        assert head.startswith(b"%PDF")
        assert b"/Image" in path.read_bytes() or path.stat().st_size > 20_000
    else:
        assert head == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 800 and image.shape[1] > 1200  # A4 landscape at 110 dpi
        assert image[..., :3].std() > 0.05  # drawn, not blank
    with pytest.raises(ValueError, match=r"\.png or \.pdf"):
        write_psf_report(tmp_path / "report.svg", result, stack)
