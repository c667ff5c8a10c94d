"""Tracker calls that create something, made safe against lost answers.

The tracker takes no idempotency key, and a POST whose answer is lost may or may not have
created its object, or may still be creating it. So before creating, the client notes which
objects of that kind and name already exist; after a lost answer it looks for one that was not
there before (for a few seconds, see :mod:`~napari_lablink.client.lost_answers`) and takes it,
and only sends the POST again when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari_lablink.client import lost_answers
from napari_lablink.client.tracker.session import TrackerSession

__all__ = ["create_once", "listed"]


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
    one), ``matches`` says which one is ours after a lost answer. A copy that a late attempt
    makes is only reported: nothing marks it as ours for sure, so it is not deleted."""
    before = {item.get("id") for item in existing()}
    return lost_answers.create_once(
        lambda: session.json("POST", route, obj=obj, idempotent=False, **kwargs),
        lambda: [i for i in existing() if i.get("id") not in before and matches(i)],
        f"POST {route}",
        identity=lambda item: item.get("id") if isinstance(item, dict) else id(item),
    )
