"""pymmcore-plus backend on Micro-Manager's demo adapters (a real core, no hardware)."""

from __future__ import annotations

import threading

import numpy as np
import pymmcore_plus
import pytest
import useq

from napari_lablink.acquisition import (
    AcquisitionEngine,
    BackendUnavailableError,
    EngineState,
    PymmcorePlusBackend,
    StackPlan,
    ZMode,
)

from .helpers import RecordingSink, wait_until


@pytest.fixture
def mmc(demo_config, adapter_path):
    core = pymmcore_plus.CMMCorePlus()
    core.setDeviceAdapterSearchPaths([adapter_path])
    core.loadSystemConfiguration(str(demo_config))
    core.setExposure(1.0)
    core.setPosition(7.0)
    yield core
    core.mda.cancel()
    core.unloadAllDevices()


def test_stage_stacks_arrive_in_order_at_the_planned_z(mmc):
    backend = PymmcorePlusBackend(mmc)
    info = backend.connect()
    assert info.frame_shape == (512, 512) and info.dtype == np.uint16
    assert info.pixel_size_um == 1.0
    assert {"DAPI", "FITC"} <= set(info.channels)
    sink = RecordingSink(probe=lambda: (mmc.getPosition(), mmc.getCurrentConfig("Channel")))
    plan = StackPlan(-2.0, 2.0, 5, channels=("DAPI", "FITC"), n_stacks=2, exposure_ms=1.0)
    backend.start(plan, sink)
    assert sink.done.wait(30)
    backend.stop()
    assert sink.errors == [None]
    order = [(i.stack_index, i.channel, i.z_index) for i in sink.infos]
    assert order == [(k, c, z) for k in range(2) for c in range(2) for z in range(5)]
    assert [i.frame_number for i in sink.infos] == list(range(20))
    planned = list(plan.z_positions_um) * 4
    assert [i.z_um for i in sink.infos] == pytest.approx(planned)
    # the stage really was there, and the channel preset really was switched
    assert [p[0] for p in sink.probes] == pytest.approx(planned)
    assert [p[1] for p in sink.probes] == (["DAPI"] * 5 + ["FITC"] * 5) * 2
    assert all(shape == (512, 512) for shape in sink.shapes)
    assert mmc.getPosition() == pytest.approx(7.0)  # parked where it was


def test_external_sweep_never_moves_the_stage(mmc):
    backend = PymmcorePlusBackend(mmc)
    backend.connect()
    sink = RecordingSink(probe=mmc.getPosition)
    backend.start(StackPlan(0.0, 9.0, 10, z_mode=ZMode.EXTERNAL, n_stacks=2), sink)
    assert sink.done.wait(30)
    backend.stop()
    assert sink.errors == [None]
    assert [i.frame_number for i in sink.infos] == list(range(20))
    assert all(i.z_index is None for i in sink.infos)
    assert set(sink.probes) == {7.0}


def test_engine_stops_restarts_and_leaves_no_threads(mmc):
    before = {t.ident for t in threading.enumerate()}
    plan = StackPlan(0.0, 3.0, 4, crop=(64, 64), exposure_ms=1.0)
    with AcquisitionEngine(PymmcorePlusBackend(mmc)) as engine:
        for run in (1, 2):
            engine.start(plan)
            assert engine.wait_for_stacks(2, timeout=30)
            engine.stop()
            assert engine.wait(30)
            assert engine.state is EngineState.IDLE and engine.error is None
            assert not mmc.mda.is_running()
            assert mmc.getPosition() == pytest.approx(7.0)
            stats = engine.stats()
            assert stats.run_id == run
            assert stats.stacks_completed >= 2 and stats.frames_dropped == 0
            assert engine.newest_stack(0).run_id == run
            assert engine.newest_stack(0).data.shape == (4, 64, 64)
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= before, 10)


def test_the_shared_core_is_used_by_default(demo_config, adapter_path):
    shared = pymmcore_plus.CMMCorePlus.instance()
    shared.unloadAllDevices()
    backend = PymmcorePlusBackend()
    try:
        with pytest.raises(BackendUnavailableError, match="has no camera: load a Micro-Manager"):
            backend.connect()
        assert backend.mmcore is shared
        shared.setDeviceAdapterSearchPaths([adapter_path])
        shared.loadSystemConfiguration(str(demo_config))
        assert backend.connect().frame_shape == (512, 512)
    finally:
        shared.unloadAllDevices()


