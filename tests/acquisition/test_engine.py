"""The engine on the simulated microscope: stacks, crop, channels, z modes, stop/start, errors."""

from __future__ import annotations

import random
import threading
import time
import tracemalloc

import numpy as np
import pytest

from napari_lablink.acquisition import (
    AcquisitionEngine,
    AcquisitionError,
    EngineState,
    PSFModel,
    SimulatedMicroscope,
    StackPlan,
    ZMode,
)

from .helpers import wait_until


def clean_sim(**kwargs) -> SimulatedMicroscope:
    """Noise-free, so every frame of a plane is identical and stacks can be compared exactly."""
    options = dict(frame_shape=(96, 128), n_beads=6, noise=False, seed=3)
    options.update(kwargs)
    return SimulatedMicroscope(**options)


def expected_stack(sim: SimulatedMicroscope, plan: StackPlan, channel: str, crop=None):
    stack = sim.render_stack(plan.z_positions_um, channel)
    if crop is None:
        return stack
    h, w = crop
    y0, x0 = (stack.shape[1] - h) // 2, (stack.shape[2] - w) // 2
    return stack[:, y0 : y0 + h, x0 : x0 + w]


@pytest.fixture
def threads_before():
    before = {t.ident for t in threading.enumerate()}
    yield before
    # whatever a test started, it has stopped
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= before, 5)


def test_stage_mode_fills_stacks_with_the_planes_in_order(threads_before):
    sim = clean_sim()
    plan = StackPlan(z_start_um=3, z_end_um=7, n_slices=17, crop=(64, 80), n_stacks=4)
    completed = []
    with AcquisitionEngine(sim) as engine:
        engine.stack_completed.connect(lambda view: completed.append(view))
        engine.start(plan)
        assert engine.wait(10)
        assert engine.error is None
        newest = engine.newest_stack(0)
        expected = expected_stack(sim, plan, "default", crop=(64, 80))
        assert newest.data.shape == (17, 64, 80)
        np.testing.assert_array_equal(newest.data, expected)
        np.testing.assert_array_equal(engine.live_stack(0), expected)
        assert [v.stack_index for v in completed] == [0, 1, 2, 3]
        assert [v.version for v in completed] == [1, 2, 3, 4]
        geometry = engine.geometry
        assert geometry.frame_shape == (64, 80)
        assert geometry.crop_origin == (16, 24)
        assert geometry.scale_zyx_um == pytest.approx((0.25, 0.1, 0.1))
        stats = engine.stats()
        assert (stats.frames, stats.frames_dropped, stats.stacks_completed) == (68, 0, 4)
        assert engine.state is EngineState.IDLE


def test_channels_get_their_own_stacks():
    red = PSFModel(fwhm_x_um=0.6, fwhm_y_um=0.6, fwhm_z_um=2.0)
    sim = clean_sim(channel_psfs={"GFP": PSFModel(), "RFP": red})
    plan = StackPlan(n_slices=9, channels=("GFP", "RFP"), n_stacks=2)
    with AcquisitionEngine(sim) as engine:
        engine.start(plan)
        assert engine.wait(10)
        for c, name in enumerate(plan.channels):
            np.testing.assert_array_equal(
                engine.newest_stack(c).data, expected_stack(sim, plan, name)
            )
        assert not np.array_equal(engine.newest_stack(0).data, engine.newest_stack(1).data)
        assert engine.versions() == (2, 2)


def test_external_sweep_places_frames_by_count_even_when_the_camera_drops_some():
    # a hardware-triggered camera whose consumer stalls: the camera keeps counting frames
    sim = clean_sim(frame_rate_hz=2000.0, ring_frames=2)
    plan = StackPlan(n_slices=20, z_mode=ZMode.EXTERNAL, channels=("a", "b"))
    stalled = threading.Event()

    def stall_once(view):
        if not stalled.is_set():
            stalled.set()
            time.sleep(0.1)  # ~200 frame periods

    with AcquisitionEngine(sim) as engine:
        engine.stack_completed.connect(stall_once)
        engine.start(plan)
        assert engine.wait_for_stacks(6, timeout=10)
        engine.stop()
        assert engine.wait(5)
        stats = engine.stats()
        assert stats.frames_dropped > 100
        for c in range(2):
            np.testing.assert_array_equal(
                engine.newest_stack(c).data, expected_stack(sim, plan, plan.channels[c])
            )


