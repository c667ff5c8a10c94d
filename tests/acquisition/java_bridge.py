"""A stand-in for Micro-Manager's Java side of pycromanager's ZMQ bridge, recording every call.

Micro-Manager's Java application cannot run on this Linux test machine, so the Java backend is
tested against this substitute. Only the object bridge is replaced: ``pyjavaz.JavaObject`` (the
remote acquisition factory, image processor and notification handler) and
``ZMQRemoteMMCoreJ`` (the remote core). Everything else is pycromanager's real Java-backend code:
``JavaBackendAcquisition``, its event, image-processor and notification threads, and the
``PushSocket``/``PullSocket`` data sockets, which talk real ZMQ on 127.0.0.1 to the fake Java
engine here. Images cross the socket in the wire format Java uses (JSON header, then binary
parts referenced by ``@<hex id>``), so the code path on the Python side is identical to a run
against a real Micro-Manager.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq


@dataclass
class BridgeRecorder:
    """Everything that crossed the bridge, in order."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    images_sent: int = 0
    images_returned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *call: Any) -> None:
        with self._lock:
            self.calls.append(call)

    def names(self) -> list[str]:
        return [str(c[0]) for c in self.calls]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java_send(sock: zmq.Socket, message: dict[str, Any], blobs: dict[int, bytes]) -> None:
    """Send like Java does: JSON first, then (id, bytes) pairs for the ``@<hex id>`` fields."""
    parts = [json.dumps(message).encode("iso-8859-1")]
    for ident, blob in blobs.items():
        parts += [ident.to_bytes(4, sys.byteorder), blob]
    sock.send_multipart(parts)


def _recv_json(sock: zmq.Socket, timeout_ms: int) -> dict[str, Any] | None:
    if not sock.poll(timeout_ms):
        return None
    return json.loads(sock.recv_multipart()[0].decode("iso-8859-1"))


class _StrVector:
    """What a Java ``StrVector`` looks like through the bridge."""

    def __init__(self, items: list[str]) -> None:
        self._items = items

    def size(self) -> int:
        return len(self._items)

    def get(self, i: int) -> str:
        return self._items[i]


class FakeCore:
    """The remote ``mmcorej.CMMCore`` (snake_case, as pyjavaz converts it)."""

    def __init__(self, recorder: BridgeRecorder, shape: tuple[int, int] = (64, 96)) -> None:
        self.recorder = recorder
        self.shape = shape
        self.z = 12.5
        self.presets = ["DAPI", "FITC"]

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the fake remote core has no method {name!r}")

    def get_image_height(self) -> int:
        return self.shape[0]

    def get_image_width(self) -> int:
        return self.shape[1]

    def get_bytes_per_pixel(self) -> int:
        return 2

    def get_image_bit_depth(self) -> int:
        return 12

    def get_pixel_size_um(self) -> float:
        return 0.16

    def get_channel_group(self) -> str:
        return "Channel"

    def get_available_configs(self, group: str) -> _StrVector:
        return _StrVector(list(self.presets) if group == "Channel" else [])

    def get_focus_device(self) -> str:
        return "Z"

    def get_position(self, device: str) -> float:
        self.recorder.record("core.get_position", device)
        return self.z

    def set_position(self, device: str, z: float) -> None:
        self.recorder.record("core.set_position", device, z)
        self.z = z

    def stop(self, device: str) -> None:
        self.recorder.record("core.stop", device)

    def wait_for_device(self, device: str) -> None:
        self.recorder.record("core.wait_for_device", device)


class _FakeStorage:
    def get_disk_location(self) -> None:
        return None

    def get_summary_metadata(self) -> dict[str, Any]:
        return {}

    def is_finished(self) -> bool:
        return True


class _FakeDataSink:
    def __init__(self, acq: FakeJavaAcquisition) -> None:
        self._acq = acq

    def get_storage(self) -> _FakeStorage:
        return _FakeStorage()

    def is_finished(self) -> bool:
        return self._acq.finished.is_set()

    def get_viewer(self) -> None:
        raise AssertionError("no NDViewer may be created: show_display must be False")


