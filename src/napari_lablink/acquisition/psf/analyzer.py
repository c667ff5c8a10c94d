"""Live analysis: newest-wins, in one worker thread, so acquisition is never slowed.

Submitting a stack replaces any stack of that channel still waiting, so a slow analysis never
queues work. Attached to an engine, the analyzer leases the newest stack only when it starts
analysing, so no stack is copied.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from napari_lablink.acquisition.callbacks import Callbacks
from napari_lablink.acquisition.psf.alignment import assess_alignment
from napari_lablink.acquisition.psf.analysis import analyze_stack
from napari_lablink.acquisition.psf.results import DEFAULT_OPTIONS, PSFOptions, PSFResult

if TYPE_CHECKING:
    from napari_lablink.acquisition.buffers import StackView
    from napari_lablink.acquisition.engine import StackGeometry

log = logging.getLogger(__name__)


class StackSource(Protocol):
    """What ``attach`` uses of an engine, so a pacing stand-in (``PacedStacks``) fits too."""

    @property
    def stack_completed(self) -> Callbacks[[StackView]]: ...

    @property
    def geometry(self) -> StackGeometry | None: ...

    def lease_newest(self, channel: int = 0) -> AbstractContextManager[StackView | None]: ...


@dataclass
class _Job:
    """One submission: how to get hold of the stack once the worker starts on it."""

    channel: int
    acquire: Callable[[], AbstractContextManager[StackView | np.ndarray | None]]
    pixel_size_um: float
    z_positions_um: np.ndarray | None
    version: int = 0


class PSFAnalyzer:
    """Analyses the newest stack of each channel in one worker thread, dropping older ones.

    ``submit`` (any thread, returns at once) hands over a stack; ``attach(engine)`` makes every
    completed stack of the engine a submission, leased from the engine only when the worker
    starts on it. Results arrive through ``result_ready(result)`` on the worker thread and
    are kept in ``latest(channel)``. ``set_positions`` pins the analysis to user-marked beads.
    """

    def __init__(self, options: PSFOptions = DEFAULT_OPTIONS) -> None:
        self.options = options
        self.result_ready: Callbacks[[PSFResult]] = Callbacks("result_ready")
        self.analysis_failed: Callbacks[[str]] = Callbacks("analysis_failed")
        self.analysed = 0
        self.superseded = 0
        self._positions: np.ndarray | None = None
        self._pending: dict[int, _Job] = {}
        self._latest: dict[int, PSFResult] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._engine: StackSource | None = None
        self._pixel_size_um: float | None = None
        self._thread = threading.Thread(target=self._work, name="lablink-psf", daemon=True)
        self._thread.start()

    def set_positions(self, positions: np.ndarray | None) -> None:
        """Bead positions in stack pixels ((y, x) or (z, y, x)); None: find beads again."""
        self._positions = None if positions is None else np.array(positions, dtype=float)

    def submit(
        self,
        stack: np.ndarray,
        *,
        pixel_size_um: float,
        z_positions_um: np.ndarray | None = None,
        z_step_um: float | None = None,
        channel: int = 0,
        version: int = 0,
    ) -> None:
        """Analyse ``stack`` (not copied: do not change it until its result arrives)."""
        if z_positions_um is None:
            if z_step_um is None:
                raise ValueError("give z_positions_um or z_step_um")
            z_positions_um = np.arange(stack.shape[0]) * z_step_um
        self._enqueue(
            _Job(channel, lambda: nullcontext(stack), pixel_size_um, z_positions_um, version)
        )

    def attach(self, engine: StackSource, pixel_size_um: float | None = None) -> None:
        """Analyse every stack ``engine`` completes (the widget passes its pixel size)."""
        self.detach()
        self._engine = engine
        self._pixel_size_um = pixel_size_um
        engine.stack_completed.connect(self._on_stack)

    def detach(self) -> None:
        if self._engine is not None:
            self._engine.stack_completed.disconnect(self._on_stack)
            self._engine = None

    def latest(self, channel: int = 0) -> PSFResult | None:
        return self._latest.get(channel)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being analysed (for scripts and tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        self.detach()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> PSFAnalyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------

    def _on_stack(self, view: StackView) -> None:
        engine = self._engine
        if engine is None:
            return
        channel = view.channel
        geometry = engine.geometry
        pixel = self._pixel_size_um or (geometry.pixel_size_um if geometry else None) or 1.0
        self._enqueue(
            _Job(channel, lambda: engine.lease_newest(channel), pixel, None, view.version)
        )

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                return
            if job.channel in self._pending:
                self.superseded += 1
            self._pending[job.channel] = job
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    return
                channel = next(iter(self._pending))
                job = self._pending.pop(channel)
                self._busy = True
            try:
                self._run(job)
            except Exception as exc:
                log.exception("PSF analysis failed")
                self.analysis_failed(f"PSF analysis of channel {job.channel} failed: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, job: _Job) -> None:
        with job.acquire() as got:
            if got is None:
                return
            if isinstance(got, np.ndarray):
                stack, z, version, stack_index, run_id = (
                    got,
                    job.z_positions_um,
                    job.version,
                    -1,
                    -1,
                )
            else:  # a leased engine stack: the newest, which may be newer than the one notified
                stack, z, version, stack_index, run_id = (
                    got.data,
                    got.z_positions_um,
                    got.version,
                    got.stack_index,
                    got.run_id,
                )
            result = analyze_stack(
                stack,
                pixel_size_um=job.pixel_size_um,
                z_positions_um=z,
                positions=self._positions,
                options=self.options,
            )
            alignment = assess_alignment(stack, result, z)
        result = replace(
            result,
            channel=job.channel,
            version=version,
            stack_index=stack_index,
            alignment=alignment,
            run_id=run_id,
        )
        self._latest[job.channel] = result
        self.analysed += 1
        self.result_ready(result)
