"""pycromanager's Python backend (pymmcore in-process) on Micro-Manager's demo adapters."""

from __future__ import annotations

import threading
from pathlib import Path

import pycromanager
import pymmcore
import pytest

from napari_lablink.acquisition import (
    AcquisitionEngine,
    EngineState,
    PycromanagerBackend,
    StackPlan,
    ZMode,
)

from .helpers import RecordingSink, wait_until


@pytest.fixture(scope="module")
def headless(adapter_path):
    """One headless Micro-Manager for the module: starting it costs seconds."""
    pycromanager.start_headless(adapter_path, "MMConfig_demo.cfg", python_backend=True)
    yield pycromanager.Core()
    pycromanager.stop_headless()


@pytest.fixture
def core(headless):
    headless.set_exposure(1.0)
    headless.set_property("Camera", "Binning", "1")
    headless.set_position("Z", 7.0)
    return headless


class HardwareLog(pymmcore.MMEventCallback):
    """Records what the core did to the hardware (pycromanager hands images to Python after
    the engine has moved on, so the stage cannot be read from the image callback)."""

    def __init__(self) -> None:
        super().__init__()
        self.z_moves: list[float] = []

    def onStagePositionChanged(self, name: str, pos: float) -> None:
        if name == "Z":
            self.z_moves.append(pos)

    def onPropertyChanged(self, *args) -> None: ...
    def onConfigGroupChanged(self, *args) -> None: ...
    def onPropertiesChanged(self, *args) -> None: ...
    def onShutterOpenChanged(self, *args) -> None: ...
    def onImageSnapped(self, *args) -> None: ...
    def onExposureChanged(self, *args) -> None: ...
    def onSystemConfigurationLoaded(self, *args) -> None: ...
    def onSequenceAcquisitionStarted(self, *args) -> None: ...
    def onSequenceAcquisitionStopped(self, *args) -> None: ...


@pytest.fixture
def hardware_log(core, monkeypatch):
    log = HardwareLog()
    core.register_callback(log)
    # MMCore sends no callback for a preset switch, so spy on the (real) call instead
    presets: list[str] = []
    set_config = core.set_config

    def spy(group: str, preset: str) -> None:
        if group == "Channel" and presets[-1:] != [preset]:
            presets.append(preset)
        set_config(group, preset)

    monkeypatch.setattr(core, "set_config", spy, raising=False)
    log.presets = presets
    yield log
    core.register_callback(None)


def test_stage_stacks_arrive_in_order_at_the_planned_z(core, hardware_log):
    backend = PycromanagerBackend(python_backend=True)
    info = backend.connect()
    assert info.frame_shape == (512, 512)
    assert info.details["mode"] == "python"
    sink = RecordingSink()
    plan = StackPlan(-2.0, 2.0, 5, channels=("DAPI", "FITC"), n_stacks=3, exposure_ms=1.0)
    backend.start(plan, sink)
    assert sink.done.wait(30)  # a finite plan ends by itself
    backend.stop()
    assert sink.errors == [None]
    order = [(i.stack_index, i.channel, i.z_index) for i in sink.infos]
    assert order == [(k, c, z) for k in range(3) for c in range(2) for z in range(5)]
    planned = list(plan.z_positions_um) * 6
    assert [i.z_um for i in sink.infos] == pytest.approx(planned)
    # the stage really went there, in order, then back to where it was
    moves = hardware_log.z_moves
    assert wait_until(lambda: len(moves) >= len(planned) + 1, 5), moves
    assert moves == pytest.approx([*planned, 7.0])
    assert hardware_log.presets == ["DAPI", "FITC"] * 3
    assert core.get_position() == pytest.approx(7.0)
    # images were handed over and dropped: pycromanager kept none
    assert all(shape == (512, 512) for shape in sink.shapes)


def test_external_sweep_uses_a_custom_axis_and_never_moves_the_stage(core, hardware_log):
    backend = PycromanagerBackend(python_backend=True)
    backend.connect()
    sink = RecordingSink()
    backend.start(StackPlan(0.0, 9.0, 10, z_mode=ZMode.EXTERNAL, n_stacks=2), sink)
    assert sink.done.wait(30)
    backend.stop()
    assert sink.errors == [None]
    assert [i.frame_number for i in sink.infos] == list(range(20))
    assert hardware_log.z_moves == []


def test_engine_stops_restarts_and_leaves_no_threads(core):
    before = {t.ident for t in threading.enumerate()}
    plan = StackPlan(0.0, 3.0, 4, crop=(64, 64), exposure_ms=1.0)
    with AcquisitionEngine(PycromanagerBackend(python_backend=True)) as engine:
        for run in (1, 2, 3):
            engine.start(plan)
            assert engine.wait_for_stacks(2, timeout=30)
            engine.stop()
            assert engine.wait(30)
            assert engine.state is EngineState.IDLE and engine.error is None
            assert core.get_position() == pytest.approx(7.0)
            assert engine.stats().run_id == run
            newest = engine.newest_stack(0)
            assert newest.run_id == run and newest.data.shape == (4, 64, 64)
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= before, 10)


def test_binning_changed_mid_run_ends_it_with_a_message(core):
    with AcquisitionEngine(PycromanagerBackend(python_backend=True)) as engine:
        engine.stack_completed.connect(lambda v: core.set_property("Camera", "Binning", "2"))
        engine.start(StackPlan(0.0, 2.0, 3, exposure_ms=1.0))
        assert engine.wait(30)
        assert "frame size changed from 512 x 512 to 256 x 256" in engine.error
        # images reach Python after the engine has moved on: a few more may be full size
        assert engine.stats().stacks_completed >= 1
        assert engine.newest_stack(0).data.shape == (3, 512, 512)
        assert core.get_position() == pytest.approx(7.0)


def test_a_camera_failure_ends_the_run_with_its_message(core, adapter_path):
    with AcquisitionEngine(PycromanagerBackend(python_backend=True)) as engine:
        # the camera disappears mid-run; pycromanager's engine fails on the next snap
        engine.stack_completed.connect(lambda v: core.unload_device("Camera"))
        try:
            engine.start(StackPlan(0.0, 2.0, 3, exposure_ms=1.0))
            assert engine.wait(30)  # without closing pycromanager's event queue: forever
            assert "Camera not loaded or initialized" in engine.error
            assert "Kept: 1 complete stack(s)" in engine.error
            assert engine.newest_stack(0).data.shape == (3, 512, 512)
        finally:
            core.load_system_configuration(str(Path(adapter_path) / "MMConfig_demo.cfg"))