class FakeImageProcessor:
    """``org.micromanager.remote.RemoteImageProcessor``: Java pulls and pushes images here."""

    def __init__(self, recorder: BridgeRecorder, context: zmq.Context) -> None:
        self.recorder = recorder
        self.pull_port = _free_port()  # Python binds a PUSH here; Java pulls processed images
        self.push = context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push_port = self.push.bind_to_random_port("tcp://127.0.0.1")
        self.pull = context.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)

    def get_pull_port(self) -> int:
        return self.pull_port

    def get_push_port(self) -> int:
        return self.push_port

    def start_pull(self) -> None:
        self.recorder.record("processor.start_pull")
        self.pull.connect(f"tcp://127.0.0.1:{self.pull_port}")

    def start_push(self) -> None:
        self.recorder.record("processor.start_push")


class FakeNotificationHandler:
    """``org.micromanager.remote.RemoteNotificationHandler``."""

    def __init__(self, recorder: BridgeRecorder, context: zmq.Context) -> None:
        self.recorder = recorder
        self.push = context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.port = self.push.bind_to_random_port("tcp://127.0.0.1")
        self.lock = threading.Lock()

    def get_port(self) -> int:
        return self.port

    def start(self) -> None:
        self.recorder.record("notifications.start")

    def send(self, kind: str, milestone: str) -> None:
        with self.lock:
            _java_send(self.push, {"type": kind, "milestone": milestone}, {})

    def notification_handling_complete(self) -> None:
        self.recorder.record("notifications.complete")


class FakeJavaAcquisition:
    """The Java acquisition engine: executes events, "snaps" images, reports notifications.

    An image's pixels are ``1000 + 10 * z`` (stage z) or ``1000 + frame number`` (no z), so a
    test can check from the pixels where each plane landed.
    """

    def __init__(self, bridge: JavaBridgeSubstitute, core: FakeCore) -> None:
        self.bridge = bridge
        self.recorder = bridge.recorder
        self.core = core
        self.event_port = _free_port()  # Python binds a PUSH here
        self.finished = threading.Event()
        self.aborted = threading.Event()
        self.processor: FakeImageProcessor | None = None
        self.frame_count = 0
        self.exception: Exception | None = None
        self._thread = threading.Thread(target=self._engine, name="fake-java-engine", daemon=True)
        self._started = False

    # methods pycromanager calls through the bridge
    def get_event_port(self) -> int:
        if not self._started:  # Java starts the engine when the acquisition is created
            self._started = True
            self._thread.start()
        return self.event_port

    def get_data_sink(self) -> _FakeDataSink:
        return _FakeDataSink(self)

    def add_image_processor(self, processor: FakeImageProcessor) -> None:
        self.recorder.record("acq.add_image_processor")
        self.processor = processor

    def add_hook(self, *args: Any) -> None:
        self.recorder.record("acq.add_hook")

    def abort(self) -> None:
        self.recorder.record("acq.abort")
        self.aborted.set()

    def is_finished(self) -> bool:
        return self.finished.is_set()

    def are_events_finished(self) -> bool:
        return self.finished.is_set()

    def block_until_events_finished(self, timeout: float | None = None) -> None:
        self.finished.wait(timeout)

    def wait_for_completion(self) -> None:
        self.finished.wait()

    def check_for_exceptions(self) -> None:
        if self.exception is not None:
            raise self.exception

    # the engine thread
    def _engine(self) -> None:
        # the event socket stays open until the bridge closes, as in the Java application
        events = self.bridge.socket(zmq.PULL)
        events.connect(f"tcp://127.0.0.1:{self.event_port}")
        try:
            while not self.aborted.is_set():
                message = _recv_json(events, 20)
                if message is None:
                    continue
                if self._execute(message.get("events", [])):
                    break
        finally:
            self._finish()

    def _execute(self, events: list[dict[str, Any]]) -> bool:
        """Run one batch of events; True at the end-of-acquisition marker."""
        for event in events:
            if event.get("special") == "acquisition-end":
                return True
            if self.aborted.is_set():
                return True
            self.recorder.events.append(event)
            z = event.get("z")
            if z is not None:
                self.core.set_position("Z", z)
            if self.frame_count == self.bridge.camera_fails_at:
                # what AcqEngJ does on a hardware error: keep it, abort, finish
                self.exception = RuntimeError("Camera: snap failed (error 10, device not ready)")
                self.recorder.record("acq.camera_failed", self.frame_count)
                return True
            value = 1000 + (round(10 * z) if z is not None else self.frame_count)
            self._snap(event, value, z)
        return False

    def _snap(self, event: dict[str, Any], value: int, z: float | None) -> None:
        assert self.processor is not None, "images need the image processor pycromanager adds"
        h, w = self.core.shape
        pixels = np.full((h, w), value, dtype=np.uint16)
        ident = 0x1234 + self.frame_count
        metadata = {
            "Axes": event["axes"],
            "Width": w,
            "Height": h,
            "PixelType": "GRAY16",
            "Camera": "Camera",
            "PixelSize_um": 0.16,
        }
        if z is not None:
            metadata["ZPosition_um_Intended"] = z
        _java_send(
            self.processor.push,
            {"metadata": metadata, "pixels": {"type": "short-array", "value": f"@{ident:x}"}},
            {ident: pixels.tobytes()},
        )
        self.frame_count += 1
        self.recorder.images_sent += 1

    def _finish(self) -> None:
        processor = self.processor
        if processor is not None:
            _java_send(processor.push, {"special": "finished"}, {})
            # whatever comes back before "finished" was returned by image_process_fn
            while (reply := _recv_json(processor.pull, 5000)) is not None:
                if reply.get("special") == "finished":
                    break
                self.recorder.images_returned += 1
        notifications = self.bridge.notifications
        self.recorder.record("acq.finished")
        self.finished.set()
        if notifications is not None:
            notifications.send("global", "acq_events_finished")
            notifications.send("image", "data_sink_finished")


