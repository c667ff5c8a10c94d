"""Registrations that survive lost answers, and roll-backs of uploads that failed half-way.

mikro takes no idempotency key, but it keeps the tags a client sends. Every upload carries a key
tag of its own (:func:`new_key`); when the answer to a registration is lost (the server may have
acted), the client looks for an object with that key before it sends the registration again,
so a retry never makes a duplicate. When an upload fails after registering something, the same
key finds everything it registered, answers lost included, and it is deleted again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from napari_lablink.client.errors import (
    LablinkError,
    LostAnswerError,
    NotFoundError,
    ProtocolError,
)
from napari_lablink.client.mikro import queries
from napari_lablink.client.mikro.session import MikroSession

__all__ = [
    "KEY_PREFIX",
    "create_once",
    "delete_images",
    "delete_representations",
    "find_images",
    "find_representations",
    "new_key",
    "user_tags",
]

log = logging.getLogger(__name__)

#: Upload keys are tags ``lablink-upload:<32 hex digits>``.
KEY_PREFIX = "lablink-upload:"
#: How often a registration whose answer was lost is looked for and sent again.
ATTEMPTS = 4
_PAGE = 100


def new_key() -> str:
    """A fresh upload key (a tag no other upload carries)."""
    return f"{KEY_PREFIX}{uuid.uuid4().hex}"


def user_tags(tags: Sequence[str | None] | None) -> tuple[str, ...]:
    """The tags a person gave, without upload keys (bookkeeping nobody needs to see)."""
    return tuple(t for t in tags or () if t and not t.startswith(KEY_PREFIX))


def create_once(create: Callable[[], str], find: Callable[[], str | None], what: str) -> str:
    """``create()`` (a registration returning the new id), sent again only after ``find()``
    (a look-up by the upload key) showed that the lost attempt did not take effect."""
    lost: LostAnswerError | None = None
    for _ in range(ATTEMPTS):
        try:
            return create()
        except LostAnswerError as exc:
            lost = exc
            log.info("answer to %s lost; looking whether it was registered", what)
        found = find()
        if found is not None:
            return found
    assert lost is not None
    raise lost


def find_images(session: MikroSession, name: str, key: str, obj: str) -> list[str]:
    """Ids of the generation-2 images called ``name`` that carry the upload ``key``."""
    found: list[str] = []
    offset = 0
    while True:
        page = session.graphql(
            queries.FIND_IMAGES,
            {
                "filters": {"name": {"exact": name}},
                "pagination": {"offset": offset, "limit": _PAGE},
            },
            obj=obj,
        )["images"]
        if not isinstance(page, list):
            raise ProtocolError("The image list is not a list", server=session.label, obj=obj)
        found += [str(i["id"]) for i in page if key in (i.get("tags") or ())]
        if len(page) < _PAGE:
            return found
        offset += _PAGE


def find_representations(session: MikroSession, key: str, obj: str) -> list[str]:
    """Ids of the generation-1 representations that carry the upload ``key``."""
    found = session.graphql(
        queries.LIST_REPRESENTATIONS, {"tags": [key], "limit": _PAGE, "offset": 0}, obj=obj
    )["representations"]
    if not isinstance(found, list):
        raise ProtocolError("The representation list is not a list", server=session.label, obj=obj)
    return [str(r["id"]) for r in found if r and key in (r.get("tags") or ())]


def delete_images(session: MikroSession, ids: Sequence[str], obj: str) -> list[str]:
    """Delete images (give scale levels before their full image); returns those that remain."""
    return _delete_each(
        ids,
        lambda id: session.graphql(queries.DELETE_IMAGE, {"input": {"id": id}}, obj=obj),
        "image",
    )


def delete_representations(session: MikroSession, ids: Sequence[str], obj: str) -> list[str]:
    """Delete representations; returns those that remain."""
    return _delete_each(
        ids,
        lambda id: session.graphql(queries.DELETE_REPRESENTATION, {"id": id}, obj=obj),
        "representation",
    )


def _delete_each(ids: Sequence[str], delete: Callable[[str], Any], kind: str) -> list[str]:
    """Deleting is idempotent (a second delete finds nothing), so it is retried like a read."""
    remaining = []
    for id in ids:
        try:
            delete(id)
        except NotFoundError:
            continue  # already gone
        except LablinkError as exc:
            log.warning("could not delete %s %s: %s", kind, id, exc)
            remaining.append(f"{kind} {id}")
    return remaining
