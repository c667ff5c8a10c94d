"""Tracker calls that create something, made safe against lost answers.

The tracker takes no idempotency key, and a POST whose answer is lost may or may not have
created its object. So before creating, the client notes which objects of that kind and name
already exist; after a lost answer it looks for one that was not there before and takes it,
and only sends the POST again when there is none. A retry never makes a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from napari_lablink.client.errors import LostAnswerError
from napari_lablink.client.tracker.session import TrackerSession

__all__ = ["ATTEMPTS", "create_once", "listed"]

log = logging.getLogger(__name__)

#: How often a creation whose answer was lost is looked for and sent again.
ATTEMPTS = 4


def listed(session: TrackerSession, route: str, **params: Any) -> list[dict[str, Any]]:
    """Every object of a listing route (``paging=no``), as dicts."""
    body = session.json("GET", route, params={**params, "paging": "no"})
    return [item for item in session.as_list(body, route) if isinstance(item, dict)]


def create_once(
    session: TrackerSession,
    route: str,
    *,
    obj: str,
    existing: Callable[[], list[dict[str, Any]]],
    matches: Callable[[dict[str, Any]], bool],
    **kwargs: Any,
) -> Any:
    """``POST route`` once: ``existing()`` lists the candidates (objects that could be the new
    one), ``matches`` says which one is ours after a lost answer."""
    before = {item.get("id") for item in existing()}
    lost: LostAnswerError | None = None
    for _ in range(ATTEMPTS):
        try:
            return session.json("POST", route, obj=obj, idempotent=False, **kwargs)
        except LostAnswerError as exc:
            lost = exc
            log.info("answer to POST %s lost; looking whether it took effect", route)
        for item in existing():
            if item.get("id") not in before and matches(item):
                return item
    assert lost is not None
    raise lost
