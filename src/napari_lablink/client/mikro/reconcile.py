"""Registrations that survive lost answers, and roll-backs of uploads that failed half-way.

mikro takes no idempotency key, but it keeps the tags a client sends. Every upload carries a key
tag of its own (:func:`new_key`); when the answer to a registration is lost (the server may have
acted, or may still be acting), the client looks for an object with that key for a while
before it sends the registration again, and deletes any copy a late attempt made after all.
When an upload fails after registering something, the same key finds everything it
registered, answers lost included, and it is deleted again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from napari_lablink.client import lost_answers
from napari_lablink.client.errors import LablinkError, NotFoundError, ProtocolError
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
_PAGE = 100


def new_key() -> str:
    """A fresh upload key (a tag no other upload carries)."""
    return f"{KEY_PREFIX}{uuid.uuid4().hex}"


def user_tags(tags: Sequence[str | None] | None) -> tuple[str, ...]:
    """The tags a person gave, without upload keys (bookkeeping nobody needs to see)."""
    return tuple(t for t in tags or () if t and not t.startswith(KEY_PREFIX))


def create_once(
    create: Callable[[], str],
    find: Callable[[], list[str]],
    delete: Callable[[list[str]], list[str]],
    what: str,
) -> str:
    """``create()`` (a registration returning the new id), sent again only after ``find()``
    (a look-up by the upload key) showed no trace of the lost attempt. Every other object
    carrying this upload's key is a copy made by a late attempt, so ``delete`` removes it."""

    def discard(copies: list[str]) -> None:
        for left in delete(copies):
            log.warning("a copy of %s made by a lost attempt could not be deleted: %s", what, left)

    return lost_answers.create_once(create, find, what, identity=str, discard=discard)


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
