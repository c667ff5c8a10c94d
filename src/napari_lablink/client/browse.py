"""What a server lists when browsing: one :class:`Entry` per openable object or folder.

Every server kind answers ``Server.browse(query, parent=..., offset=..., limit=...)`` with
entries of this one shape, so a browser (the napari dock widget, a script) needs no
per-protocol code: it shows ``name`` and the cheap facts, descends into ``has_children``
entries by passing their ``uri`` as ``parent``, and opens ``uri`` through the readers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Entry", "EntryKind", "split_tags"]

EntryKind = Literal["image", "run", "fov", "folder"]


class Entry(BaseModel):
    """One listed object. Facts the listing does not give cheaply stay ``None`` or empty;
    opening the URI gives them all."""

    model_config = ConfigDict(frozen=True)

    uri: str
    name: str
    kind: EntryKind
    shape: tuple[int, ...] | None = None
    #: Axis names of ``shape`` when the listing says them (mikro's c,t,z,y,x; tracker c,y,x).
    dims: tuple[str, ...] | None = None
    dtype: str | None = None
    #: Micrometres per pixel along z, y, x where known.
    pixel_size: dict[str, float] = Field(default_factory=dict)
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    has_children: bool = False


def split_tags(query: str) -> tuple[str, list[str]]:
    """Split a search text into a name part and tags written ``#tag`` or ``tag:tag``.

    mikro generation 1 filters by name and tags separately; one search box serves both.
    """
    words, tags = [], []
    for word in query.split():
        if word.startswith("#") and len(word) > 1:
            tags.append(word[1:])
        elif word.lower().startswith("tag:") and len(word) > 4:
            tags.append(word[4:])
        else:
            words.append(word)
    return " ".join(words), tags
