"""Looking up the tracker's runs, images and conjugates, as the reference client does."""

from __future__ import annotations

from napari_lablink.client.errors import AmbiguousImageError, NotFoundError, cut
from napari_lablink.client.tracker.models import Conjugate, TrackerImage, TrackerRun
from napari_lablink.client.tracker.session import TrackerSession

__all__ = [
    "checked_id",
    "image",
    "image_conjugates",
    "image_id",
    "run",
    "run_images",
    "search_runs",
]


def checked_id(session: TrackerSession, value: int | str, obj: str) -> str:
    """``value`` as the tracker's image id, or a NotFoundError saying what an id looks like."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise NotFoundError(
            f"{cut(text, 40)!r} is not a tracker image id (a whole number, digits 0-9)",
            server=session.label,
            obj=obj,
            hint="Use mibi://HOST/images/ID or mibi://HOST/runs/RUN_LABEL/FOV",
        )
    return text


def search_runs(
    session: TrackerSession, run_name: str | None = None, run_label: str | None = None
) -> list[TrackerRun]:
    """Runs with this name and/or label (labels are unique, names are not)."""
    params: dict[str, str] = {"paging": "no"}
    if run_name is not None:
        params["name"] = run_name
    if run_label is not None:
        params["label"] = run_label
    found = session.json("GET", "runs/", params=params, obj="runs")
    return [TrackerRun.model_validate(r) for r in session.as_list(found, "runs/")]


def run(session: TrackerSession, run_label: str) -> TrackerRun:
    """The run with this label."""
    runs = search_runs(session, run_label=run_label)
    if not runs:
        raise NotFoundError("No run has this label", server=session.label, obj=f"run {run_label!r}")
    return runs[0]


def run_images(session: TrackerSession, run_label: str) -> list[TrackerImage]:
    """The images of the run with this label."""
    return _images(session, obj=f"run {run_label!r}", run__label=run_label)


def _images(session: TrackerSession, *, obj: str, **filters: str) -> list[TrackerImage]:
    found = session.json("GET", "images/", params={**filters, "paging": "no"}, obj=obj)
    return [TrackerImage.model_validate(i) for i in session.as_list(found, "images/")]


def image(session: TrackerSession, image_id: int | str) -> TrackerImage:
    """One image object."""
    obj = f"image {image_id}"
    route = f"images/{checked_id(session, image_id, obj)}/"
    return TrackerImage.model_validate(session.json("GET", route, obj=obj))


def image_id(session: TrackerSession, run_label: str, fov_id: str) -> int:
    """The id of the image of FOV ``fov_id`` (``FOV1``, ``Point4``) of a run.

    Looked up by run label, then by run name when the label finds nothing (what the reference
    client does); exactly one image must match.
    """
    obj = f"run {run_label!r}, FOV {fov_id!r}"
    found = _images(session, obj=obj, run__label=run_label, number=fov_id)
    if not found:
        found = _images(session, obj=obj, run__name=run_label, number=fov_id)
    if not found:
        raise NotFoundError(
            "No image matches this run label (or name) and FOV",
            server=session.label,
            obj=obj,
            hint="Check the run label and the FOV id (such as FOV1 or Point1)",
        )
    if len(found) > 1:
        ids = ", ".join(str(i.id) for i in found)
        raise AmbiguousImageError(
            f"{len(found)} images match (ids {ids})", server=session.label, obj=obj
        )
    return found[0].id


def image_conjugates(session: TrackerSession, image_id: int | str) -> list[Conjugate]:
    """The antibody conjugates of the image's panel (empty without section or panel)."""
    obj = f"image {image_id}"
    route = f"images/{checked_id(session, image_id, obj)}/conjugates/"
    found = session.json("GET", route, params={"paging": "no"}, obj=obj)
    return [Conjugate.model_validate(c) for c in session.as_list(found, "conjugates/")]
