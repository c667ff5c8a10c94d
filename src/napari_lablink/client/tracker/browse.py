"""Browsing a MIBItracker: runs, then the FOVs (images) of a run, then an image's channels.

The tracker filters runs by exact name or label only, so a search text finds the runs whose label
or name is exactly that text; an empty search pages through all runs. FOVs and channels are
filtered here by substring, as a run holds tens of FOVs at most.
"""

from __future__ import annotations

from dataclasses import replace

from napari_lablink.client.browse import Entry
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.tracker import records
from napari_lablink.client.tracker.models import TrackerImage, TrackerRun
from napari_lablink.client.tracker.read import pixel_size
from napari_lablink.client.tracker.session import TrackerSession
from napari_lablink.client.uri import RemoteURI

__all__ = ["browse"]

_DIMS = ("c", "y", "x")


def browse(
    session: TrackerSession, query: str, parent: RemoteURI | None, offset: int, limit: int
) -> list[Entry]:
    """Runs, or with ``parent`` (a run's or an image's URI) its FOVs or channels."""
    query = query.strip()
    if parent is None:
        return [_run_entry(session, run) for run in _runs(session, query, offset, limit)]
    if parent.kind == "runs" and parent.fov is None:
        images = records.run_images(session, str(parent.object_id))
        found = [i for i in images if _matches(query, i.number, i.description, str(i.id))]
        return [_image_entry(session, image) for image in found[offset : offset + limit]]
    if parent.kind == "runs":
        image_id = records.image_id(session, str(parent.object_id), str(parent.fov))
        image = records.image(session, image_id)
    elif parent.kind == "images":
        image = records.image(session, str(parent.object_id))
    else:
        raise ConfigurationError(
            f"{parent.without_options()} is not a run or an image", server=session.label
        )
    names = [n for n in image.pngs if _matches(query, n)]
    return [_channel_entry(session, image, name) for name in names[offset : offset + limit]]


def _runs(session: TrackerSession, query: str, offset: int, limit: int) -> list[TrackerRun]:
    if not query:
        page = session.json(
            "GET", "runs/", params={"limit": str(limit), "offset": str(offset)}, obj="runs"
        )
        items = page.get("results") if isinstance(page, dict) else page
        return [TrackerRun.model_validate(run) for run in items or []][:limit]
    by_id: dict[int, TrackerRun] = {}
    found = [
        *records.search_runs(session, run_label=query),
        *records.search_runs(session, run_name=query),
    ]
    for run in found:
        by_id.setdefault(run.id, run)
    return list(by_id.values())[offset : offset + limit]


def _matches(query: str, *texts: str | None) -> bool:
    return not query or any(query.lower() in t.lower() for t in texts if t)


def _run_entry(session: TrackerSession, run: TrackerRun) -> Entry:
    label = run.label or run.name or str(run.id)
    images = run.imageset.images if run.imageset else []
    name = f"{run.label} ({run.name})" if run.label and run.name else label
    return Entry(
        uri=str(replace(session.uri, kind="runs", object_id=label, fov=None, options=())),
        name=name,
        kind="run",
        has_children=bool(images) or run.imageset is None,
    )


def _image_uri(session: TrackerSession, image: TrackerImage) -> str:
    return str(replace(session.uri, kind="images", object_id=str(image.id), fov=None, options=()))


def _image_entry(session: TrackerSession, image: TrackerImage) -> Entry:
    fov = image.number or f"image {image.id}"
    frame = image.frame
    return Entry(
        uri=_image_uri(session, image),
        name=f"{fov} ({image.description})" if image.description else fov,
        kind="fov",
        shape=(len(image.pngs), frame, frame) if frame and image.pngs else None,
        dims=_DIMS if frame and image.pngs else None,
        pixel_size=pixel_size(image),
        channels=tuple(image.pngs),
        has_children=bool(image.pngs),
    )


def _channel_entry(session: TrackerSession, image: TrackerImage, name: str) -> Entry:
    """A channel of an image: the image's URI with the ``channels`` option naming it, so that
    opening the entry opens this channel alone."""
    frame = image.frame
    uri = replace(session.uri, kind="images", object_id=str(image.id), fov=None)
    return Entry(
        uri=str(replace(uri, options=(("channels", name),))),
        name=name,
        kind="image",
        shape=(frame, frame) if frame else None,
        dims=("y", "x") if frame else None,
        pixel_size=pixel_size(image),
        channels=(name,),
    )
