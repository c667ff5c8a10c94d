"""PSF measurement against the simulated microscope's ground truth."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_lablink.acquisition import (
    AcquisitionEngine,
    GroundTruth,
    PSFAnalyzer,
    PSFModel,
    PSFOptions,
    SimulatedMicroscope,
    StackPlan,
    analyze_stack,
    find_beads,
)

Z = np.linspace(0.0, 10.0, 41)
WIDTHS = {
    "narrow": PSFModel(fwhm_x_um=0.25, fwhm_y_um=0.25, fwhm_z_um=0.7),
    "typical": PSFModel(fwhm_x_um=0.35, fwhm_y_um=0.35, fwhm_z_um=1.0),
    "astigmatic": PSFModel(fwhm_x_um=0.3, fwhm_y_um=0.4, fwhm_z_um=1.2),
    "wide": PSFModel(fwhm_x_um=0.5, fwhm_y_um=0.5, fwhm_z_um=1.6),
}
NOISE = {  # (peak photons, background photons, read noise)
    "bright": (3000.0, 50.0, 2.0),
    "moderate": (800.0, 100.0, 2.0),
    "dim": (250.0, 100.0, 5.0),
}


def bead_sample(psf: PSFModel, noise: str, seed: int = 0, **kwargs) -> SimulatedMicroscope:
    amplitude, background, read_noise = NOISE[noise]
    options = dict(
        frame_shape=(128, 128),
        psf=psf,
        amplitude=amplitude,
        background=background,
        read_noise=read_noise,
        n_beads=6,
        seed=seed,
    )
    options.update(kwargs)
    return SimulatedMicroscope(**options)


def truth_px(sim: SimulatedMicroscope) -> np.ndarray:
    """Ground-truth bead centres as (z plane, y pixel, x pixel) in the Z stack."""
    zyx = sim.ground_truth().beads_zyx_um
    return np.stack([zyx[:, 0] / (Z[1] - Z[0]), zyx[:, 1] / 0.1, zyx[:, 2] / 0.1], axis=1)


def assert_matches_truth(result, truth: GroundTruth, tolerance: float = 0.05) -> None:
    summary = result.summary
    assert summary.fwhm_x_um == pytest.approx(truth.fwhm_x_um, rel=tolerance)
    assert summary.fwhm_y_um == pytest.approx(truth.fwhm_y_um, rel=tolerance)
    assert summary.fwhm_z_um == pytest.approx(truth.fwhm_z_um, rel=tolerance)


@pytest.mark.parametrize("noise", list(NOISE))
@pytest.mark.parametrize("width", list(WIDTHS))
def test_separable_fit_matches_ground_truth_within_5_percent(width, noise):
    sim = bead_sample(WIDTHS[width], noise)
    result = analyze_stack(sim.render_stack(Z), pixel_size_um=0.1, z_positions_um=Z)
    assert_matches_truth(result, sim.ground_truth())
    # every bead is found, and where it is
    truth = truth_px(sim)
    assert len(result.beads) == len(truth)
    found = np.array([(b.z_px, b.y_px, b.x_px) for b in result.beads])
    nearest = np.min(np.linalg.norm(found[:, None, :] - truth[None], axis=2), axis=1)
    assert nearest.max() < 0.5


@pytest.mark.parametrize("width", ["narrow", "astigmatic"])
@pytest.mark.parametrize("noise", ["bright", "dim"])
def test_3d_gaussian_fit_matches_ground_truth_within_5_percent(width, noise):
    sim = bead_sample(WIDTHS[width], noise, seed=1)
    result = analyze_stack(
        sim.render_stack(Z),
        pixel_size_um=0.1,
        z_positions_um=Z,
        options=PSFOptions(method="gaussian3d"),
    )
    assert_matches_truth(result, sim.ground_truth())


def test_results_report_position_brightness_and_fit_quality():
    sim = bead_sample(WIDTHS["typical"], "bright", amplitude_spread=0.0)
    result = analyze_stack(sim.render_stack(Z), pixel_size_um=0.1, z_positions_um=Z)
    truth = sim.ground_truth()
    for bead in result.beads:
        assert bead.amplitude == pytest.approx(3000, rel=0.05)
        assert bead.background == pytest.approx(150, rel=0.05)  # 50 photons + 100 offset
        assert bead.signal_to_background == pytest.approx(bead.amplitude / bead.background)
        assert bead.r_squared > 0.95
        # positions in micrometres, z in stage coordinates
        distances = np.linalg.norm(
            truth.beads_zyx_um - np.array([bead.z_um, bead.y_um, bead.x_um]), axis=1
        )
        assert distances.min() < 0.05
    summary = result.summary
    assert summary.n_beads == len(result.beads)
    assert summary.fwhm_z_um == pytest.approx(np.mean([b.fwhm_z_um for b in result.beads]))
    assert summary.r_squared > 0.95


def test_user_marked_beads_are_refined_and_fitted():
    sim = bead_sample(WIDTHS["typical"], "moderate", seed=4)
    stack = sim.render_stack(Z)
    truth = truth_px(sim)
    clicks_yx = truth[:, 1:] + np.array([2.0, -1.5])  # imprecise clicks in a 2-D view
    result = analyze_stack(stack, pixel_size_um=0.1, z_positions_um=Z, positions=clicks_yx)
    assert [b.bead for b in result.beads] == list(range(len(truth)))
    for bead, t in zip(result.beads, truth, strict=True):
        assert np.hypot(bead.y_px - t[1], bead.x_px - t[2]) < 0.5
        assert abs(bead.z_px - t[0]) < 0.5
    assert_matches_truth(result, sim.ground_truth())
    # a 3-D point works too
    one = analyze_stack(stack, pixel_size_um=0.1, z_positions_um=Z, positions=truth[:1])
    assert len(one.beads) == 1


def test_a_bead_that_cannot_be_fitted_is_skipped_and_reported():
    sim = bead_sample(WIDTHS["typical"], "bright", seed=2)
    stack = sim.render_stack(Z)
    truth = truth_px(sim)
    marks = np.vstack(
        [
            truth[:2, 1:],
            [[64.0, 1.0]],  # background at the image edge: nothing there to fit
            [[200.0, 5.0]],  # outside the image
        ]
    )
    result = analyze_stack(stack, pixel_size_um=0.1, z_positions_um=Z, positions=marks)
    assert [b.bead for b in result.beads] == [0, 1]
    reasons = {f.bead: f.reason for f in result.failures}
    assert set(reasons) == {2, 3}
    assert "outside the image" in reasons[3]
    assert reasons[2]  # whichever check caught it, it says why
    assert result.summary.n_failed == 2
    rows = result.rows()
    assert [r["status"] for r in rows][:2] == ["ok", "ok"]
    assert rows[3]["status"].startswith("failed: ")
    csv = result.to_csv().splitlines()
    assert csv[0].startswith("bead,z_px,y_px,x_px,z_um")
    assert len(csv) == 5


def test_beads_too_close_together_are_reported_not_mismeasured():
    beads = np.array([[5.0, 6.0, 6.0], [5.0, 6.0, 6.4], [5.0, 3.0, 3.0]])
    sim = SimulatedMicroscope(frame_shape=(96, 96), beads_zyx_um=beads, amplitude=2000.0)
    result = analyze_stack(
        sim.render_stack(Z), pixel_size_um=0.1, z_positions_um=Z, positions=beads[:, 1:] / 0.1
    )
    assert len(result.beads) == 1
    assert all("another bead" in f.reason for f in result.failures)


def test_bead_finding_ignores_noise():
    empty = SimulatedMicroscope(frame_shape=(128, 128), n_beads=0).render_stack(Z)
    assert len(find_beads(empty)) == 0
    result = analyze_stack(empty, pixel_size_um=0.1, z_step_um=0.25)
    assert result.summary.n_beads == 0 and np.isnan(result.summary.fwhm_x_um)


def test_analyzer_works_newest_wins():
    sim = bead_sample(WIDTHS["typical"], "bright")
    stacks = [sim.render_stack(Z) for _ in range(2)]
    release = threading.Event()
    results = []

    def hold_first(result):
        results.append(result)
        release.wait(5)

    with PSFAnalyzer() as analyzer:
        analyzer.result_ready.connect(hold_first)
        analyzer.submit(stacks[0], pixel_size_um=0.1, z_positions_um=Z, version=1)
        assert analyzer.wait_idle(0) is False
        # while the first analysis is held up, ten more stacks arrive
        while not results:
            threading.Event().wait(0.001)
        for version in range(2, 12):
            analyzer.submit(
                stacks[version % 2], pixel_size_um=0.1, z_positions_um=Z, version=version
            )
        release.set()
        assert analyzer.wait_idle(10)
    assert [r.version for r in results] == [1, 11]
    assert analyzer.analysed == 2 and analyzer.superseded == 9
    assert_matches_truth(results[-1], sim.ground_truth())


def test_analyzer_reports_a_failed_analysis_and_keeps_working():
    messages = []
    with PSFAnalyzer() as analyzer:
        analyzer.analysis_failed.connect(messages.append)
        analyzer.submit(np.zeros((4, 4)), pixel_size_um=0.1, z_step_um=0.25)
        assert analyzer.wait_idle(5)
        assert "3-D" in messages[0]
        sim = bead_sample(WIDTHS["typical"], "bright")
        analyzer.submit(sim.render_stack(Z), pixel_size_um=0.1, z_positions_um=Z)
        assert analyzer.wait_idle(10)
        assert analyzer.latest(0).summary.n_beads == len(sim.ground_truth().beads_zyx_um)


def test_analyzer_follows_an_engine_and_matches_ground_truth():
    red = PSFModel(fwhm_x_um=0.45, fwhm_y_um=0.45, fwhm_z_um=1.5)
    sim = SimulatedMicroscope(
        frame_shape=(256, 256),
        n_beads=8,
        channel_psfs={"GFP": WIDTHS["typical"], "RFP": red},
        seed=5,
    )
    results = []
    with AcquisitionEngine(sim) as engine, PSFAnalyzer() as analyzer:
        analyzer.attach(engine)
        analyzer.result_ready.connect(results.append)
        engine.start(StackPlan(0.0, 10.0, 41, channels=("GFP", "RFP"), crop=(200, 200)))
        assert engine.wait_for_stacks(4, timeout=20)
        engine.stop()
        engine.wait(5)
        assert analyzer.wait_idle(10)
        analyzer.detach()
    for channel, name in enumerate(("GFP", "RFP")):
        latest = analyzer.latest(channel)
        assert latest is not None and latest.channel == channel
        assert_matches_truth(latest, sim.ground_truth(name))
        assert latest.pixel_size_um == 0.1
        assert latest.z_step_um == pytest.approx(0.25)
    assert {r.version for r in results} <= set(range(1, 100))
