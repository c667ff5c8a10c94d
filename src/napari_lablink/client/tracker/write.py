"""Writing to a tracker: channels, MIBItiffs, image sets, and copies of runs and their metadata.

Each function is one operation of the reference client, with its argument names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from napari_lablink.client.errors import ChannelDataError, ConfigurationError, ProtocolError
from napari_lablink.client.tracker import records
from napari_lablink.client.tracker.channels import channel_file
from napari_lablink.client.tracker.models import TrackerImage, TrackerRun, related_id
from napari_lablink.client.tracker.reconcile import create_once, listed
from napari_lablink.client.tracker.session import TrackerSession

__all__ = [
    "FileSource",
    "copy_run",
    "copy_run_image_metadata",
    "create_imageset",
    "upload_channel",
    "upload_mibitiff",
]

#: Image fields copy_run_image_metadata carries over (the acquisition's own description).
_IMAGE_FIELDS = (
    "description",
    "fov_size",
    "frame",
    "dwell_time",
    "depths",
    "mass_gain",
    "mass_offset",
    "time_bin",
    "x_coord",
    "y_coord",
)
_IMAGE_RELATED = ("project", "tissue", "section", "aperture")

FileSource = str | os.PathLike[str] | IO[bytes] | bytes


def upload_channel(
    session: TrackerSession,
    image_id: int | str,
    image_file: FileSource | np.ndarray,
    filename: str | None = None,
) -> dict[str, Any]:
    """Add a channel to an image from a PNG/TIFF file (path or open file) or a 2-D array.

    ``filename`` names the channel (``"CD45.png"``, ``"mask.tiff"``); for paths it defaults
    to the file's name. For arrays it may omit the extension: integer data is then sent as a
    16-bit PNG, other data as a float32 TIFF.
    """
    obj = f"image {image_id}"
    if isinstance(image_file, np.ndarray) or hasattr(image_file, "__array__"):
        if not filename:
            raise ConfigurationError(
                "A channel uploaded from an array needs a name",
                server=session.label,
                obj=obj,
                hint="Pass filename='<channel>' (optionally ending in .png or .tiff)",
            )
        plane = np.asarray(image_file)
        if plane.size == 0:
            raise ChannelDataError(
                f"The channel has no pixels (shape {plane.shape})",
                server=session.label,
                obj=obj,
                hint="Nothing was uploaded; a channel is one 2-D plane with data",
            )
        name, payload, content_type = channel_file(plane, filename)
    else:
        name, payload = _file_payload(image_file, filename, "upload_channel")
        content_type = "image/png" if name.lower().endswith(".png") else "image/tiff"
    return session.json_object(
        "POST",
        f"images/{records.checked_id(session, image_id, obj)}/upload_channel/",
        obj=f"{obj}, channel {name!r}",
        files={"attachment": (name, payload, content_type)},
    )


def upload_mibitiff(
    session: TrackerSession, tiff_file: FileSource, run_id: int | None = None
) -> dict[str, Any]:
    """Upload a MIBItiff to a run: sign a storage URL, PUT the file there without the token,
    then register it so the tracker processes it into the image of its folder."""
    if run_id is None:
        raise ConfigurationError(
            "Uploading a MIBItiff needs the id of its run",
            server=session.label,
            hint="Pass run_id (see search_runs or run)",
        )
    name, payload = _file_payload(tiff_file, "image.tiff", "upload_mibitiff")
    obj = f"run {run_id}, file {name}"
    signed = session.json(
        "GET", "upload_mibitiff/sign_tiff_url/", params={"run_id": run_id}, obj=obj
    )
    if not isinstance(signed, dict) or not signed.get("url") or not signed.get("location"):
        raise session.transport.protocol_error("The upload signing answer lacks url or location")
    session.transfer(
        "PUT", signed["url"], obj=obj, content=payload, headers={"Content-Type": "image/tiff"}
    )
    return session.json_object(
        "POST",
        "upload_mibitiff/",
        json={"location": signed["location"], "run_id": run_id},
        obj=obj,
    )


def create_imageset(
    session: TrackerSession,
    image_ids: Sequence[int],
    imageset_name: str,
    project_id: int | None,
    imageset_description: str | None = None,
) -> dict[str, Any]:
    """A new image set of these images in a project; made once, whatever answers get lost."""
    images = [int(i) for i in image_ids]
    created = create_once(
        session,
        "imagesets/",
        obj=f"image set {imageset_name!r}",
        existing=lambda: [
            s for s in listed(session, "imagesets/") if s.get("name") == imageset_name
        ],
        matches=lambda s: sorted(s.get("images") or []) == sorted(images),
        json={
            "images": images,
            "name": imageset_name,
            "project": project_id,
            "description": imageset_description,
        },
    )
    if not isinstance(created, dict):
        raise session.transport.protocol_error("The tracker answered imagesets/ with no object")
    return created


def copy_run(
    session: TrackerSession, old_label: str, new_label: str, **kwargs: Any
) -> tuple[TrackerRun, TrackerRun]:
    """A new run ``new_label`` from the run ``old_label`` and its XML (the tracker creates
    one empty image per FOV of it). ``kwargs`` override fields of the new run, e.g.
    ``fov_size`` or ``project``. Returns (old run, new run)."""
    old = records.run(session, old_label)
    if not old.path or not old.xml:
        raise ProtocolError(
            "The run object names no path or XML file to copy",
            server=session.label,
            obj=f"run {old_label!r}",
        )
    xml = session.download_file(f"{old.path}/{old.xml}").getvalue()
    extra = old.model_extra or {}
    fields: dict[str, Any] = {
        "instrument": related_id(old.instrument),
        "slides": ",".join(
            str(related_id(s)) for s in extra.get("slide_ids") or [] if related_id(s)
        ),
        "label": new_label,
        "fov_size": old.fov_size,
        "aperture": related_id(old.aperture),
        "project": related_id(old.project),
        "description": extra.get("description"),
        "operator": extra.get("operator"),
        "user_run_date": f"{old.run_date}T00:00:00" if old.run_date else None,
    }
    fields.update(kwargs)
    data = {k: str(v) for k, v in fields.items() if v is not None and v != ""}
    filename = str(extra.get("filename") or old.xml)
    new = create_once(
        session,
        "runs/",
        obj=f"run {new_label!r}",
        existing=lambda: listed(session, "runs/", label=new_label),
        matches=lambda run: run.get("label") == new_label,
        data=data,
        files={"xml": (filename, xml, "application/xml")},
    )
    return old, TrackerRun.model_validate(new)


def copy_run_image_metadata(
    session: TrackerSession, old_run_label: str, new_run_label: str, **kwargs: Any
) -> dict[int, TrackerImage]:
    """Copy each image's metadata (and SED image) to the image of the same folder in the
    run ``new_run_label``; ``kwargs`` override fields. Pixel data is not copied: the new
    images stay empty until their MIBItiffs are uploaded. Returns {old id: updated image}."""
    old_images = records.run_images(session, old_run_label)
    targets = {i.folder: i for i in records.run_images(session, new_run_label)}
    updated: dict[int, TrackerImage] = {}
    for old in old_images:
        new = targets.get(old.folder)
        if new is None:
            continue
        fields: dict[str, Any] = {name: getattr(old, name) for name in _IMAGE_FIELDS}
        fields.update({name: related_id(getattr(old, name)) for name in _IMAGE_RELATED})
        fields.update(kwargs)
        fields = {k: v for k, v in fields.items() if v is not None}
        obj = f"image {new.id}"
        if old.sed and old.storage_folder:
            sed = session.download_file(f"{old.storage_folder}/{old.sed}").getvalue()
            body = session.json(
                "PUT",
                f"images/{new.id}/",
                data={k: str(v) for k, v in fields.items()},
                files={"attachment": (old.sed, sed, "application/octet-stream")},
                obj=obj,
            )
        else:
            body = session.json("PUT", f"images/{new.id}/", json=fields, obj=obj)
        updated[old.id] = TrackerImage.model_validate(body)
    return updated


def _file_payload(source: FileSource, filename: str | None, operation: str) -> tuple[str, bytes]:
    """(file name, bytes) of a path, an open binary file or bytes."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as handle:
                payload = handle.read()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read {path} for {operation}: {exc.strerror}",
                hint="Check the path and its permissions",
            ) from None
        if not payload:
            raise ConfigurationError(
                f"{operation} was given an empty file ({path})",
                hint="Nothing was uploaded; pick the file with the data",
            )
        return filename or os.path.basename(path), payload
    if isinstance(source, bytes | bytearray | memoryview):
        payload = bytes(source)
    elif hasattr(source, "read"):
        payload = source.read()
        if isinstance(payload, str):
            raise ConfigurationError(
                f"{operation} needs a file opened in binary mode ('rb'), not text mode"
            )
    else:
        raise ConfigurationError(
            f"{operation} takes a path, an open binary file, bytes or an array, "
            f"not {type(source).__name__}"
        )
    name = filename or os.path.basename(str(getattr(source, "name", "") or ""))
    if not payload:
        raise ConfigurationError(
            f"{operation} was given an empty file{f' ({name})' if name else ''}",
            hint="Nothing was uploaded; pick the file with the data",
        )
    if not name:
        raise ConfigurationError(
            f"{operation} cannot tell the file's name", hint="Pass filename='<name>.png'"
        )
    return name, payload