def test_stacks_live_in_preallocated_slots_and_memory_stays_bounded():
    sim = SimulatedMicroscope(frame_shape=(128, 128), n_beads=4)
    plan = StackPlan(n_slices=25)
    with AcquisitionEngine(sim, n_slots=3) as engine:
        bases = set()
        engine.stack_completed.connect(
            lambda v: bases.add(v.data.base.__array_interface__["data"][0])
        )
        engine.start(plan)
        assert engine.wait_for_stacks(3, timeout=10)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        assert engine.wait_for_stacks(150, timeout=30)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        engine.stop()
        engine.wait(5)
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        stack_bytes = 25 * 128 * 128 * 2
        assert grown < stack_bytes  # 147 more stacks, not one more stack's worth of memory
        assert len(bases) == 3  # every stack was written into one of the three slots
        assert engine.buffer_bytes == 4 * stack_bytes  # three slots and the live stack


def test_rapid_start_stop_leaves_no_threads_and_never_mixes_runs(threads_before):
    sim = clean_sim(frame_shape=(64, 64))
    plans = [StackPlan(n_slices=5), StackPlan(n_slices=7, crop=(32, 32))]
    rng = random.Random(1)
    seen_runs: list[int] = []
    with AcquisitionEngine(sim) as engine:
        engine.stack_completed.connect(lambda v: seen_runs.append(v.run_id))
        for i in range(60):
            engine.start(plans[i % 2])
            time.sleep(rng.choice([0, 0, 0.0005, 0.002]))
            engine.stop()
            if i % 7 == 0:
                engine.start(plans[0])  # a restart while running
        assert engine.wait(10)
        assert engine.state is EngineState.IDLE
        assert seen_runs == sorted(seen_runs)  # a run's stacks never follow a later run's
        # after the storm the engine still acquires correct stacks
        engine.start(StackPlan(n_slices=7, crop=(32, 32), n_stacks=2))
        assert engine.wait(10)
        np.testing.assert_array_equal(
            engine.newest_stack(0).data,
            expected_stack(sim, StackPlan(n_slices=7), "default", crop=(32, 32)),
        )
        assert engine.newest_stack(0).run_id == engine.stats().run_id


def test_restart_with_a_new_plan_reallocates_only_when_the_shape_changes():
    sim = clean_sim()
    with AcquisitionEngine(sim) as engine:
        engine.start(StackPlan(n_slices=5, n_stacks=1))
        engine.wait(5)
        live, generation = engine.live_stack(0), engine.geometry.generation
        engine.start(StackPlan(z_start_um=1, z_end_um=2, n_slices=5, n_stacks=1))
        engine.wait(5)
        assert engine.geometry.generation == generation
        assert np.shares_memory(engine.live_stack(0), live)  # a viewer keeps its layer data
        assert engine.geometry.z_positions_um[0] == 1
        engine.start(StackPlan(n_slices=6, n_stacks=1))
        engine.wait(5)
        assert engine.geometry.generation == generation + 1


def test_camera_error_between_stacks_mentions_no_unfinished_one(threads_before):
    sim = clean_sim(fail_at_frame=2 * 11)
    plan = StackPlan(n_slices=11)
    with AcquisitionEngine(sim) as engine:
        engine.start(plan)
        assert engine.wait(10)
        assert "Kept: 2 complete stack(s)." in engine.error
        assert "unfinished" not in engine.error


def test_camera_error_mid_stack_ends_the_run_and_keeps_what_was_acquired(threads_before):
    sim = clean_sim(fail_at_frame=2 * 11 + 4)
    plan = StackPlan(n_slices=11)
    failures = []
    with AcquisitionEngine(sim) as engine:
        engine.run_failed.connect(failures.append)
        engine.start(plan)
        assert engine.wait(10)
        assert engine.state is EngineState.IDLE
        assert len(failures) == 1 and failures[0] == engine.error
        assert "simulated camera failure at frame 26" in engine.error
        assert "after plane 4 of 11 of stack 3" in engine.error
        assert "Kept: 2 complete stack(s)" in engine.error
        expected = expected_stack(sim, plan, "default")
        np.testing.assert_array_equal(engine.newest_stack(0).data, expected)
        partial = engine.in_progress_stack(0)
        assert partial.filled.tolist() == [True] * 4 + [False] * 7
        np.testing.assert_array_equal(partial.data[:4], expected[:4])
        # starting again clears the error
        sim.fail_at_frame = None
        engine.start(StackPlan(n_slices=11, n_stacks=1))
        assert engine.wait(10)
        assert engine.error is None


