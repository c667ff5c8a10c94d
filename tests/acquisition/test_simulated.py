"""The simulated microscope renders what its ground truth says, with honest noise."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_lablink.acquisition import (
    CameraError,
    PSFModel,
    SimulatedMicroscope,
    StackPlan,
    ZMode,
)
from napari_lablink.acquisition.backends.simulated import FWHM_PER_SIGMA

from .helpers import RecordingSink


def one_bead(**kwargs) -> SimulatedMicroscope:
    options = dict(
        frame_shape=(64, 64),
        pixel_size_um=0.1,
        beads_zyx_um=np.array([[5.0, 3.2, 3.0]]),
        amplitude_spread=0.0,
        amplitude=1000.0,
        background=50.0,
        offset_adu=100.0,
        noise=False,
    )
    options.update(kwargs)
    return SimulatedMicroscope(**options)


def test_noise_free_frame_is_the_psf_at_the_bead():
    sim = one_bead(psf=PSFModel(fwhm_x_um=0.4, fwhm_y_um=0.3, fwhm_z_um=1.0))
    frame = sim.render_frame(5.0).astype(float)
    # the bead sits at pixel (32, 30): background 50 + offset 100 + amplitude 1000
    assert frame[32, 30] == 1150
    assert np.unravel_index(np.argmax(frame), frame.shape) == (32, 30)
    # lateral widths: one FWHM/2 from the centre the signal is half the amplitude
    sigma_x_px = 0.4 / FWHM_PER_SIGMA / 0.1
    expected = 150 + 1000 * np.exp(-0.5 * (2 / sigma_x_px) ** 2)
    assert frame[32, 32] == round(expected)
    # far away: just background and offset
    assert frame[5, 60] == 150
    # half a FWHM out of focus, the peak is half as bright
    assert sim.render_frame(5.5)[32, 30] == 650


def test_axial_asymmetry_keeps_the_fwhm():
    psf = PSFModel(fwhm_z_um=1.2, asymmetry=0.4)
    z = np.linspace(-3, 3, 60001)
    profile = psf.axial(z)
    above = z[profile >= 0.5]
    assert above.max() - above.min() == pytest.approx(1.2, abs=1e-3)
    assert above.max() > -above.min()  # lopsided: wider above focus


def test_tilt_moves_the_bead_sideways_with_defocus():
    sim = one_bead(psf=PSFModel(tilt=0.5, fwhm_z_um=3.0))
    in_focus = np.argmax(sim.render_frame(5.0).max(axis=0))
    defocused = np.argmax(sim.render_frame(6.0).max(axis=0))
    assert defocused - in_focus == 5  # 0.5 um per um of defocus at 0.1 um pixels


def test_noise_statistics_match_poisson_plus_read_noise():
    sim = SimulatedMicroscope(
        frame_shape=(256, 256), n_beads=0, background=100.0, read_noise=3.0, offset_adu=100.0
    )
    frames = np.stack([sim.render_frame(0.0) for _ in range(4)]).astype(float)
    assert frames.mean() == pytest.approx(200.0, abs=0.5)
    assert frames.var() == pytest.approx(100.0 + 9.0, rel=0.05)
    # successive frames are different noise realisations
    assert not np.array_equal(frames[0], frames[1])


def test_shot_noise_on_the_bead_is_drawn_every_frame():
    sim = one_bead(noise=True, read_noise=0.0, background=0.0, offset_adu=0.0)
    peaks = np.array([sim.render_frame(5.0)[32, 30] for _ in range(400)], dtype=float)
    assert peaks.mean() == pytest.approx(1000, rel=0.02)
    assert peaks.var() == pytest.approx(1000, rel=0.25)


def test_bit_depth_clips():
    sim = one_bead(bit_depth=10, amplitude=5000.0)
    assert sim.render_frame(5.0).max() == 1023


def test_ground_truth_describes_each_channel():
    red = PSFModel(fwhm_x_um=0.5, fwhm_y_um=0.5, fwhm_z_um=1.6)
    sim = SimulatedMicroscope(channel_psfs={"GFP": PSFModel(), "RFP": red}, n_beads=7)
    truth = sim.ground_truth("RFP")
    assert (truth.fwhm_x_um, truth.fwhm_z_um) == (0.5, 1.6)
    assert truth.beads_zyx_um.shape == (7, 3)
    assert sim.connect().channels == ("GFP", "RFP")
    assert sim.connect().pixel_size_um == 0.1


def test_stage_mode_delivers_planes_in_order_then_ends():
    sim = one_bead()
    sink = RecordingSink()
    sim.start(StackPlan(n_slices=4, channels=("a", "b"), n_stacks=2), sink)
    assert sink.done.wait(5)
    sim.stop()
    assert sink.errors == [None]
    order = [(i.stack_index, i.channel, i.z_index) for i in sink.infos]
    assert order == [(k, c, z) for k in range(2) for c in range(2) for z in range(4)]
    assert [i.frame_number for i in sink.infos] == list(range(16))
    assert [i.z_um for i in sink.infos[:4]] == pytest.approx([0, 10 / 3, 20 / 3, 10])


def test_external_mode_reports_only_frame_numbers():
    sim = one_bead()
    sink = RecordingSink()
    sim.start(StackPlan(n_slices=3, z_mode=ZMode.EXTERNAL, n_stacks=2), sink)
    assert sink.done.wait(5)
    assert [i.frame_number for i in sink.infos] == list(range(6))
    assert all(i.z_index is None and i.stack_index is None for i in sink.infos)


def test_a_slow_consumer_makes_the_camera_drop_frames():
    sim = one_bead(frame_rate_hz=1000.0, ring_frames=2)
    slow = RecordingSink()
    original = slow.frame

    def frame(image, info):
        original(image, info)
        if len(slow.infos) == 5:
            time.sleep(0.05)  # 50 frame periods: the 2-frame ring overflows

    slow.frame = frame
    sim.start(StackPlan(n_slices=10, n_stacks=10), slow)
    assert slow.done.wait(5)
    numbers = [i.frame_number for i in slow.infos]
    assert numbers[0] == 0
    assert numbers[5] - numbers[4] > 40  # the frames due during the stall were lost
    assert numbers == sorted(set(numbers))


def test_camera_failure_ends_the_run_with_the_error():
    sim = one_bead(fail_at_frame=7)
    sink = RecordingSink()
    sim.start(StackPlan(n_slices=5), sink)
    assert sink.done.wait(5)
    sim.stop()
    assert len(sink.infos) == 7
    assert isinstance(sink.errors[0], CameraError)
    assert "frame 7" in str(sink.errors[0])
