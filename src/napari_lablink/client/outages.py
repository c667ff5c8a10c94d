"""Servers that stop answering while their images are open: one report, then no more waiting.

A layer of a remote image reads chunks whenever napari slices it, at every step of a slider.
Once its server is gone, each of those reads would wait for the connection to fail and then
raise into napari: a frozen window and a traceback per step. So the chunk reads of one server
share a :class:`Source`. The first read that fails for a reason of the connection (refused,
timed out, a host name that does not resolve, the server failing with 5xx after retries) marks
the source unavailable and reports the outage once to the listeners (napari's glue shows one
notification); until a cool-down has passed, further reads answer an empty chunk at once.
Then one read tries the network again: if it works, the source is available again and the
listeners hear that too (napari redraws the layers); if not, another cool-down starts, without
a second report. Opening an image of the server again makes it available at once.

Other failures (a missing object, a broken answer) are no outage: the server answered, and
the read raises as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari_lablink.client.errors import (
    LablinkError,
    ServerFailedError,
    ServerUnavailableError,
    cut,
)

__all__ = ["COOL_DOWN_SECONDS", "Outage", "Source", "is_outage", "listen", "source"]

log = logging.getLogger(__name__)

#: Seconds an unavailable source answers empty chunks before a read tries the network again.
COOL_DOWN_SECONDS = 10.0


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached or cannot serve, rather than that
    it answered no to this one read."""
    if isinstance(exc, ServerUnavailableError | ServerFailedError):
        return True
    if isinstance(exc, LablinkError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError)


@dataclass(frozen=True)
class Outage:
    """One outage of one server, as the listeners hear of it: when it starts and when it ends
    (``over``). ``image`` names the image whose read found it; ``cause`` is that read's error."""

    server: str
    image: str
    cause: BaseException | None = None
    over: bool = False

    @property
    def message(self) -> str:
        """What the user reads: what happened and what to do first, then where, no traceback."""
        if self.over:
            return f"The server answers again; its images are read as before [server {self.server}]"
        why = f": {cut(_reason(self.cause), 160)}" if self.cause is not None else ""
        return (
            "Lost the connection to the server; its images show empty planes until it answers "
            f"again. Check that the server is running: reading is tried again every "
            f"{COOL_DOWN_SECONDS:g} s, and at once when the image is opened again "
            f"[server {self.server}, image {self.image}{why}]"
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LablinkError):
        return exc.message
    return str(exc) or type(exc).__name__


Listener = Callable[[Outage], object]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


def listen(listener: Listener) -> Callable[[], None]:
    """Hear every outage as it starts and ends, in whichever thread read the chunk; returns
    what stops listening. Without listeners an outage is logged as a warning."""
    with _listeners_lock:
        _listeners.append(listener)

    def stop() -> None:
        with _listeners_lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return stop


def _tell(outage: Outage) -> None:
    with _listeners_lock:
        listeners = list(_listeners)
    if not listeners:
        (log.info if outage.over else log.warning)("%s", outage.message)
    for listener in listeners:
        try:
            listener(outage)
        except Exception:  # a listener's bug must not turn into a failed chunk read
            log.exception("an outage listener failed")


class Source:
    """Whether the chunk reads of one server may go to the network now.

    A reader asks :meth:`admit` before a read and tells :meth:`failed` or :meth:`succeeded`
    after it. ``attempts`` counts the reads admitted, ``skipped`` those answered empty, so a
    caller can see how often a dead server was actually asked. Copies in other processes (a
    pickled dask graph) are that process's source of the same name.
    """

    def __init__(
        self,
        label: str,
        *,
        cool_down: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at: float | None = None  # None: available
        self._probing = False
        self.attempts = 0
        self.skipped = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (source, (self.label,))

    def __repr__(self) -> str:
        state = "available" if self.available else "unavailable"
        return f"<Source {self.label} ({state})>"

    @property
    def available(self) -> bool:
        return self._retry_at is None

    def admit(self) -> bool:
        """Whether a read may go to the network: always while available; when not, one read
        once the cool-down has passed (the others keep answering empty until it is back)."""
        with self._lock:
            if self._retry_at is not None and (self._probing or self._clock() < self._retry_at):
                self.skipped += 1
                return False
            if self._retry_at is not None:
                self._probing = True
            self.attempts += 1
            return True

    def succeeded(self) -> None:
        """An admitted read got its answer: the server is there."""
        with self._lock:
            was_down = self._retry_at is not None
            self._retry_at, self._probing = None, False
        if was_down:
            _tell(Outage(self.label, "", over=True))

    def failed(self, exc: BaseException, image: str) -> bool:
        """An admitted read of ``image`` raised ``exc``; True when it is an outage (the reader
        answers an empty chunk), False when the caller should raise it."""
        if not is_outage(exc):
            if isinstance(exc, Exception):
                self.succeeded()  # the server answered, if only with an error
            else:
                with self._lock:
                    self._probing = False  # interrupted: let the next read try
            return False
        cool_down = COOL_DOWN_SECONDS if self.cool_down is None else self.cool_down
        with self._lock:
            first = self._retry_at is None
            self._retry_at = self._clock() + cool_down
            self._probing = False
        if first:
            _tell(Outage(self.label, image, exc))
        return True

    def reset(self) -> None:
        """The server answered an open: reads may go to the network again at once."""
        self.succeeded()


_sources: dict[str, Source] = {}
_sources_lock = threading.Lock()


def source(label: str) -> Source:
    """The source of the server ``label`` (as its connection names it) in this process."""
    with _sources_lock:
        found = _sources.get(label)
        if found is None:
            found = _sources[label] = Source(label)
        return found
