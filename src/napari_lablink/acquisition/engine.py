"""The acquisition engine: runs z-stacks on a backend and keeps the newest stacks in memory.

Threads. ``start``/``stop``/``close`` only record a request and return at once (a UI can call
them at any pace). One control thread, alive while there is something to do, carries requests
out in order: it connects and starts the backend, and stops it. Frames arrive on the backend's
thread and are cropped and copied straight into preallocated stack buffers there, with no
queue in between (the seed notebook's queue and per-frame stack hand-over were its bottleneck).
Each run has its own frame sink, so a frame from a run being stopped can never land in the
next run's stacks: that is what made the seed glitch on a quick stop/start.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from napari_lablink.acquisition.backends.base import Backend
from napari_lablink.acquisition.buffers import ChannelBuffer, StackView
from napari_lablink.acquisition.callbacks import Callbacks
from napari_lablink.acquisition.stats import AcquisitionStats, RunStats
from napari_lablink.acquisition.types import (
    AcquisitionError,
    BackendInfo,
    FrameInfo,
    StackPlan,
    ZMode,
)

log = logging.getLogger(__name__)


class EngineState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


@dataclass(frozen=True)
class StackGeometry:
    """Shape and physical scale of the stacks of the current (or last) run.

    ``generation`` changes whenever the buffers are reallocated (new shape, slices or channels);
    while it stays the same, ``live_stack`` arrays are the same objects across runs.
    """

    channels: tuple[str, ...]
    n_slices: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    z_positions_um: np.ndarray
    z_step_um: float
    pixel_size_um: float | None
    crop_origin: tuple[int, int]
    generation: int

    @property
    def scale_zyx_um(self) -> tuple[float, float, float]:
        """Voxel size for display (1 where unknown, as napari's default)."""
        px = self.pixel_size_um or 1.0
        return (abs(self.z_step_um) or 1.0, px, px)


class _Run:
    """The frame sink of one run: places frames, tracks stacks and the run's end."""

    def __init__(
        self,
        run_id: int,
        plan: StackPlan,
        backend_name: str,
        buffers: list[ChannelBuffer],
        frame_shape: tuple[int, int],
        crop: tuple[slice, slice],
        on_stack: Callbacks[[StackView]],
        wake: threading.Condition,
        start_seq: int = 0,
    ) -> None:
        self.run_id = run_id
        self.start_seq = start_seq
        self.plan = plan
        self.backend_name = backend_name
        self.buffers = buffers
        self.frame_shape = frame_shape
        self.crop = crop
        self.stats = RunStats(run_id)
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.failed = False
        self.closed = False
        self._on_stack = on_stack
        self._wake = wake
        self._n_z = plan.n_slices
        self._n_c = plan.n_channels
        self._external = plan.z_mode is ZMode.EXTERNAL
        self.last_position: tuple[int, int, int] | None = None  # (stack, channel, z)
        for buf in buffers:
            buf.begin(-1, run_id, time.perf_counter())

    # FrameSink -----------------------------------------------------------------------------

    def frame(self, image: np.ndarray, info: FrameInfo) -> None:
        if self.closed or self.failed:
            self.stats.frames_late += 1
            return
        try:
            self._place(image, info)
        except Exception as exc:
            self.fail(exc)

    def finished(self, error: BaseException | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.ended.set()
        with self._wake:
            self._wake.notify_all()

    # ---------------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Record an error found on the frame path and ask the control thread to end the run."""
        if self.error is None:
            self.error = error
        self.failed = True
        with self._wake:
            self._wake.notify_all()

    @property
    def needs_ending(self) -> bool:
        return self.ended.is_set() or self.failed

    def _place(self, image: np.ndarray, info: FrameInfo) -> None:
        if image.shape != self.frame_shape:
            raise AcquisitionError(
                f"the camera's frame size changed from {self.frame_shape[1]} x "
                f"{self.frame_shape[0]} to {image.shape[-1]} x {image.shape[0]} during the run "
                "(binning or ROI changed?); start again to acquire with the new size"
            )
        if self._external:
            k = info.frame_number
            z, c, stack = k % self._n_z, (k // self._n_z) % self._n_c, k // (self._n_z * self._n_c)
        else:
            if info.z_index is None or info.stack_index is None:
                raise AcquisitionError(
                    f"the {self.backend_name} backend delivered a frame without a z index in "
                    "stage mode; use the external-sweep z mode for this camera"
                )
            z, c, stack = info.z_index, info.channel, info.stack_index
            if not (0 <= z < self._n_z and 0 <= c < self._n_c):
                raise AcquisitionError(
                    f"the {self.backend_name} backend delivered plane {z} of channel {c}, outside "
                    f"the plan's {self._n_z} planes x {self._n_c} channels"
                )
        buf = self.buffers[c]
        if stack != buf.stack_index:
            if stack < buf.stack_index:  # a straggler from a stack already superseded
                self.stats.frames_late += 1
                return
            buf.begin(stack, self.run_id, info.timestamp)
        done = buf.write(z, image[self.crop], info.timestamp)
        t_written = time.perf_counter()
        self.stats.frame(info.frame_number, info.timestamp, t_written)
        self.last_position = (stack, c, z)
        if done:
            view = buf.publish()
            self.stats.stack(t_written)
            self._on_stack(view)


class AcquisitionEngine(AbstractContextManager["AcquisitionEngine"]):
    """Repeats z-stacks on a backend until stopped; see the module docstring for threads.

    For a viewer (all of these are safe from any thread and never block on acquisition):

    - ``geometry``: shape, z positions and voxel size of the stacks;
    - ``live_stack(c)``: a read-only array that always holds the newest plane for every z (the
      same object for the whole run): hand it to the viewer once, refresh it on a timer;
    - ``newest_stack(c)`` / ``lease_newest(c)``: the newest *complete* stack (see ``buffers``);
    - ``in_progress_stack(c)``: the stack being written, with which planes are filled;
    - ``stats()``, ``state``, ``error``;
    - callbacks ``stack_completed(view)`` (on the acquisition thread: keep it short and never
      block, e.g. hand the stack to a ``PSFAnalyzer``), ``state_changed(state)`` and
      ``run_failed(message)`` (both on the control thread). Callbacks may call ``start`` and
      ``stop`` but not ``wait`` or ``close``, which wait for the very threads running them;
      a callback that raises is logged and ignored.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        n_slots: int = 3,
        max_buffer_bytes: int = 2 * 1024**3,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.backend = backend
        self.n_slots = n_slots
        self.max_buffer_bytes = max_buffer_bytes
        self.stop_timeout_s = stop_timeout_s
        self.stack_completed: Callbacks[[StackView]] = Callbacks("stack_completed")
        self.state_changed: Callbacks[[EngineState]] = Callbacks("state_changed")
        self.run_failed: Callbacks[[str]] = Callbacks("run_failed")
        self._cond = threading.Condition()
        self._requests: list[StackPlan | None] = []  # a plan: (re)start; None: stop
        self._control: threading.Thread | None = None
        self._last_control: threading.Thread | None = None
        self._busy = False
        self._closed = False
        self._state = EngineState.IDLE
        self._run: _Run | None = None
        self._last_run: _Run | None = None
        self._run_counter = 0
        self._start_seq = 0
        self._error: str | None = None
        self._info: BackendInfo | None = None
        self._buffers: list[ChannelBuffer] = []
        self._geometry: StackGeometry | None = None
        self._generation = 0

    # -- control (any thread, never blocks on the hardware) -----------------------------------

    def start(self, plan: StackPlan) -> None:
        """Start acquiring ``plan``; restarts if a run is under way."""
        self._request(plan)

    def stop(self) -> None:
        """Stop the run (and the stage, where the backend can); returns at once."""
        self._request(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request is carried out and no run is active; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._requests or self._busy or self._run is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            thread = self._last_control
        if thread is not None:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            return not thread.is_alive()
        return True

    def wait_for_stacks(self, n: int, timeout: float | None = None) -> bool:
        """Block until the most recently requested run has published ``n`` stacks per channel.

        False if that run ended first, or on timeout. For scripts, tests and a Snap button run
        in a worker; a viewer should use ``stack_completed`` instead.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            wanted = self._start_seq
        while True:
            run = self._run if self._run is not None else self._last_run
            if run is not None and run.start_seq == wanted:
                if run.stats.stacks_completed >= n * len(run.buffers):
                    return True
                if run.closed:
                    return False
            elif not self._requests and not self._busy and self._run is None:
                return False  # the run could not even start
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def connect(self) -> BackendInfo:
        """Connect the backend (blocking: not on a UI thread) and cache what it reports."""
        self._info = self.backend.connect()
        return self._info

    def close(self, timeout: float | None = None) -> None:
        """Stop, wait for every thread to end, release the backend. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._requests.append(None)
            self._ensure_control_thread()
            self._cond.notify_all()
        self.wait(timeout if timeout is not None else self.stop_timeout_s)
        self.backend.close()
        self._set_state(EngineState.CLOSED)

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what a viewer reads (any thread) -----------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def error(self) -> str | None:
        """Why the last run failed (None if it did not); cleared when a run starts."""
        return self._error

    @property
    def info(self) -> BackendInfo | None:
        return self._info

    @property
    def geometry(self) -> StackGeometry | None:
        return self._geometry

    @property
    def plan(self) -> StackPlan | None:
        run = self._run or self._last_run
        return None if run is None else run.plan

    @property
    def buffer_bytes(self) -> int:
        return sum(b.nbytes for b in self._buffers)

    def live_stack(self, channel: int = 0) -> np.ndarray:
        view = self._buffer(channel).live.view()
        view.flags.writeable = False
        return view

    def newest_stack(self, channel: int = 0) -> StackView | None:
        return self._buffer(channel).newest() if self._buffers else None

    def in_progress_stack(self, channel: int = 0) -> StackView | None:
        return self._buffer(channel).in_progress() if self._buffers else None

    def lease_newest(self, channel: int = 0) -> AbstractContextManager[StackView | None]:
        """``with engine.lease_newest(c) as view:`` the stack stays intact inside the block."""
        if not self._buffers:
            return _none_context()
        return self._buffer(channel).lease()

    def is_current(self, view: StackView) -> bool:
        """Whether an unleased view from ``newest_stack`` still holds its stack."""
        return bool(self._buffers) and self._buffer(view.channel).is_current(view)

    def versions(self) -> tuple[int, ...]:
        """Per channel, how many stacks have been published: cheap change detection."""
        return tuple(b.version for b in self._buffers)

    def stats(self) -> AcquisitionStats | None:
        run = self._run or self._last_run
        return None if run is None else run.stats.snapshot()

    # -- internals ----------------------------------------------------------------------------

    def _buffer(self, channel: int) -> ChannelBuffer:
        if not self._buffers:
            raise AcquisitionError("no stacks yet: start an acquisition first")
        if not 0 <= channel < len(self._buffers):
            raise IndexError(f"channel {channel} out of range (have {len(self._buffers)})")
        return self._buffers[channel]

    def _request(self, plan: StackPlan | None) -> None:
        with self._cond:
            if self._closed:
                raise AcquisitionError("this acquisition engine is closed; create a new one")
            # only the last request matters once the current one is carried out
            self._requests[:] = [plan]
            if plan is not None:
                self._start_seq += 1
            self._ensure_control_thread()
            self._cond.notify_all()

    def _ensure_control_thread(self) -> None:
        if self._control is None:
            self._control = threading.Thread(
                target=self._control_loop, name="lablink-acq-control", daemon=True
            )
            self._last_control = self._control
            self._busy = True
            self._control.start()

    def _control_loop(self) -> None:
        while True:
            with self._cond:
                while not self._requests and not (self._run and self._run.needs_ending):
                    if self._run is None:
                        self._control = None
                        self._busy = False
                        self._cond.notify_all()
                        return
                    self._cond.wait()
                request = self._requests.pop(0) if self._requests else None
                seq = self._start_seq
            try:
                if self._run is not None:
                    self._end_run()
                if request is not None and not self._closed:
                    self._begin_run(request, seq)
            except Exception as exc:  # a bug here must not leave the engine wedged
                log.exception("acquisition control thread error")
                self._fail(f"Internal acquisition error: {exc}")
                with self._cond:
                    if self._run is not None:
                        self._run.closed = True
                        self._last_run, self._run = self._run, None
                self._set_state(EngineState.IDLE)

    def _set_state(self, state: EngineState) -> None:
        if state is not self._state:
            self._state = state
            self.state_changed(state)

    def _begin_run(self, plan: StackPlan, seq: int) -> None:
        self._set_state(EngineState.STARTING)
        self._error = None
        self._run_counter += 1
        run: _Run | None = None
        try:
            info = self._info = self.backend.connect()
            frame_shape, crop, origin = _central_crop(info.frame_shape, plan.crop)
            self._allocate(plan, info, frame_shape, origin)
            run = _Run(
                self._run_counter,
                plan,
                self.backend.name,
                self._buffers,
                info.frame_shape,
                crop,
                self.stack_completed,
                self._cond,
                seq,
            )
            with self._cond:
                self._run = run
            self.backend.start(plan, run)
        except Exception as exc:
            if run is not None:
                self._safe_backend_stop()
                run.closed = True
                run.stats.end()
                with self._cond:
                    self._run = None
                    self._last_run = run
            self._fail(f"Could not start acquisition on the {self.backend.name} backend: {exc}")
            self._set_state(EngineState.IDLE)
            return
        self._set_state(EngineState.RUNNING)

    def _end_run(self) -> None:
        run = self._run
        assert run is not None
        self._set_state(EngineState.STOPPING)
        self._safe_backend_stop(run)
        run.ended.wait(self.stop_timeout_s)
        run.closed = True
        run.stats.end()
        with self._cond:
            self._run = None
            self._last_run = run
            self._cond.notify_all()
        if run.error is not None:
            self._fail(self._describe_failure(run))
        self._set_state(EngineState.IDLE)

    def _safe_backend_stop(self, run: _Run | None = None) -> None:
        try:
            self.backend.stop()
        except Exception as exc:
            if run is not None and run.error is None:
                run.error = exc

    def _fail(self, message: str) -> None:
        self._error = message
        self.run_failed(message)

    def _describe_failure(self, run: _Run) -> str:
        done = run.stats.stacks_completed
        where = "before the first frame"
        if run.last_position is not None:
            stack, c, z = run.last_position
            where = (
                f"after plane {z + 1} of {run.plan.n_slices} of stack {stack + 1}"
                f" (channel {run.plan.channels[c]})"
            )
        kept = "Nothing was acquired."
        unfinished = run.stats.frames - done * run.plan.n_slices
        if unfinished > 0:
            kept = f"Kept: {done} complete stack(s) and the planes of the unfinished one."
        elif run.stats.frames:
            kept = f"Kept: {done} complete stack(s)."
        reason = str(run.error).rstrip(". ") or type(run.error).__name__
        return f"Acquisition on the {self.backend.name} backend stopped {where}: {reason}. {kept}"

    def _allocate(
        self,
        plan: StackPlan,
        info: BackendInfo,
        frame_shape: tuple[int, int],
        origin: tuple[int, int],
    ) -> None:
        z = plan.z_positions_um
        geometry = self._geometry
        same = (
            geometry is not None
            and geometry.channels == plan.channels
            and geometry.n_slices == plan.n_slices
            and geometry.frame_shape == frame_shape
            and geometry.dtype == info.dtype
            and len(self._buffers) == plan.n_channels
        )
        if not same:
            per_stack = plan.n_slices * frame_shape[0] * frame_shape[1] * info.dtype.itemsize
            needed = per_stack * (self.n_slots + 1) * plan.n_channels
            if needed > self.max_buffer_bytes:
                raise AcquisitionError(
                    f"the stack buffers would need {_size(needed)} (limit "
                    f"{_size(self.max_buffer_bytes)}): use fewer slices or channels, "
                    "or a smaller crop"
                )
            self._buffers = []  # release the old ones before allocating
            self._buffers = [
                ChannelBuffer(c, plan.n_slices, frame_shape, info.dtype, z, self.n_slots)
                for c in range(plan.n_channels)
            ]
            self._generation += 1
        else:
            for buf in self._buffers:
                buf.z_positions_um = _readonly(z)
        self._geometry = StackGeometry(
            channels=plan.channels,
            n_slices=plan.n_slices,
            frame_shape=frame_shape,
            dtype=info.dtype,
            z_positions_um=_readonly(z),
            z_step_um=plan.z_step_um if plan.z_step_um else (info.z_step_um or 0.0),
            pixel_size_um=info.pixel_size_um,
            crop_origin=origin,
            generation=self._generation,
        )


def _central_crop(
    shape: tuple[int, int], crop: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[slice, slice], tuple[int, int]]:
    if crop is None:
        return shape, (slice(None), slice(None)), (0, 0)
    h, w = crop
    if h > shape[0] or w > shape[1]:
        raise AcquisitionError(
            f"the crop {w} x {h} is larger than the camera frame {shape[1]} x {shape[0]}; "
            "choose a crop no larger than the frame"
        )
    y0, x0 = (shape[0] - h) // 2, (shape[1] - w) // 2
    return (h, w), (slice(y0, y0 + h), slice(x0, x0 + w)), (y0, x0)


def _size(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def _readonly(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


class _none_context(AbstractContextManager[None]):
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None
