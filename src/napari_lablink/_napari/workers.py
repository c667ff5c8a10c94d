"""Background work of the dock widgets: the one way they leave the Qt thread and come back.

A widget must never block the Qt thread on a server or a microscope, and must never be called
once it has closed. Each widget owns one :class:`Workers`, which gives it both:

- :meth:`Workers.start` runs a job in napari's worker threads (``napari.qt.threading``) and
  hands its result, or the exception it raised, to callbacks on the Qt thread. Exceptions never
  reach napari's traceback notification: the widget decides what the user reads
  (:func:`describe` is the common wording).
- The job gets a :class:`Task`: ``task.cancelled`` is the event it passes on to stop early,
  ``task.report(done, total)`` moves the widget's progress display, from any thread.
- :meth:`Workers.on_main` wraps a slot so that any thread may call it (the acquisition core calls
  back on its own threads); the slot then runs on the Qt thread.
- :meth:`Workers.close` cancels every task and drops whatever has not been delivered yet, so a
  closed widget is never called back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Qt, Signal

from napari_lablink.client.errors import LablinkError, scrub

__all__ = ["Task", "Workers", "describe"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Task:
    """One job in a worker thread, as both the job and the widget see it."""

    def __init__(self, report: Callable[[int, int], None] | None = None) -> None:
        #: Set by :meth:`cancel` (or the widget closing); a job passes it to what it calls.
        self.cancelled = threading.Event()
        self._report = report
        self._ended = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def report(self, done: int, total: int) -> None:
        """Progress, from any thread: reaches the widget's ``progress`` slot on the Qt thread."""
        if self._report is not None:
            self._report(done, total)

    @property
    def running(self) -> bool:
        """True until the job has returned or raised (its callbacks may still be on their way)."""
        return not self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has returned or raised; False if ``timeout`` passed first."""
        return self._ended.wait(timeout)


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    value: T | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class _Callbacks(Generic[T]):
    done: Callable[[T], object] | None
    failed: Callable[[Exception], object] | None
    finished: Callable[[], object] | None
    discard: Callable[[T], object] | None


def _run(job: Callable[[Task], T], task: Task) -> _Outcome[T]:
    """In the worker thread: the job's result or exception, never raised (see module doc)."""
    try:
        return _Outcome(value=job(task))
    except Exception as exc:
        return _Outcome(error=exc)
    finally:
        task._ended.set()


class Workers(QObject):
    """The background jobs of one widget.

    With ``serial=True`` jobs run one after another in the order started (the PSF widget closes
    one microscope before it connects the next); otherwise they run side by side.
    """

    _call = Signal(object, object)  # slot, args: queued to the Qt thread

    def __init__(self, *, serial: bool = False) -> None:
        super().__init__()
        self._serial = serial
        self._waiting: deque[tuple[Task, Callable[[], None]]] = deque()
        self._tasks: set[Task] = set()
        self._workers: set[Any] = set()  # napari's worker objects, kept alive until they end
        self._closed = False
        self._call.connect(self._deliver_call, Qt.ConnectionType.QueuedConnection)

    @property
    def idle(self) -> bool:
        """No job running or waiting, and every callback delivered."""
        return not self._tasks

    @property
    def closed(self) -> bool:
        return self._closed

    def start(
        self,
        job: Callable[[Task], T],
        *,
        done: Callable[[T], object] | None = None,
        failed: Callable[[Exception], object] | None = None,
        progress: Callable[[int, int], object] | None = None,
        finished: Callable[[], object] | None = None,
        discard: Callable[[T], object] | None = None,
    ) -> Task:
        """Run ``job(task)`` off the Qt thread; then, on the Qt thread, ``done(result)`` or
        ``failed(exception)`` (logged if not given), then ``finished()``.

        ``discard(result)`` gets the result instead when the widget closed meanwhile, so a job
        that opens something (a connection) can have it closed. After :meth:`close` nothing
        starts and the returned task is already cancelled.
        """
        task = Task(self.on_main(progress) if progress is not None else None)
        if self._closed:
            task.cancel()
            task._ended.set()
            return task
        callbacks = _Callbacks(done, failed, finished, discard)
        self._tasks.add(task)

        def launch() -> None:
            worker = create_worker(_run, job, task, _start_thread=False)
            self._workers.add(worker)
            worker.returned.connect(lambda outcome: self._deliver(task, outcome, callbacks))
            worker.finished.connect(lambda: self._workers.discard(worker))
            worker.start()

        if self._serial and len(self._tasks) > 1:
            self._waiting.append((task, launch))
        else:
            launch()
        return task

    def on_main(self, slot: Callable[..., object]) -> Callable[..., None]:
        """A function any thread may call: each call runs ``slot`` with its arguments on the Qt
        thread, in order, unless this has closed by then."""

        def relay(*args: object) -> None:
            if not self._closed:
                with contextlib.suppress(RuntimeError):  # Qt's side deleted at interpreter exit
                    self._call.emit(slot, args)

        return relay

    def close(self, *_: object, wait: bool = False) -> None:
        """Cancel every job and forget every callback; with ``wait``, block until the running
        jobs have returned. Idempotent (also the target of the widget's ``destroyed``)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(RuntimeError, TypeError):  # deleted at interpreter exit
                self._call.disconnect(self._deliver_call)
            while self._waiting:  # never started: nothing to wait for
                task, _launch = self._waiting.popleft()
                self._tasks.discard(task)
                task.cancel()
                task._ended.set()
            for task in self._tasks:
                task.cancel()
        if wait:
            for task in list(self._tasks):
                task.wait()

    # -- on the Qt thread ---------------------------------------------------------------------

    def _deliver_call(self, slot: Callable[..., object], args: tuple[object, ...]) -> None:
        if not self._closed:
            slot(*args)

    def _deliver(self, task: Task, outcome: _Outcome[Any], callbacks: _Callbacks[Any]) -> None:
        self._tasks.discard(task)
        if self._closed:
            if outcome.error is None and callbacks.discard is not None:
                callbacks.discard(outcome.value)
            return
        if self._serial and self._waiting:
            _, launch = self._waiting.popleft()
            launch()
        if outcome.error is None:
            if callbacks.done is not None:
                callbacks.done(outcome.value)
        elif callbacks.failed is not None:
            callbacks.failed(outcome.error)
        else:
            log.warning("a background job failed: %s", describe(outcome.error))
        if callbacks.finished is not None:
            callbacks.finished()


def describe(exc: Exception, secrets: Iterable[str] = ()) -> str:
    """The message a widget shows for a failed job, without any of ``secrets``.

    A :class:`LablinkError` already speaks to the user; anything else is a bug of ours, so it is
    logged with its traceback (scrubbed too) and named as unexpected.
    """
    secrets = tuple(secrets)
    if isinstance(exc, LablinkError):
        return scrub(str(exc), secrets)
    message = scrub(f"unexpected {type(exc).__name__}: {exc}", secrets)
    where = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s\n%s", message, where)
    return message