def test_a_configuration_file_gives_a_core_of_its_own(demo_config, adapter_path):
    """Even when no shared core exists yet: ours must not become it (we unload it on close)."""
    pymmcore_plus.core._mmcore_plus._instance = None  # a process where nobody made one yet
    backend = PymmcorePlusBackend(config_file=demo_config, adapter_paths=(adapter_path,))
    backend.connect()
    core = backend.mmcore
    assert core is not pymmcore_plus.CMMCorePlus.instance()
    assert core.getCameraDevice() == "Camera"
    backend.close()
    assert core.getLoadedDevices() == ("Core",)
    bad = PymmcorePlusBackend(config_file=demo_config.with_name("missing.cfg"))
    with pytest.raises(
        BackendUnavailableError, match=r"could not load the configuration .*missing"
    ):
        bad.connect()


def test_channels_must_be_presets(mmc):
    with AcquisitionEngine(PymmcorePlusBackend(mmc)) as engine:
        engine.start(StackPlan(channels=("GFP", "DAPI")))
        assert engine.wait(10)
        assert "channel(s) GFP are not presets of the channel group Channel" in engine.error
        assert "available: Cy5, DAPI, FITC, Rhodamine" in engine.error


def test_a_core_busy_elsewhere_is_refused(mmc):
    with AcquisitionEngine(PymmcorePlusBackend(mmc)) as engine:
        mmc.startContinuousSequenceAcquisition(0)
        try:
            engine.start(StackPlan(n_slices=3))
            assert engine.wait(10)
            assert "live mode" in engine.error and "stop live mode first" in engine.error
        finally:
            mmc.stopSequenceAcquisition()
        release = threading.Event()
        mmc.mda.events.frameReady.connect(lambda *a: release.wait(10))
        other = mmc.run_mda(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
        try:
            assert wait_until(mmc.mda.is_running, 10)
            engine.start(StackPlan(n_slices=3))
            assert engine.wait(10)
            assert "already running a multi-dimensional acquisition" in engine.error
        finally:
            release.set()
            other.join(10)


def test_binning_changed_mid_run_ends_it_with_a_message(mmc):
    with AcquisitionEngine(PymmcorePlusBackend(mmc)) as engine:
        # runs on the MDA thread between two frames, like a user changing binning in the GUI
        engine.stack_completed.connect(lambda v: mmc.setProperty("Camera", "Binning", "2"))
        engine.start(StackPlan(0.0, 2.0, 3, exposure_ms=1.0))
        assert engine.wait(30)
        assert "frame size changed from 512 x 512 to 256 x 256" in engine.error
        assert engine.stats().stacks_completed == 1
        assert engine.newest_stack(0).data.shape == (3, 512, 512)
        assert mmc.getPosition() == pytest.approx(7.0)


def test_a_camera_that_stops_delivering_ends_the_run(mmc):
    with AcquisitionEngine(PymmcorePlusBackend(mmc)) as engine:
        # the camera disappears mid-run (e.g. a configuration reloaded elsewhere): pymmcore-plus
        # logs the failed snaps and carries on; the backend must not
        engine.stack_completed.connect(lambda v: mmc.unloadDevice("Camera"))
        engine.start(StackPlan(0.0, 2.0, 3, exposure_ms=1.0))
        assert engine.wait(30)
        assert "the camera delivered no image for frame 4" in engine.error
        assert "Kept: 1 complete stack(s)" in engine.error
        assert not mmc.mda.is_running()


def test_connecting_leaves_the_root_logger_alone() -> None:
    """pymmcore_plus sets the root logger to DEBUG when imported; the backend puts it back."""
    import logging
    import subprocess
    import sys

    script = (
        "import logging\n"
        "from napari_lablink.acquisition.backends.pymmcore import _import_core_class\n"
        "_import_core_class()\n"
        "print(logging.getLogger().level)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip().splitlines()[-1]) == logging.WARNING
