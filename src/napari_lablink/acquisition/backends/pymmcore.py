"""pymmcore-plus backend: z-stacks through a ``CMMCorePlus``'s own MDA runner.

The core is usually one the user already has (napari-micromanager's, i.e. the shared
``CMMCorePlus.instance()``), so this backend borrows it: it never reloads its configuration,
restores the focus position it found, and disconnects its listeners when a run ends.

Events come from a generator the runner pulls one at a time, a stack at a time (through the MDA
engine's ``event_iterator``, so hardware sequencing still applies within a stack): an endless
acquisition needs constant memory. Frames are taken from ``mda.events.frameReady`` with a direct
connection, so they are handled on the MDA thread even inside a Qt application (a queued
connection would run acquisition code on the Qt thread and block it at camera rate).

The runner is ``mmc.mda.run`` on a thread of ours, which is what ``run_mda(block=False)`` does,
except that the exception ending a failed run is caught and shown to the user instead of only
reaching the thread's excepthook. pymmcore-plus logs a failed snap and carries on; a run where a
plane yields no frame is ended here with a message instead, since its stacks would be garbage.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_lablink.acquisition.backends.base import channel_presets
from napari_lablink.acquisition.types import (
    AcquisitionError,
    BackendInfo,
    BackendUnavailableError,
    CameraError,
    FrameInfo,
    FrameSink,
    StackPlan,
    ZMode,
)

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import MDAEvent


class PymmcorePlusBackend:
    """Drive a pymmcore-plus core. ``mmcore=None`` and no ``config_file``: the shared core.

    With ``config_file`` a new core is created and loaded (``adapter_paths`` say where the
    device adapters are); ``close`` then unloads it. ``park_stage`` moves the focus back to
    where it was before each run once the run has stopped.
    """

    name = "pymmcore-plus"

    def __init__(
        self,
        mmcore: CMMCorePlus | None = None,
        *,
        config_file: str | Path | None = None,
        adapter_paths: tuple[str | Path, ...] = (),
        park_stage: bool = True,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self._mmc = mmcore
        self._config_file = None if config_file is None else str(config_file)
        self._adapter_paths = tuple(str(p) for p in adapter_paths)
        self._owns_core = False
        self._shared_core: object | None = None
        self.park_stage = park_stage
        self.stop_timeout_s = stop_timeout_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener: _FrameListener | None = None

    @property
    def mmcore(self) -> CMMCorePlus:
        if self._mmc is None:
            raise AcquisitionError("the pymmcore-plus backend is not connected; connect first")
        return self._mmc

    # -- Backend protocol ---------------------------------------------------------------------

    def connect(self) -> BackendInfo:
        try:
            CMMCorePlus = _import_core_class()
        except ImportError as exc:
            raise BackendUnavailableError(
                "pymmcore-plus is not installed: pip install 'napari-lablink[micromanager]'"
            ) from exc
        if self._mmc is None:
            if self._config_file is None:
                self._mmc = CMMCorePlus.instance()
            else:
                # The first core created becomes the process's shared instance (held only
                # weakly); make sure that is not ours, or napari-micromanager would get the core
                # we unload on close. The reference keeps the shared one alive meanwhile.
                self._shared_core = CMMCorePlus.instance()
                mmc = CMMCorePlus()
                if self._adapter_paths:
                    mmc.setDeviceAdapterSearchPaths(list(self._adapter_paths))
                try:
                    mmc.loadSystemConfiguration(self._config_file)
                except Exception as exc:
                    raise BackendUnavailableError(
                        f"pymmcore-plus could not load the configuration {self._config_file}: "
                        f"{exc}. Check the file and the device adapter path"
                    ) from exc
                self._mmc, self._owns_core = mmc, True
        mmc = self._mmc
        if not mmc.getCameraDevice():
            raise BackendUnavailableError(
                "the pymmcore-plus core has no camera: load a Micro-Manager configuration "
                "(e.g. in napari-micromanager) or pass config_file="
            )
        bpp = mmc.getBytesPerPixel()
        dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}.get(bpp)
        if dtype is None:
            raise BackendUnavailableError(f"unsupported camera pixel size: {bpp} bytes")
        pixel = mmc.getPixelSizeUm()
        group = mmc.getChannelGroup()
        focus = mmc.getFocusDevice()
        return BackendInfo(
            name=self.name,
            frame_shape=(mmc.getImageHeight(), mmc.getImageWidth()),
            dtype=np.dtype(dtype),
            bit_depth=mmc.getImageBitDepth(),
            pixel_size_um=pixel if pixel > 0 else None,
            channels=tuple(mmc.getAvailableConfigs(group)) if group else (),
            details={"camera": mmc.getCameraDevice(), "focus": focus, "channel_group": group},
        )

    def start(self, plan: StackPlan, sink: FrameSink) -> None:
        mmc = self.mmcore
        with self._lock:
            if self._thread is not None:
                raise AcquisitionError("the pymmcore-plus backend is already running")
            if mmc.mda.is_running():
                raise AcquisitionError(
                    "the Micro-Manager core is already running a multi-dimensional acquisition "
                    "(started elsewhere, e.g. napari-micromanager); stop it first"
                )
            if mmc.isSequenceRunning():
                raise AcquisitionError(
                    "the camera is in live mode (started elsewhere, e.g. napari-micromanager); "
                    "stop live mode first"
                )
            focus = mmc.getFocusDevice()
            if plan.z_mode is ZMode.STAGE and not focus:
                raise AcquisitionError(
                    "stage z mode needs a focus device, and the core has none "
                    "(set Core-Focus, or use the external-sweep z mode)"
                )
            group = mmc.getChannelGroup()
            channels = self._channel_presets(plan, group)
            z_home = mmc.getPosition(focus) if focus else None
            self._stop.clear()
            listener = _FrameListener(plan, sink, self._abort_from_mda_thread)
            self._listener = listener
            self._thread = threading.Thread(
                target=self._run,
                args=(plan, channels, group, focus, z_home, listener),
                name="lablink-pymmcore-mda",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        mmc = self.mmcore
        mmc.mda.cancel()
        focus = mmc.getFocusDevice()
        if focus:
            # stop a z move in flight: what the seed's core.stop("Z") was meant to do
            with contextlib.suppress(Exception):
                mmc.stop(focus)
        thread.join(self.stop_timeout_s)
        if thread.is_alive():
            raise AcquisitionError(
                f"the pymmcore-plus MDA did not finish within {self.stop_timeout_s:.0f} s of "
                "being cancelled; check the hardware"
            )

    def close(self) -> None:
        self.stop()
        if self._owns_core and self._mmc is not None:
            self._mmc.unloadAllDevices()
            self._mmc = None
            self._owns_core = False

    # -- internals ----------------------------------------------------------------------------

    def _abort_from_mda_thread(self) -> None:
        self._stop.set()
        self.mmcore.mda.cancel()

    def _channel_presets(self, plan: StackPlan, group: str) -> list[str | None]:
        available = self.mmcore.getAvailableConfigs(group) if group else ()
        return channel_presets(plan, group, available)

    def _events(
        self, plan: StackPlan, channels: list[str | None], group: str
    ) -> Iterator[MDAEvent]:
        import useq

        engine = self.mmcore.mda.engine
        merge = getattr(engine, "event_iterator", iter)
        z_positions = plan.z_positions_um
        k = 0
        while plan.n_stacks is None or k < plan.n_stacks:
            for c, preset in enumerate(channels):
                exposure = plan.exposure_ms
                channel = None if preset is None else {"config": preset, "group": group}
                if plan.z_mode is ZMode.STAGE:
                    stack = [
                        useq.MDAEvent.model_validate(  # validation turns index into its type
                            {
                                "index": {"t": k, "c": c, "z": i},
                                "z_pos": float(z),
                                "channel": channel,
                                "exposure": exposure,
                            }
                        )
                        for i, z in enumerate(z_positions)
                    ]
                else:  # the camera just streams; an external device sweeps z
                    stack = [
                        useq.MDAEvent.model_validate(
                            {"index": {"t": k, "c": c}, "channel": channel, "exposure": exposure}
                        )
                        for _ in range(plan.n_slices)
                    ]
                for event in merge(stack):
                    if self._stop.is_set():
                        return
                    yield event
            k += 1

    def _run(
        self,
        plan: StackPlan,
        channels: list[str | None],
        group: str,
        focus: str,
        z_home: float | None,
        listener: _FrameListener,
    ) -> None:
        from pymmcore_plus._util import listeners_connected

        mmc = self.mmcore
        error: BaseException | None = None
        try:
            with listeners_connected(
                mmc.mda.events, listener, qt_connection_type="DirectConnection"
            ):
                mmc.mda.run(self._events(plan, channels, group))
        except BaseException as exc:
            error = exc
        error = error or listener.error
        if error is None and not self._stop.is_set():
            error = listener.missing_frames_error()
        if self.park_stage and z_home is not None and focus:
            try:
                if abs(mmc.getPosition(focus) - z_home) > 1e-6:
                    mmc.setPosition(focus, z_home)
                    mmc.waitForDevice(focus)
            except Exception as exc:
                error = error or exc
        listener.sink.finished(error)


class _FrameListener:
    """Receives the runner's signals on the MDA thread and forwards frames to the sink."""

    def __init__(self, plan: StackPlan, sink: FrameSink, abort: Callable[[], None]) -> None:
        self.plan = plan
        self.sink = sink
        self._abort = abort
        self.error: BaseException | None = None
        self._external = plan.z_mode is ZMode.EXTERNAL
        self._received = 0
        self._expected = 0

    def eventStarted(self, event: MDAEvent) -> None:
        # an earlier event that produced no frame means a failed snap (pymmcore-plus logs it
        # and carries on): end the run rather than fill stacks with stale planes
        if self._received < self._expected and self.error is None:
            self.error = CameraError(self._missing_message())
            self._abort()
        sub_events = getattr(event, "events", None)
        self._expected += len(sub_events) if sub_events else 1

    def frameReady(self, image: np.ndarray, event: MDAEvent, meta: object) -> None:
        t = time.perf_counter()
        index = event.index
        c, k = int(index.get("c", 0)), int(index.get("t", 0))
        if self._external:
            info = FrameInfo(frame_number=self._received, timestamp=t)
        else:
            z = int(index.get("z", 0))
            info = FrameInfo(
                frame_number=(k * self.plan.n_channels + c) * self.plan.n_slices + z,
                timestamp=t,
                channel=c,
                z_index=z,
                stack_index=k,
                z_um=event.z_pos,
            )
        self._received += 1
        self.sink.frame(image, info)

    def missing_frames_error(self) -> CameraError | None:
        if self._received < self._expected:
            return CameraError(self._missing_message())
        return None

    def _missing_message(self) -> str:
        return (
            f"the camera delivered no image for frame {self._received + 1} (pymmcore-plus "
            "logged why: see its log); check the camera and its configuration"
        )


def _import_core_class() -> type[CMMCorePlus]:
    """``pymmcore_plus.CMMCorePlus``, without the root logger change its import makes.

    Importing pymmcore_plus sets the root logger to DEBUG for the whole process, which would
    turn on every library's debug output in napari the moment a user picks this backend.
    """
    import logging

    root = logging.getLogger()
    level = root.level
    try:
        from pymmcore_plus import CMMCorePlus
    finally:
        root.setLevel(level)
    return CMMCorePlus
