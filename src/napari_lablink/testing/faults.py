"""Fault injection shared by the stand-in servers.

Reliability code in the client (retries, backoff, reconnects) can only be tested against a
server that misbehaves on purpose, and deterministically so: a seeded random rate for soak-like
tests and an explicit "fail the next N requests" queue for exact ones.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

#: "503": answer Service Unavailable; "drop": close the connection without answering;
#: "slow": wait ``slow_seconds`` before answering normally; "lost": act on the request, then
#: close the connection without answering (the client cannot tell whether it took effect);
#: "late": close the connection without answering, then act ``slow_seconds`` later (a server
#: still busy with a request whose client has given up on it).
FAULT_KINDS = frozenset({"503", "drop", "slow", "lost", "late"})


class InjectedFault(NamedTuple):
    """One fault that was applied, for tests to assert on."""

    kind: str
    method: str
    path: str


@dataclass
class _Planned:
    kind: str
    methods: frozenset[str] | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path


def _kinds(kinds: Iterable[str]) -> frozenset[str]:
    result = frozenset(kinds)
    unknown = result - FAULT_KINDS
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {sorted(FAULT_KINDS)}")
    return result


def parse_spec(spec: str) -> dict[str, float]:
    """``"503=0.1,drop=0.1,slow=0.1,lost=0.1"`` as {kind: probability}; the sum is at most 1."""
    rates: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        try:
            rate = float(value) if sep else float("nan")
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {part.strip()!r}: write KIND=PROBABILITY, e.g. 503=0.1")
        (kind,) = _kinds([kind])
        rates[kind] = rates.get(kind, 0.0) + rate
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault probabilities add up to more than 1: {spec}")
    return rates


class Faults:
    """Decides, per request, whether and how a server misbehaves.

    Random faults hit requests whose method is in ``methods`` (None = all) with probability
    ``rate``, choosing uniformly among ``kinds``; ``seed`` makes the sequence reproducible.
    Planned faults (``fail_next``) come first and are consumed in order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate = 0.0
        self._kinds: frozenset[str] = frozenset({"503"})
        self._methods: frozenset[str] | None = None
        self._seed: int | None = None
        self._random = random.Random()
        self._rates: dict[str, float] = {}
        self._planned: list[_Planned] = []
        self.slow_seconds = 0.5
        #: Seconds sent as ``Retry-After`` with injected 503s (None: no header).
        self.retry_after: float | None = None
        self.injected: list[InjectedFault] = []

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, not {value}")
        self._rate = float(value)

    @property
    def kinds(self) -> frozenset[str]:
        return self._kinds

    @kinds.setter
    def kinds(self, value: Iterable[str]) -> None:
        self._kinds = _kinds(value)

    @property
    def methods(self) -> frozenset[str] | None:
        return self._methods

    @methods.setter
    def methods(self, value: Iterable[str] | None) -> None:
        self._methods = None if value is None else frozenset(m.upper() for m in value)

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        with self._lock:
            self._seed = value
            self._random = random.Random(value)

    @property
    def rates(self) -> dict[str, float]:
        """Per-kind probabilities (they replace ``rate``/``kinds`` while set)."""
        with self._lock:
            return dict(self._rates)

    @rates.setter
    def rates(self, value: dict[str, float] | str) -> None:
        rates = parse_spec(value) if isinstance(value, str) else dict(value)
        _kinds(rates)
        if any(not 0.0 <= r <= 1.0 for r in rates.values()) or sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault probabilities must be within 0..1, adding up to 1: {rates}")
        with self._lock:
            self._rates = rates

    def fail_next(
        self,
        n: int = 1,
        kind: str = "503",
        *,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Make the next ``n`` matching requests fail with ``kind``."""
        (kind,) = _kinds([kind])
        wanted = None if methods is None else frozenset(m.upper() for m in methods)
        with self._lock:
            self._planned.extend(_Planned(kind, wanted, path_contains) for _ in range(n))

    @property
    def pending(self) -> int:
        """Planned faults not yet consumed."""
        with self._lock:
            return len(self._planned)

    def clear(self) -> None:
        """Back to a well-behaved server (keeps the ``injected`` log)."""
        with self._lock:
            self._planned.clear()
            self._rate = 0.0
            self._rates = {}
            self._kinds = frozenset({"503"})
            self._methods = None
            self.retry_after = None

    def decide(self, method: str, path: str) -> str | None:
        """The fault kind to apply to this request, or None; records what it chose."""
        method = method.upper()
        with self._lock:
            kind = None
            for index, planned in enumerate(self._planned):
                if planned.matches(method, path):
                    kind = planned.kind
                    del self._planned[index]
                    break
            wanted = self._methods is None or method in self._methods
            if kind is None and wanted and self._rates:
                draw = self._random.random()
                for candidate in sorted(self._rates):
                    draw -= self._rates[candidate]
                    if draw < 0:
                        kind = candidate
                        break
            elif (
                kind is None and self._rate > 0.0 and wanted and self._random.random() < self._rate
            ):
                kind = self._random.choice(sorted(self._kinds))
            if kind is not None:
                self.injected.append(InjectedFault(kind, method, path))
            return kind
