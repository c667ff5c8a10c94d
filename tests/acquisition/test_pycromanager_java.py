"""pycromanager's Java backend, against a substitute for Micro-Manager's side of the bridge.

Micro-Manager's Java application cannot run on this machine, so ``java_bridge`` replaces the
object bridge (``JavaObject``, the remote core) with fakes that record every call, while
pycromanager's own ``JavaBackendAcquisition`` runs unchanged and exchanges events, images and
notifications with the fake Java engine over real ZMQ sockets on 127.0.0.1. The backend's code
path is the one it takes against a real Micro-Manager.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from mmpycorex import is_pymmcore_active

from napari_lablink.acquisition import (
    AcquisitionEngine,
    BackendUnavailableError,
    PycromanagerBackend,
    StackPlan,
    ZMode,
)

from .helpers import wait_until
from .java_bridge import JavaBridgeSubstitute


@pytest.fixture
def bridge(monkeypatch):
    # the Java path is only taken when no Python backend runs in this process
    assert not is_pymmcore_active(), "a pycromanager Python backend is still running"
    substitute = JavaBridgeSubstitute()
    substitute.install(monkeypatch)
    yield substitute
    substitute.close()


def test_stage_stacks_go_through_the_java_acquisition(bridge):
    before = {t.ident for t in threading.enumerate()}
    plan = StackPlan(0.0, 2.0, 5, channels=("DAPI", "FITC"), exposure_ms=3.0, crop=(32, 48))
    with AcquisitionEngine(PycromanagerBackend(port=4827)) as engine:
        info = engine.connect()
        assert (info.frame_shape, info.bit_depth, info.pixel_size_um) == ((64, 96), 12, 0.16)
        assert info.channels == ("DAPI", "FITC")
        engine.start(plan)
        assert engine.wait_for_stacks(3, timeout=20)
        engine.stop()
        assert engine.wait(20)
        assert engine.error is None
        for c in range(2):
            # each plane holds the image taken at its z: pixels are 1000 + 10 z
            np.testing.assert_array_equal(
                engine.newest_stack(c).data[:, 0, 0], [1000, 1005, 1010, 1015, 1020]
            )
            assert engine.newest_stack(c).data.shape == (5, 32, 48)
    recorder = bridge.recorder
    # the acquisition was created without a viewer and got our image processor
    assert ("factory.create_acquisition", None, "lablink-psf", False) in recorder.calls
    assert ("new", "org.micromanager.remote.RemoteImageProcessor", 4827) in recorder.calls
    # events: stacks of z in order, channel preset and exposure set, two cycles kept ahead
    first = recorder.events[:10]
    assert [e["z"] for e in first] == [0.0, 0.5, 1.0, 1.5, 2.0] * 2
    presets = [e["config_group"][1] for e in first]
    assert presets == ["DAPI"] * 5 + ["FITC"] * 5
    assert {e["exposure"] for e in recorder.events} == {3.0}
    cycles = [e["axes"]["time"] for e in recorder.events[::10]]
    assert cycles == list(range(len(cycles)))  # the last one may have been cut short by Stop
    # every image crossed the bridge once, none came back (image_process_fn dropped them)
    assert recorder.images_sent == len(recorder.events) >= 30
    assert recorder.images_returned == 0
    # stopping aborted the acquisition, stopped the z stage and parked it where it was
    names = recorder.names()
    assert names.index("acq.abort") < names.index("core.stop")
    assert ("core.stop", "Z") in recorder.calls
    assert recorder.calls[-2:] == [("core.set_position", "Z", 12.5), ("core.wait_for_device", "Z")]
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= before, 10)


def test_external_sweep_sends_no_z_and_counts_frames(bridge):
    plan = StackPlan(0.0, 2.0, 4, z_mode=ZMode.EXTERNAL, n_stacks=2)
    with AcquisitionEngine(PycromanagerBackend()) as engine:
        engine.start(plan)
        assert engine.wait(20)
        assert engine.error is None
        # frames are placed by count: pixels are 1000 + frame number
        np.testing.assert_array_equal(
            engine.newest_stack(0).data[:, 0, 0], [1004, 1005, 1006, 1007]
        )
    events = bridge.recorder.events
    assert len(events) == 8
    assert all("z" not in e for e in events)
    assert [e["axes"]["z_ext"] for e in events] == [0, 1, 2, 3] * 2
    assert not any(c[0] == "core.set_position" for c in bridge.recorder.calls)


def test_a_camera_error_on_the_java_side_ends_the_run_with_its_message(bridge):
    bridge.camera_fails_at = 7
    with AcquisitionEngine(PycromanagerBackend()) as engine:
        engine.start(StackPlan(0.0, 2.0, 5))
        assert engine.wait(20)  # pycromanager would wait for more events forever
        assert "Camera: snap failed (error 10, device not ready)" in engine.error
        assert "after plane 2 of 5 of stack 2" in engine.error
        assert "Kept: 1 complete stack(s)" in engine.error
        planes = engine.newest_stack(0).data[:, 0, 0]
        np.testing.assert_array_equal(planes, [1000, 1005, 1010, 1015, 1020])
        partial = engine.in_progress_stack(0)
        assert partial.filled.tolist() == [True, True, False, False, False]


def test_a_missing_micro_manager_is_reported():
    # nothing listens on this port: pyjavaz itself fails to reach the Java side
    backend = PycromanagerBackend(port=4999, timeout_ms=200)
    with pytest.raises(BackendUnavailableError, match="could not reach Micro-Manager on port 4999"):
        backend.connect()


def test_the_python_backend_must_be_started_or_configured():
    backend = PycromanagerBackend(python_backend=True)
    with pytest.raises(BackendUnavailableError, match="Python backend is not running"):
        backend.connect()
