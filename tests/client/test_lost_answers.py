"""Creating once when answers get lost: the schedule of look-ups and what happens to copies.

The servers' own behaviour is tested against the stand-ins (tests/client/mikro/test_reconcile.py,
tests/client/tracker/test_hardening.py); these tests pin the order of calls, which no server
can make deterministic.
"""

from __future__ import annotations

import pytest

from napari_lablink.client import lost_answers
from napari_lablink.client.errors import LostAnswerError


class Server:
    """Objects made so far, and a clock the look-ups advance."""

    def __init__(self, lands_after: float | None) -> None:
        self.made: list[str] = []
        self.sent = 0
        self.now = 0.0
        self.lands_after = lands_after  # the first attempt lands this late (None: never)
        self.pending: float | None = None

    def create(self) -> str:
        self.sent += 1
        if self.sent == 1:
            self.pending = self.lands_after
            raise LostAnswerError("lost", server="test")
        self.made.append(f"id{self.sent}")
        return self.made[-1]

    def find(self) -> list[str]:
        if self.pending is not None and self.now >= self.pending:
            self.made.insert(0, "id1")
            self.pending = None
        return list(self.made)

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def create(server: Server, discarded: list[str] | None = None) -> str:
    return lost_answers.create_once(
        server.create,
        server.find,
        "test",
        identity=str,
        discard=None if discarded is None else discarded.extend,
        settle=(0.25, 0.5, 1.0),
        sleep=server.sleep,
    )


def test_an_attempt_landing_while_the_client_looks_is_taken_not_resent() -> None:
    server = Server(lands_after=0.6)
    assert create(server) == "id1"
    assert server.sent == 1
    assert server.now == pytest.approx(0.75)  # stopped looking as soon as it was there


def test_after_the_settling_time_the_request_is_sent_again() -> None:
    server = Server(lands_after=None)
    assert create(server) == "id2"
    assert server.sent == 2
    assert server.now == pytest.approx(1.75)


def test_copies_found_after_the_resend_are_discarded_but_never_the_kept_one() -> None:
    server = Server(lands_after=None)
    original_create = server.create

    def create_then_land() -> str:
        made = original_create()
        server.made.insert(0, "id1")  # the first attempt lands while the second is answered
        return made

    server.create = create_then_land  # type: ignore[method-assign]
    discarded: list[str] = []
    assert create(server, discarded) == "id2"
    assert discarded == ["id1"]


def test_every_answer_lost_ends_in_the_lost_answer_error() -> None:
    sent = []

    def never() -> str:
        sent.append(1)
        raise LostAnswerError("lost", server="test")

    with pytest.raises(LostAnswerError):
        lost_answers.create_once(never, list, "test", identity=str, settle=(), sleep=lambda s: None)
    assert len(sent) == lost_answers.ATTEMPTS
