"""Creating an object exactly once on servers that take no idempotency key.

When the answer to a creating request is lost, the server may have acted, may not have, or may
still be acting: a client that gave up on a slow answer leaves the server working on it. So after
a lost answer the client looks for the object for a while (the settling schedule) before it sends
the request again, and when it did send it again, it looks once more afterwards so that a late
first attempt, landing after all, can be told apart and removed by the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from napari_lablink.client.errors import LostAnswerError

__all__ = ["ATTEMPTS", "SETTLE_SECONDS", "create_once"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a creation whose answer was lost is sent.
ATTEMPTS = 4
#: Pauses between look-ups after a lost answer: a server still busy with the first attempt gets
#: about four seconds to finish it before the request is sent again.
SETTLE_SECONDS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)


def create_once(
    create: Callable[[], T],
    find: Callable[[], list[T]],
    what: str,
    *,
    identity: Callable[[T], Hashable],
    discard: Callable[[list[T]], None] | None = None,
    settle: Sequence[float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``create()`` once, whatever happens to its answers.

    ``find()`` lists the objects an earlier attempt of this creation could have made, ``identity``
    tells them apart. After a resend, ``discard`` (when given) gets the ones that are not the
    object returned: the caller deletes them when it can tell for sure they are its own.
    """
    lost: LostAnswerError | None = None
    for _ in range(ATTEMPTS):
        try:
            made = create()
        except LostAnswerError as exc:
            lost = exc
            log.info("answer to %s lost; looking whether it was made", what)
            found = _look(find, SETTLE_SECONDS if settle is None else settle, sleep)
            if found:
                _discard_extra(found[0], found, identity, discard, what)
                return found[0]
            continue
        if lost is not None:  # an attempt whose answer was lost may still land
            _discard_extra(made, find(), identity, discard, what)
        return made
    assert lost is not None
    raise lost


def _look(
    find: Callable[[], list[T]], settle: Sequence[float], sleep: Callable[[float], None]
) -> list[T]:
    """What ``find()`` shows now, or after each pause of the settling schedule."""
    found = find()
    for pause in settle:
        if found:
            break
        sleep(pause)
        found = find()
    return found


def _discard_extra(
    kept: T,
    found: list[T],
    identity: Callable[[T], Hashable],
    discard: Callable[[list[T]], None] | None,
    what: str,
) -> None:
    extra = [f for f in found if identity(f) != identity(kept)]
    if not extra:
        return
    if discard is None:
        log.warning("%s: %d more made by attempts whose answers were lost", what, len(extra))
        return
    log.info("%s: removing %d copies made by attempts whose answers were lost", what, len(extra))
    discard(extra)
