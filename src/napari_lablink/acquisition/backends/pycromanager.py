"""pycromanager backend: Micro-Manager's Java application (ZMQ bridge) or pycromanager's Python
backend (``start_headless(..., python_backend=True)``, pymmcore in this process).

Both go through the same code: ``pycromanager.Acquisition`` picks the Java or the Python
implementation by itself, and the core is ``pycromanager.Core`` in both cases (snake_case
methods either way). Frames are taken in ``image_process_fn`` and dropped (it returns None), so
pycromanager stores nothing and, in Java mode, sends nothing back over the bridge: the seed's
100 MB/s bridge limit then only applies one way.

An endless acquisition is fed a cycle (one stack per channel) at a time, always two cycles ahead,
from ``image_process_fn``'s event queue: memory stays constant and the camera never waits for
Python. Stage mode uses ``multi_d_acquisition_events``; external sweep mode uses events on a
custom ``z_ext`` axis with no ``z`` key, so Micro-Manager never moves the stage and the engine
assigns planes by frame count.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_lablink.acquisition.backends.base import channel_presets
from napari_lablink.acquisition.types import (
    AcquisitionError,
    BackendInfo,
    BackendUnavailableError,
    FrameInfo,
    FrameSink,
    StackPlan,
    ZMode,
)

DEFAULT_BRIDGE_PORT = 4827
_CYCLES_AHEAD = 2


def _strings(values: Any) -> list[str]:
    """A Java ``StrVector`` (size/get) or a Python sequence, as a list of str."""
    if hasattr(values, "size") and hasattr(values, "get") and callable(values.size):
        return [str(values.get(i)) for i in range(values.size())]
    return [str(v) for v in values]


class PycromanagerBackend:
    """Drive Micro-Manager through pycromanager.

    ``python_backend=False`` (default): a running Micro-Manager application with its ZMQ server
    on ``port``. ``python_backend=True``: pycromanager's in-process backend; if it is not started
    yet, ``connect`` starts it from ``mm_app_path`` (device adapters) and ``config_file``, and
    ``close`` stops what it started. ``park_stage`` moves the focus back to where it was before
    each run once the run has stopped.
    """

    name = "pycromanager"

    def __init__(
        self,
        *,
        python_backend: bool = False,
        mm_app_path: str | Path | None = None,
        config_file: str | Path | None = None,
        port: int = DEFAULT_BRIDGE_PORT,
        timeout_ms: int = 2500,
        park_stage: bool = True,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.python_backend = python_backend
        self._mm_app_path = None if mm_app_path is None else str(mm_app_path)
        self._config_file = None if config_file is None else str(config_file)
        self.port = port
        self.timeout_ms = timeout_ms
        self.park_stage = park_stage
        self.stop_timeout_s = stop_timeout_s
        self._started_headless = False
        self._core: Any = None
        self._acq: Any = None
        self._waiter: threading.Thread | None = None
        self._feeder: _Feeder | None = None
        self._lock = threading.Lock()
        self._z_home: float | None = None
        self._focus = ""

    @property
    def core(self) -> Any:
        if self._core is None:
            raise AcquisitionError("the pycromanager backend is not connected; connect first")
        return self._core

    # -- Backend protocol ---------------------------------------------------------------------

    def connect(self) -> BackendInfo:
        pycromanager, is_pymmcore_active = _import_pycromanager()
        if self.python_backend and not is_pymmcore_active():
            if self._mm_app_path is None:
                raise BackendUnavailableError(
                    "pycromanager's Python backend is not running: call pycromanager."
                    "start_headless(mm_app_path, config_file, python_backend=True) first, or "
                    "pass mm_app_path= and config_file="
                )
            try:
                pycromanager.start_headless(
                    self._mm_app_path, self._config_file, python_backend=True
                )
            except Exception as exc:
                raise BackendUnavailableError(
                    f"pycromanager could not start Micro-Manager from {self._mm_app_path} with "
                    f"{self._config_file}: {exc}"
                ) from exc
            self._started_headless = True
        if not self.python_backend and is_pymmcore_active():
            raise BackendUnavailableError(
                "pycromanager's Python backend is running in this process, so its Acquisition "
                "would not talk to the Micro-Manager application; use python_backend=True"
            )
        if self._core is None:
            try:
                self._core = pycromanager.Core(port=self.port, timeout=self.timeout_ms)
            except Exception as exc:
                raise BackendUnavailableError(
                    f"could not reach Micro-Manager on port {self.port}: is it running, with "
                    "Tools > Options > 'Run server on port 4827' enabled? "
                    f"({exc})"
                ) from exc
        core = self._core
        bpp = int(core.get_bytes_per_pixel())
        dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}.get(bpp)
        if dtype is None:
            raise BackendUnavailableError(f"unsupported camera pixel size: {bpp} bytes")
        pixel = float(core.get_pixel_size_um())
        group = str(core.get_channel_group())
        self._focus = str(core.get_focus_device())
        return BackendInfo(
            name=self.name,
            frame_shape=(int(core.get_image_height()), int(core.get_image_width())),
            dtype=np.dtype(dtype),
            bit_depth=int(core.get_image_bit_depth()),
            pixel_size_um=pixel if pixel > 0 else None,
            channels=tuple(_strings(core.get_available_configs(group))) if group else (),
            details={
                "mode": "python" if self.python_backend else f"java (port {self.port})",
                "focus": self._focus,
                "channel_group": group,
            },
        )

    def start(self, plan: StackPlan, sink: FrameSink) -> None:
        pycromanager, _ = _import_pycromanager()
        core = self.core
        with self._lock:
            if self._acq is not None:
                raise AcquisitionError("the pycromanager backend is already running")
            if plan.z_mode is ZMode.STAGE and not self._focus:
                raise AcquisitionError(
                    "stage z mode needs a focus device, and Micro-Manager has none "
                    "(set Core-Focus, or use the external-sweep z mode)"
                )
            group = str(core.get_channel_group())
            presets = self._channel_presets(plan, group)
            self._z_home = float(core.get_position(self._focus)) if self._focus else None
            cycle = _cycle_events(pycromanager, plan, presets, group)
            feeder = _Feeder(plan, sink, cycle)
            acq = pycromanager.Acquisition(
                directory=None,
                name="lablink-psf",
                image_process_fn=feeder.process,
                notification_callback_fn=feeder.notified,
                show_display=False,
                port=self.port,
                timeout=self.timeout_ms,
            )
            feeder.acq = acq
            self._acq, self._feeder = acq, feeder
            feeder.prime()
            self._waiter = threading.Thread(
                target=self._await, args=(acq, feeder), name="lablink-pycromanager", daemon=True
            )
            self._waiter.start()

    def stop(self) -> None:
        with self._lock:
            acq, feeder, waiter = self._acq, self._feeder, self._waiter
            self._acq = self._feeder = self._waiter = None
        if acq is None or feeder is None or waiter is None:
            return
        feeder.stopping = True
        with contextlib.suppress(Exception):  # it may have finished on its own meanwhile
            acq.abort()
        if self._focus:
            # stop a z move in flight: what the seed's core.stop("Z") was meant to do
            with contextlib.suppress(Exception):
                self.core.stop(self._focus)
        with contextlib.suppress(Exception):
            acq.mark_finished()
        waiter.join(self.stop_timeout_s)
        if waiter.is_alive():
            raise AcquisitionError(
                f"pycromanager's acquisition did not finish within {self.stop_timeout_s:.0f} s "
                "of being aborted; Micro-Manager may need a restart"
            )

    def close(self) -> None:
        self.stop()
        self._core = None
        if self._started_headless:
            pycromanager, _ = _import_pycromanager()
            pycromanager.stop_headless()
            self._started_headless = False

    # -- internals ----------------------------------------------------------------------------

    def _await(self, acq: Any, feeder: _Feeder) -> None:
        error: BaseException | None = None
        try:
            acq.await_completion()
        except BaseException as exc:
            error = exc
        if feeder.stopping:
            error = None  # an abort we asked for is not a failure
        if self.park_stage and self._z_home is not None and self._focus:
            try:
                if abs(float(self.core.get_position(self._focus)) - self._z_home) > 1e-6:
                    self.core.set_position(self._focus, self._z_home)
                    self.core.wait_for_device(self._focus)
            except Exception as exc:
                error = error or exc
        feeder.sink.finished(error)

    def _channel_presets(self, plan: StackPlan, group: str) -> list[str | None]:
        available = _strings(self.core.get_available_configs(group)) if group else []
        return channel_presets(plan, group, available)


def _import_pycromanager() -> tuple[Any, Any]:
    try:
        import pycromanager
        from mmpycorex import is_pymmcore_active
    except ImportError as exc:
        raise BackendUnavailableError(
            "pycromanager is not installed: pip install 'napari-lablink[micromanager]'"
        ) from exc
    return pycromanager, is_pymmcore_active


def _cycle_events(
    pycromanager: Any, plan: StackPlan, presets: list[str | None], group: str
) -> list[list[dict[str, Any]]]:
    """Events of one cycle, one list per channel, without the time axis (added per cycle)."""
    z = plan.z_positions_um
    stacks = []
    for c, preset in enumerate(presets):
        if plan.z_mode is ZMode.STAGE:
            if plan.n_slices > 1:
                events = pycromanager.multi_d_acquisition_events(
                    z_start=float(z[0]), z_end=float(z[-1]), z_step=plan.z_step_um
                )[: plan.n_slices]  # arange may add a plane: keep the plan's count
            else:
                events = [{"axes": {"z": 0}}]
            for i, event in enumerate(events):
                event["z"] = float(z[i])  # exact positions, not arange's rounding
        else:
            events = [{"axes": {"z_ext": i}} for i in range(plan.n_slices)]
        for event in events:
            event["axes"]["channel"] = c
            if preset is not None:
                event["config_group"] = [group, preset]
            if plan.exposure_ms is not None:
                event["exposure"] = plan.exposure_ms
        stacks.append(events)
    return stacks


class _Feeder:
    """pycromanager's ``image_process_fn``: hands frames on and keeps events coming."""

    def __init__(self, plan: StackPlan, sink: FrameSink, cycle: list[list[dict[str, Any]]]):
        self.plan = plan
        self.sink = sink
        self.acq: Any = None
        self.stopping = False
        self._cycle = cycle
        self._per_cycle = plan.frames_per_cycle
        self._received = 0
        self._queued_cycles = 0
        self._external = plan.z_mode is ZMode.EXTERNAL

    def prime(self) -> None:
        for _ in range(_CYCLES_AHEAD):
            self._queue_cycle(self.acq.acquire)

    def process(self, image: np.ndarray, metadata: dict[str, Any], event_queue: Any) -> None:
        t = time.perf_counter()
        axes = metadata.get("Axes", {})
        if self._external:
            info = FrameInfo(frame_number=self._received, timestamp=t)
        else:
            k, c, z = int(axes.get("time", 0)), int(axes.get("channel", 0)), int(axes.get("z", 0))
            info = FrameInfo(
                frame_number=(k * self.plan.n_channels + c) * self.plan.n_slices + z,
                timestamp=t,
                channel=c,
                z_index=z,
                stack_index=k,
                z_um=metadata.get("ZPosition_um_Intended"),
            )
        self._received += 1
        self.sink.frame(image, info)
        if self._received % self._per_cycle == 0 and not self.stopping:
            self._queue_cycle(event_queue.put)
        return None  # dropped: pycromanager keeps nothing

    def notified(self, notification: Any) -> None:
        """Close the event queue once the acquisition has ended, whatever ended it.

        pycromanager's ``await_completion`` waits for its event thread, which only ends when
        the queue is closed; after a camera error nobody else would close it and the wait
        would never return.
        """
        if notification.is_acquisition_finished_notification() and self.acq is not None:
            with contextlib.suppress(Exception):
                self.acq.mark_finished()

    def _queue_cycle(self, put: Any) -> None:
        n = self.plan.n_stacks
        if n is not None and self._queued_cycles >= n:
            if self._queued_cycles == n:
                put(None)  # no more events: the acquisition ends by itself
                self._queued_cycles += 1
            return
        k = self._queued_cycles
        events = []
        for stack in self._cycle:
            for event in stack:
                events.append({**event, "axes": {**event["axes"], "time": k}})
        put(events)
        self._queued_cycles += 1