class _FakeFactory:
    def __init__(self, bridge: JavaBridgeSubstitute, core: FakeCore) -> None:
        self.bridge = bridge
        self.core = core

    def create_acquisition(self, directory: Any, name: Any, show_viewer: bool, *args: Any) -> Any:
        self.bridge.recorder.record("factory.create_acquisition", directory, name, show_viewer)
        acq = FakeJavaAcquisition(self.bridge, self.core)
        self.bridge.acquisitions.append(acq)
        return acq


class JavaBridgeSubstitute:
    """Install with ``install(monkeypatch)``; then pycromanager believes Micro-Manager runs."""

    def __init__(self) -> None:
        self.recorder = BridgeRecorder()
        self.context = zmq.Context()
        self.core = FakeCore(self.recorder)
        self.acquisitions: list[FakeJavaAcquisition] = []
        self.notifications: FakeNotificationHandler | None = None
        self.camera_fails_at: int | None = None  # frame number at which the camera fails
        self._sockets: list[zmq.Socket] = []

    def socket(self, kind: int) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self._sockets.append(sock)
        return sock

    def java_object(self, classpath: str, args: Any = None, **options: Any) -> Any:
        self.recorder.record("new", classpath, options.get("port"))
        if classpath == "org.micromanager.remote.RemoteAcquisitionFactory":
            return _FakeFactory(self, args[0])
        if classpath == "org.micromanager.remote.RemoteImageProcessor":
            processor = FakeImageProcessor(self.recorder, self.context)
            self._sockets += [processor.push, processor.pull]
            return processor
        if classpath == "org.micromanager.remote.RemoteNotificationHandler":
            self.notifications = FakeNotificationHandler(self.recorder, self.context)
            self._sockets.append(self.notifications.push)
            return self.notifications
        raise AssertionError(f"unexpected Java class over the bridge: {classpath}")

    def remote_core(self, **options: Any) -> FakeCore:
        self.recorder.record("new", "mmcorej.CMMCore", options.get("port"))
        return self.core

    def install(self, monkeypatch: Any) -> None:
        import mmpycorex.core
        from pycromanager.acquisition import java_backend_acquisitions

        monkeypatch.setattr(java_backend_acquisitions, "JavaObject", self.java_object)
        monkeypatch.setattr(java_backend_acquisitions, "ZMQRemoteMMCoreJ", self.remote_core)
        monkeypatch.setattr(mmpycorex.core, "ZMQRemoteMMCoreJ", self.remote_core)

    def close(self) -> None:
        for acq in self.acquisitions:
            acq.aborted.set()
            if acq._thread.is_alive():
                acq._thread.join(5)
        for sock in self._sockets:
            sock.close(0)
        self.context.term()
