"""Browsing a MIBItracker: runs, then the FOVs (images) of a run, then an image's channels.

The tracker filters runs by exact name or label only, so a search text finds the runs whose label
or name is exactly that text; an empty search pages through all runs. FOVs and channels are
filtered here by substring, as a run holds tens of FOVs at most.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from napari_lablink.client.browse import Entry
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.tracker_models import TrackerImage, TrackerRun

if TYPE_CHECKING:
    from napari_lablink.client.tracker import TrackerServer

__all__ = ["browse_tracker"]

_DIMS = ("c", "y", "x")


def browse_tracker(
    server: TrackerServer, query: str, parent: str | None, offset: int, limit: int
) -> list[Entry]:
    query = query.strip()
    if parent is None:
        return [_run_entry(server, run) for run in _runs(server, query, offset, limit)]
    uri = server.resolve(parent)
    if uri.kind == "runs" and uri.fov is None:
        images = server.run_images(str(uri.object_id))
        found = [i for i in images if _matches(query, i.number, i.description, str(i.id))]
        return [_image_entry(server, image) for image in found[offset : offset + limit]]
    if uri.kind == "runs":
        image = server.image(server.image_id(str(uri.object_id), str(uri.fov)))
    elif uri.kind == "images":
        image = server.image(str(uri.object_id))
    else:
        raise ConfigurationError(
            f"{uri.without_options()} is not a run or an image", server=server.label
        )
    names = [n for n in image.pngs if _matches(query, n)]
    return [_channel_entry(server, image, name) for name in names[offset : offset + limit]]


def _runs(server: TrackerServer, query: str, offset: int, limit: int) -> list[TrackerRun]:
    if not query:
        page = server._json(
            "GET", "runs/", params={"limit": str(limit), "offset": str(offset)}, obj="runs"
        )
        items = page.get("results") if isinstance(page, dict) else page
        return [TrackerRun.model_validate(run) for run in items or []][:limit]
    by_id: dict[int, TrackerRun] = {}
    for run in [*server.search_runs(run_label=query), *server.search_runs(run_name=query)]:
        by_id.setdefault(run.id, run)
    return list(by_id.values())[offset : offset + limit]


def _matches(query: str, *texts: str | None) -> bool:
    return not query or any(query.lower() in t.lower() for t in texts if t)


def _run_entry(server: TrackerServer, run: TrackerRun) -> Entry:
    label = run.label or run.name or str(run.id)
    images = run.imageset.images if run.imageset else []
    name = f"{run.label} ({run.name})" if run.label and run.name else label
    return Entry(
        uri=str(replace(server.uri, kind="runs", object_id=label, fov=None, options=())),
        name=name,
        kind="run",
        has_children=bool(images) or run.imageset is None,
    )


def _image_uri(server: TrackerServer, image: TrackerImage) -> str:
    return str(replace(server.uri, kind="images", object_id=str(image.id), fov=None, options=()))


def _pixel_size(image: TrackerImage) -> dict[str, float]:
    fov = image.fov_size
    if fov is None and image.run is not None:
        fov = _float(image.run.model_extra.get("fov_size"))
    if not fov or not image.frame:
        return {}
    return {"y": fov / image.frame, "x": fov / image.frame}


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _image_entry(server: TrackerServer, image: TrackerImage) -> Entry:
    fov = image.number or f"image {image.id}"
    frame = image.frame
    return Entry(
        uri=_image_uri(server, image),
        name=f"{fov} ({image.description})" if image.description else fov,
        kind="fov",
        shape=(len(image.pngs), frame, frame) if frame and image.pngs else None,
        dims=_DIMS if frame and image.pngs else None,
        pixel_size=_pixel_size(image),
        channels=tuple(image.pngs),
        has_children=bool(image.pngs),
    )


def _channel_entry(server: TrackerServer, image: TrackerImage, name: str) -> Entry:
    """A channel of an image. Its URI is the image's: the tracker's URIs name images, and the
    reader opens every channel of one as layers, this one among them."""
    frame = image.frame
    return Entry(
        uri=_image_uri(server, image),
        name=name,
        kind="image",
        shape=(frame, frame) if frame else None,
        dims=("y", "x") if frame else None,
        pixel_size=_pixel_size(image),
        channels=(name,),
    )
