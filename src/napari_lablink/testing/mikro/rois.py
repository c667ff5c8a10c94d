"""ROIs of the stand-in mikro server: records, both generations' resolvers, live events.

A ROI is one record tied to one image (generation 2) or representation (generation 1): a kind
and a vertex list kept as given, never checked against the image (the real servers store the
JSON as sent). Every change is published to the subscribers of its image, which is what the
``rois`` subscription streams.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from napari_lablink.testing.mikro.state import MikroError, MikroState

__all__ = ["Gen1RoiRoot", "Gen2RoiRoot", "RoiBook", "RoiRecord", "RootWithRois", "Subscriber"]

GEN1 = "gen1"
GEN2 = "gen2"
#: Generation 1 takes ELLIPSIS in but answers ELLIPSE (two enums on the real server).
_GEN1_OUT = {"ELLIPSIS": "ELLIPSE"}
#: Who the stand-in says created every ROI (it has one user: the token's).
CREATOR = "1"


@dataclass
class RoiRecord:
    id: str
    generation: str
    #: representation id (generation 1) or image id (generation 2)
    target: str
    #: the input enum name (RoiTypeInput or RoiKind)
    kind: str
    #: generation 1: dicts {x, y, z, t, c}; generation 2: [c, t, z, y, x] lists
    vectors: list[Any]
    label: str | None = None
    color: str | None = None
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class Subscriber:
    """One live subscription: the events of one image, in order, until closed."""

    def __init__(self, generation: str, target: str) -> None:
        self.generation = generation
        self.target = target
        self.events: queue.Queue[tuple[str, RoiRecord | str] | None] = queue.Queue()

    def close(self) -> None:
        self.events.put(None)


class RoiBook:
    """All ROIs of both generations behind one lock, plus who listens to which image."""

    def __init__(self, state: MikroState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._rois: dict[str, RoiRecord] = {}
        self._ids = itertools.count(9001)
        self._subscribers: list[Subscriber] = []

    # -- records ----------------------------------------------------------------------------

    def create(
        self, generation: str, target: str, kind: str, vectors: list[Any], **extra: Any
    ) -> RoiRecord:
        self._check_target(generation, target)
        with self._lock:
            id = str(next(self._ids))
            record = RoiRecord(id, generation, str(target), kind, vectors, **extra)
            self._rois[record.id] = record
        self._publish(record.generation, record.target, "create", record)
        return record

    def update(self, id: str, *, kind: str | None, vectors: list[Any] | None) -> RoiRecord:
        record = self.get(GEN2, id)
        with self._lock:
            if kind is not None:
                record.kind = kind
            if vectors:  # an empty list keeps the old vectors, as on the real server
                record.vectors = vectors
        self._publish(record.generation, record.target, "update", record)
        return record

    def pin(self, id: str, pin: bool) -> RoiRecord:
        record = self.get(GEN2, id)
        record.pinned = pin
        self._publish(record.generation, record.target, "update", record)
        return record

    def delete(self, generation: str, id: str) -> RoiRecord:
        record = self.get(generation, id)
        with self._lock:
            del self._rois[record.id]
        self._publish(record.generation, record.target, "delete", record.id)
        return record

    def get(self, generation: str, id: str) -> RoiRecord:
        with self._lock:
            record = self._rois.get(str(id))
        if record is None or record.generation != generation:
            raise MikroError(f"ROI with id {id!r} does not exist.")
        return record

    def all(self, generation: str) -> list[RoiRecord]:
        with self._lock:
            return [r for r in self._rois.values() if r.generation == generation]

    def _check_target(self, generation: str, target: str) -> None:
        if generation == GEN1:
            self._state.representation(target)
        else:
            self._state.image(target)

    # -- live events ------------------------------------------------------------------------

    def subscribe(self, generation: str, target: str) -> Subscriber:
        self._check_target(generation, target)
        subscriber = Subscriber(generation, str(target))
        with self._lock:
            self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
        subscriber.close()

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _publish(self, generation: str, target: str, event: str, payload: RoiRecord | str) -> None:
        with self._lock:
            listening = [
                s for s in self._subscribers if s.generation == generation and s.target == target
            ]
        for subscriber in listening:
            subscriber.events.put((event, payload))


def _page(items: list[Any], offset: int | None, limit: int | None) -> list[Any]:
    start = offset or 0
    return items[start : None if limit is None else start + limit]


class Gen1RoiRoot:
    """Generation-1 ROI resolvers (``createROI``, ``rois(representation: ...)``, ...)."""

    def __init__(self, book: RoiBook) -> None:
        self._book = book

    def createROI(
        self,
        info: Any,
        representation: str,
        vectors: list[dict[str, Any] | None],
        type: str,
        label: str | None = None,
        tags: list[str] | None = None,
        **ignored: Any,  # creator, meta, createdWhile: accepted and not kept
    ) -> dict[str, Any]:
        record = self._book.create(
            GEN1,
            representation,
            type,
            [dict(v or {}) for v in vectors],
            label=label,
            tags=list(tags or []),
        )
        return gen1_roi(record)

    def createROIS(
        self,
        info: Any,
        representation: str,
        vectorsList: list[list[dict[str, Any] | None]],
        type: str,
        labels: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        labels = labels or []
        return [
            self.createROI(
                info,
                representation,
                vectors,
                type,
                label=labels[n] if n < len(labels) else None,
                tags=tags,
            )
            for n, vectors in enumerate(vectorsList)
        ]

    def deleteROI(self, info: Any, id: str) -> dict[str, Any]:
        return {"id": self._book.delete(GEN1, id).id}

    def rois(
        self,
        info: Any,
        representation: str | None = None,
        type: list[str] | None = None,
        ids: list[str] | None = None,
        tags: list[str] | None = None,
        creator: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        found = [
            r
            for r in self._book.all(GEN1)
            if (representation is None or r.target == str(representation))
            and (not type or r.kind in type)
            and (not ids or r.id in {str(i) for i in ids})
            and (not tags or set(tags) <= set(r.tags))
            and (creator is None or creator == CREATOR)
        ]
        return [gen1_roi(r) for r in _page(found, offset, limit)]

    def roi(self, info: Any, id: str) -> dict[str, Any]:
        return gen1_roi(self._book.get(GEN1, id))

    def representation_rois(self, representation: str) -> list[dict[str, Any]]:
        return [gen1_roi(r) for r in self._book.all(GEN1) if r.target == representation]


class Gen2RoiRoot:
    """Generation-2 ROI resolvers (``createRoi``, ``updateRoi``, ``rois(filters: ...)``, ...)."""

    def __init__(self, book: RoiBook) -> None:
        self._book = book

    def createRoi(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        record = self._book.create(GEN2, input["image"], input["kind"], list(input["vectors"]))
        return gen2_roi(record)

    def updateRoi(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        kind, vectors = input.get("kind"), input.get("vectors")
        return gen2_roi(self._book.update(input["roi"], kind=kind, vectors=vectors))

    def deleteRoi(self, info: Any, input: dict[str, Any]) -> str:
        return self._book.delete(GEN2, input["id"]).id

    def pinRoi(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return gen2_roi(self._book.pin(input["id"], input["pin"]))

    def rois(
        self,
        info: Any,
        filters: dict[str, Any] | None = None,
        pagination: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        pagination = pagination or {}
        found = _filtered(self._book.all(GEN2), filters or {})
        page = _page(found, pagination.get("offset"), pagination.get("limit"))
        return [gen2_roi(r) for r in page]

    def roi(self, info: Any, id: str) -> dict[str, Any]:
        return gen2_roi(self._book.get(GEN2, id))

    def image_rois(self, image: str, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        mine = [r for r in self._book.all(GEN2) if r.target == image]
        return [gen2_roi(r) for r in _filtered(mine, filters or {})]


def _filtered(records: list[RoiRecord], filters: dict[str, Any]) -> list[RoiRecord]:
    images = set(filters.get("images") or [])
    if filters.get("image") is not None:
        images.add(str(filters["image"]))
    ids = {str(i) for i in filters.get("ids") or []}
    kind, pinned = filters.get("kind"), filters.get("pinned")
    return [
        r
        for r in records
        if (not images or r.target in images)
        and (not ids or r.id in ids)
        and (kind is None or r.kind == kind)
        and (pinned is None or r.pinned == pinned)
    ]


def gen1_roi(record: RoiRecord) -> dict[str, Any]:
    """A generation-1 ``ROI`` as the resolvers answer it."""
    return {
        "id": record.id,
        "type": _GEN1_OUT.get(record.kind, record.kind),
        "label": record.label,
        "color": record.color,
        "tags": record.tags,
        "vectors": record.vectors,
        "representation": lambda info: info.root_value.representation(info, record.target),
        "creator": {"id": CREATOR},
        "createdAt": record.created_at,
    }


def gen2_roi(record: RoiRecord) -> dict[str, Any]:
    """A generation-2 ``ROI`` as the resolvers answer it (``name`` is the kind)."""
    return {
        "id": record.id,
        "image": lambda info: info.root_value.image(info, record.target),
        "kind": record.kind,
        "vectors": record.vectors,
        "createdAt": record.created_at,
        "creator": {"sub": CREATOR},
        "pinned": record.pinned,
        "name": record.kind,
    }


class RootWithRois:
    """A generation's root resolvers plus its ROI resolvers, as one GraphQL root value."""

    def __init__(self, root: Any, rois: Gen1RoiRoot | Gen2RoiRoot) -> None:
        self._root = root
        self._rois = rois

    def __getattr__(self, name: str) -> Any:
        if hasattr(self._rois, name):
            return getattr(self._rois, name)
        return getattr(self._root, name)
