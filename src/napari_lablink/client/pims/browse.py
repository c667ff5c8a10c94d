"""Browsing PIMS: it has no listing route, so a search names one image file by its path."""

from __future__ import annotations

from dataclasses import replace

from napari_lablink.client.browse import Entry
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.models import DIMS
from napari_lablink.client.pims.read import parse_info, pixel_size, shape_and_names
from napari_lablink.client.pims.session import PimsSession

__all__ = ["browse"]


def browse(
    session: PimsSession, query: str, parent: str | None, offset: int, limit: int
) -> list[Entry]:
    """The image file at path ``query``: one entry, read from its ``info``, or none for an empty
    path or a later page."""
    path = query.strip().strip("/")
    if parent is not None:
        raise ConfigurationError(
            "PIMS lists no folders", server=session.label, obj=parent, hint="Type a file's path"
        )
    if not path or offset > 0 or limit < 1:
        return []
    image, channel_items, _ = parse_info(session, session.get_json(path, "info"), path)
    shape, _, names = shape_and_names(image, channel_items)
    return [
        Entry(
            uri=str(replace(session.uri, kind="file", object_id=path, options=())),
            name=path.rsplit("/", 1)[-1],
            kind="image",
            shape=shape,
            dims=DIMS,
            dtype=str(image.get("pixel_type") or "") or None,
            pixel_size=pixel_size(image),
            channels=tuple(names),
        )
    ]
