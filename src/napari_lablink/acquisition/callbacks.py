"""A minimal callback list, so the core needs no signal library (and no Qt)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")
log = logging.getLogger(__name__)


class Callbacks(Generic[P]):
    """Functions called in connection order; one that raises is logged, not propagated.

    A failing listener (say, a widget being torn down) must never end an acquisition.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._fns: tuple[Callable[P, object], ...] = ()
        self._lock = threading.Lock()

    def connect(self, fn: Callable[P, object]) -> Callable[P, object]:
        with self._lock:
            self._fns = (*self._fns, fn)
        return fn

    def disconnect(self, fn: Callable[P, object]) -> None:
        with self._lock:
            self._fns = tuple(f for f in self._fns if f is not fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for fn in self._fns:
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("a %s callback failed", self.name)

    def __len__(self) -> int:
        return len(self._fns)