def test_a_frame_size_change_mid_run_is_an_error_with_advice():
    sim = clean_sim()
    with AcquisitionEngine(sim) as engine:
        engine.start(StackPlan(n_slices=5))
        assert engine.wait_for_stacks(1, timeout=5)
        sim.set_frame_shape((48, 64))  # the camera is binned 2x2 mid-run
        assert engine.wait(10)
        assert "frame size changed from 128 x 96 to 64 x 48" in engine.error
        assert "binning or ROI" in engine.error


def test_bad_plans_fail_with_a_clear_message():
    sim = clean_sim()
    with AcquisitionEngine(sim, max_buffer_bytes=10 * 1024**2) as engine:
        engine.start(StackPlan(n_slices=5, crop=(100, 100)))
        engine.wait(5)
        assert "crop 100 x 100 is larger than the camera frame 128 x 96" in engine.error
        engine.start(StackPlan(n_slices=500))
        engine.wait(5)
        assert "would need 47 MiB (limit 10 MiB)" in engine.error
        assert "use fewer slices or channels, or a smaller crop" in engine.error
    with pytest.raises(ValueError, match="n_slices"):
        StackPlan(n_slices=0)
    with pytest.raises(ValueError, match="unique"):
        StackPlan(channels=("a", "a"))


def test_a_closed_engine_refuses_to_start():
    engine = AcquisitionEngine(clean_sim())
    engine.close()
    assert engine.state is EngineState.CLOSED
    with pytest.raises(AcquisitionError, match="closed"):
        engine.start(StackPlan())


def test_a_lease_keeps_a_stack_intact_while_acquisition_goes_on():
    sim = SimulatedMicroscope(frame_shape=(64, 64), n_beads=3)  # noisy: every stack differs
    with AcquisitionEngine(sim) as engine:
        engine.start(StackPlan(n_slices=5))
        assert engine.wait_for_stacks(2, timeout=5)
        with engine.lease_newest(0) as leased:
            copy = leased.data.copy()
            version = leased.version
            assert wait_until(lambda: engine.versions()[0] > version + 5, 5)
            np.testing.assert_array_equal(leased.data, copy)  # not overwritten meanwhile
            with engine.lease_newest(0) as second:
                # a second pinned slot would leave the writer none: the reader gets a copy
                assert second.version > version
                assert not np.shares_memory(second.data, engine.newest_stack(0).data)
        unleased = engine.newest_stack(0)
        assert engine.is_current(unleased)
        # three slots: two more stacks later the writer is back in this one
        assert wait_until(lambda: engine.versions()[0] >= unleased.version + 3, 5)
        assert not engine.is_current(unleased)


def test_a_failing_callback_does_not_stop_acquisition():
    with AcquisitionEngine(clean_sim()) as engine:
        engine.stack_completed.connect(lambda view: 1 / 0)
        engine.start(StackPlan(n_slices=5, n_stacks=3))
        assert engine.wait(5)
        assert engine.error is None
        assert engine.stats().stacks_completed == 3


def test_state_changes_are_reported_in_order():
    states = []
    with AcquisitionEngine(clean_sim()) as engine:
        engine.state_changed.connect(states.append)
        engine.start(StackPlan(n_slices=5, n_stacks=1))
        assert engine.wait(5)
    assert states == ["starting", "running", "stopping", "idle", "closed"]


def test_statistics_count_frames_and_latency():
    with AcquisitionEngine(clean_sim()) as engine:
        engine.start(StackPlan(n_slices=10, n_stacks=5))
        assert engine.wait(5)
        stats = engine.stats()
    assert stats.frames == 50
    assert stats.stacks_completed == 5
    assert stats.mean_frames_per_second > 0
    assert 0 < stats.latency_mean_ms <= stats.latency_max_ms
    assert 0 < stats.latency_p95_ms <= stats.latency_max_ms
    assert not stats.running
