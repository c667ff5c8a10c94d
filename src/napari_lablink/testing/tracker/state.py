"""What the stand-in MIBItracker knows: runs, images and their channels, panels, image sets and
the files in its storage, with the operations its routes perform on them.

Objects are serialised with the field names of ``docs/protocols/mibitracker.md``. Two things the
protocol leaves open are filled in here and marked as the stand-in's own:

- run objects also carry ``filename``, ``slide_ids``, ``aperture``, ``description`` and
  ``operator``, because the reference client's ``copy_run`` reads them;
- per-channel display settings (``color``, ``hex``, ``brightness``, ``blur``,
  ``intensity_lower``, ``intensity_higher``, the keys of the tracker's exported view settings)
  appear in an optional image field ``channel_settings`` ({channel name: settings}); images without
  settings have no such field.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_lablink.testing.tracker.files import (
    BadFile,
    Fov,
    Part,
    build_mibitiff,
    build_run_xml,
    decode_channel_file,
    encode_png16,
    parse_mibitiff,
    parse_run_xml,
)

__all__ = ["ApiError", "TrackerState"]

_RELATED = ("project", "tissue", "section", "aperture", "instrument")
_FLOAT_FIELDS = (
    "fov_size",
    "dwell_time",
    "mass_gain",
    "mass_offset",
    "time_bin",
    "x_coord",
    "y_coord",
)
_INT_FIELDS = ("frame", "depths")
_TEXT_FIELDS = ("description",)


class ApiError(Exception):
    """An answer other than success; ``payload`` is the JSON body the tracker sends."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def not_found() -> ApiError:
    return ApiError(404, {"detail": "Not found."})


def _invalid_pk(name: str, value: Any) -> ApiError:
    return ApiError(400, {name: [f'Invalid pk "{value}" - object does not exist.']})


@dataclass
class Channel:
    mass: int | None
    """None for channels uploaded by users (overlays, masks), which are not SIMS data."""
    data: np.ndarray


@dataclass
class Run:
    id: int
    name: str
    label: str
    path: str
    xml_filename: str
    fov_size: float | None
    instrument: dict[str, Any] | None
    project: dict[str, Any] | None
    run_date: str
    slide_ids: list[int] = field(default_factory=list)
    aperture: dict[str, Any] | None = None
    description: str = ""
    operator: str = ""
    image_ids: list[int] = field(default_factory=list)


@dataclass
class Image:
    id: int
    run_id: int
    number: str
    folder: str
    description: str = ""
    fov_size: float | None = None
    frame: int | None = None
    dwell_time: float | None = None
    depths: int | None = 1
    mass_gain: float | None = None
    mass_offset: float | None = None
    time_bin: float | None = None
    x_coord: float | None = None
    y_coord: float | None = None
    sed: str | None = None
    project: dict[str, Any] | None = None
    tissue: dict[str, Any] | None = None
    section: dict[str, Any] | None = None
    aperture: dict[str, Any] | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    summed_tiff: bytes | None = None
    """The image's MIBItiff: the uploaded file, or one built from the channels when first asked."""


def sort_key(name: str) -> tuple[int, float, str]:
    """Channel order of the tracker's lists: names first (case-insensitive), then numbers."""
    try:
        return (1, float(name), "")
    except ValueError:
        return (0, 0.0, name.lower())


class TrackerState:
    """All data of one stand-in tracker, guarded by one lock (handlers run in threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids: dict[str, int] = {}
        self.runs: dict[int, Run] = {}
        self.images: dict[int, Image] = {}
        self.imagesets: dict[int, dict[str, Any]] = {}
        self.catalog: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in _RELATED}
        self.panels: dict[int, dict[str, Any]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self._png_cache: dict[tuple[int, str], bytes] = {}

    def next_id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    # -- catalog: projects, tissues, sections (with panels), apertures, instruments ------------

    def add_related(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            item = {"id": self.next_id(kind), **fields}
            self.catalog[kind][item["id"]] = item
            return item

    def add_panel(self, name: str, channels: list[tuple[int, str]]) -> dict[str, Any]:
        """A panel of antibody conjugates and a tissue section stained with it."""
        with self.lock:
            panel_id = self.next_id("panel")
            conjugates = [
                {"id": self.next_id("conjugate"), "mass": mass, "target": target, "clone": None}
                for mass, target in sorted(channels, key=lambda c: sort_key(c[1]))
            ]
            self.panels[panel_id] = {"id": panel_id, "name": name, "conjugates": conjugates}
            return self.add_related("section", name=f"{name} section", panel=panel_id)

    def related(self, kind: str, value: Any) -> dict[str, Any] | None:
        """The catalog object a request names by id (None for null/empty)."""
        if value is None or value in ("", "None", "null"):
            return None
        if isinstance(value, dict):
            value = value.get("id")
        try:
            item = self.catalog[kind].get(int(value))
        except (TypeError, ValueError):
            raise ApiError(
                400, {kind: [f"Incorrect type. Expected pk value, received {value!r}."]}
            ) from None
        if item is None:
            raise _invalid_pk(kind, value)
        return item

    # -- runs ------------------------------------------------------------------------------

    def add_run(
        self,
        label: str,
        name: str,
        *,
        fov_size: float | None,
        instrument: dict[str, Any] | None,
        project: dict[str, Any] | None = None,
        run_date: str | None = None,
        fovs: list[Fov] | None = None,
        slide_ids: list[int] | None = None,
        aperture: dict[str, Any] | None = None,
        description: str = "",
        operator: str = "",
        xml_filename: str | None = None,
    ) -> Run:
        with self.lock:
            if any(run.label == label for run in self.runs.values()):
                raise ApiError(400, {"label": ["run with this label already exists."]})
            run = Run(
                id=self.next_id("run"),
                name=name,
                label=label,
                path=f"runs/{label}",
                xml_filename=xml_filename or f"{name}.xml",
                fov_size=fov_size,
                instrument=instrument,
                project=project,
                run_date=run_date or dt.date.today().isoformat(),
                slide_ids=slide_ids or [],
                aperture=aperture,
                description=description,
                operator=operator,
            )
            self.runs[run.id] = run
            fovs = fovs or []
            xml = build_run_xml(name, fovs)
            self.files[f"{run.path}/{run.xml_filename}"] = (xml, "application/xml")
            for fov in fovs:
                self.add_image(run, fov.number, fov.folder, description=fov.name, fov_size=fov_size)
            return run

    def create_run(self, fields: Mapping[str, str], xml: Part | None) -> Run:
        """POST /runs/: a run and one image per FOV of its XML."""
        for required in ("label", "instrument"):
            if not fields.get(required):
                raise ApiError(400, {required: ["This field is required."]})
        if xml is None or not xml.filename:
            raise ApiError(400, {"xml": ["No file was submitted."]})
        try:
            xml_name, fovs = parse_run_xml(xml.data)
        except BadFile as exc:
            raise ApiError(400, {"xml": [str(exc)]}) from exc
        with self.lock:
            return self.add_run(
                fields["label"],
                xml_name or xml.filename.rsplit(".", 1)[0],
                fov_size=_number(fields, "fov_size", float),
                instrument=self.related("instrument", fields["instrument"]),
                project=self.related("project", fields.get("project")),
                run_date=_run_date(fields.get("user_run_date")),
                fovs=fovs,
                slide_ids=_slides(fields.get("slides", "")),
                aperture=self.related("aperture", fields.get("aperture")),
                description=fields.get("description", ""),
                operator=fields.get("operator", ""),
                xml_filename=xml.filename,
            )

    def run_json(self, run: Run) -> dict[str, Any]:
        images = [self.images[i] for i in run.image_ids]
        return {
            "id": run.id,
            "name": run.name,
            "label": run.label,
            "path": run.path,
            "xml": run.xml_filename,
            "filename": run.xml_filename,
            "fov_size": run.fov_size,
            "instrument": run.instrument,
            "project": run.project,
            "run_date": run.run_date,
            "slide_ids": [{"id": slide} for slide in run.slide_ids],
            "aperture": run.aperture,
            "description": run.description,
            "operator": run.operator,
            "imageset": {
                "images": [{"id": i.id, "number": i.number, "pngs": self._pngs(i)} for i in images]
            },
        }

    def run(self, run_id: int) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found()
        return run

    def delete_run(self, run_id: int) -> None:
        """DELETE /runs/{id}/: the run goes with its images, their files and set memberships."""
        with self.lock:
            run = self.runs.pop(run_id, None)
            if run is None:
                raise not_found()
            gone = set(run.image_ids)
            for image_id in gone:
                del self.images[image_id]
            for imageset in self.imagesets.values():
                imageset["images"] = [i for i in imageset["images"] if i not in gone]
            for path in [p for p in self.files if p.startswith(run.path + "/")]:
                del self.files[path]
            for key in [k for k in self._png_cache if k[0] in gone]:
                del self._png_cache[key]

    # -- images ----------------------------------------------------------------------------

    def add_image(self, run: Run, number: str, folder: str, **fields: Any) -> Image:
        with self.lock:
            image = Image(id=self.next_id("image"), run_id=run.id, number=number, folder=folder)
            for name, value in fields.items():
                if not hasattr(image, name):
                    raise TypeError(f"images have no field {name!r}")
                setattr(image, name, value)
            self.images[image.id] = image
            run.image_ids.append(image.id)
            return image

    def image(self, image_id: int) -> Image:
        image = self.images.get(image_id)
        if image is None:
            raise not_found()
        return image

    def image_json(self, image: Image) -> dict[str, Any]:
        run = self.runs[image.run_id]
        body: dict[str, Any] = {
            "id": image.id,
            "number": image.number,
            "point": image.number,
            "folder": image.folder,
            "description": image.description,
            "fov_size": image.fov_size,
            "frame": image.frame,
            "dwell_time": image.dwell_time,
            "depths": image.depths,
            "mass_gain": image.mass_gain,
            "mass_offset": image.mass_offset,
            "time_bin": image.time_bin,
            "x_coord": image.x_coord,
            "y_coord": image.y_coord,
            "sed": image.sed,
            "project": image.project,
            "tissue": image.tissue,
            "section": image.section,
            "aperture": image.aperture,
            "run": {
                "id": run.id,
                "name": run.name,
                "label": run.label,
                "path": run.path,
                "run_date": run.run_date,
                "fov_size": run.fov_size,
            },
            "pngs": self._pngs(image),
            "overlays": [],
        }
        if image.settings:
            body["channel_settings"] = {
                name: dict(settings)
                for name, settings in image.settings.items()
                if name in image.channels
            }
        return body

    def _pngs(self, image: Image) -> list[str]:
        return sorted(image.channels, key=sort_key)

    def find_images(self, filters: Mapping[str, str]) -> list[Image]:
        """GET /images/ with the filters the protocol names (others are ignored, like Django's)."""
        with self.lock:
            found = []
            for image in sorted(self.images.values(), key=lambda i: i.id):
                run = self.runs[image.run_id]
                checks = {
                    "run__label": run.label,
                    "run__name": run.name,
                    "number": image.number,
                    "folder": image.folder,
                }
                if all(filters[key] == value for key, value in checks.items() if key in filters):
                    found.append(image)
            return found

    def find_runs(self, filters: Mapping[str, str]) -> list[Run]:
        with self.lock:
            return [
                run
                for run in sorted(self.runs.values(), key=lambda r: r.id)
                if all(
                    filters[key] == getattr(run, key) for key in ("name", "label") if key in filters
                )
            ]

    def update_image(self, image_id: int, fields: Mapping[str, Any], sed: Part | None) -> Image:
        """PUT /images/{id}/: JSON or form fields; ``sed`` is the multipart ``attachment``."""
        with self.lock:
            image = self.image(image_id)
            changes: dict[str, Any] = {}
            for name in _FLOAT_FIELDS:
                if name in fields:
                    changes[name] = _number(fields, name, float)
            for name in _INT_FIELDS:
                if name in fields:
                    changes[name] = _number(fields, name, int)
            for name in _TEXT_FIELDS:
                if name in fields:
                    changes[name] = "" if fields[name] is None else str(fields[name])
            for name in ("project", "tissue", "section", "aperture"):
                if name in fields:
                    changes[name] = self.related(name, fields[name])
            if "sed" in fields and fields["sed"] in (None, "", "None", "null"):
                changes["sed"] = None
            if sed is not None:
                if not sed.filename:
                    raise ApiError(400, {"attachment": ["No file was submitted."]})
                run = self.runs[image.run_id]
                content_type = sed.content_type or "application/octet-stream"
                self.files[f"{run.path}/{image.folder}/{sed.filename}"] = (sed.data, content_type)
                changes["sed"] = sed.filename
            for name, value in changes.items():
                setattr(image, name, value)
            return image

    def conjugates(self, image: Image) -> list[dict[str, Any]]:
        section = image.section
        if not section or section.get("panel") not in self.panels:
            return []
        return [dict(c) for c in self.panels[section["panel"]]["conjugates"]]

    # -- channels --------------------------------------------------------------------------

    def set_channels(self, image: Image, channels: Mapping[str, Channel]) -> None:
        with self.lock:
            shapes = {c.data.shape for c in channels.values()}
            if len(shapes) > 1:
                raise ValueError(f"channels of one image must have one shape, got {shapes}")
            image.channels = dict(channels)
            image.frame = next(iter(shapes))[1] if shapes else image.frame
            image.summed_tiff = None
            self._forget_pngs(image.id)

    def upload_channel(self, image_id: int, attachment: Part | None) -> Image:
        """POST /images/{id}/upload_channel/: the file's stem becomes the channel name."""
        if attachment is None or not attachment.filename:
            raise ApiError(400, {"attachment": ["No file was submitted."]})
        try:
            plane = decode_channel_file(attachment.filename, attachment.data)
        except BadFile as exc:
            raise ApiError(400, {"attachment": [str(exc)]}) from exc
        name = attachment.filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if not name:
            raise ApiError(400, {"attachment": ["The file name gives no channel name."]})
        with self.lock:
            image = self.image(image_id)
            shape = next((c.data.shape for c in image.channels.values()), plane.shape)
            if plane.shape != shape:
                raise ApiError(
                    400,
                    {
                        "attachment": [
                            f"Channel {name!r} is {plane.shape[1]}x{plane.shape[0]} pixels; "
                            f"the image's channels are {shape[1]}x{shape[0]}."
                        ]
                    },
                )
            image.channels[name] = Channel(None, plane)
            image.frame = plane.shape[1]
            self._forget_pngs(image.id)
            return image

    def channel_png(self, image: Image, name: str) -> bytes:
        key = (image.id, name)
        with self.lock:
            cached = self._png_cache.get(key)
            channel = image.channels.get(name)
        if cached is not None:
            return cached
        if channel is None:
            raise not_found()
        png = encode_png16(channel.data)  # outside the lock: encoding is the slow part
        with self.lock:
            if image.channels.get(name) is channel:
                self._png_cache[key] = png
        return png

    def _forget_pngs(self, image_id: int) -> None:
        for key in [k for k in self._png_cache if k[0] == image_id]:
            del self._png_cache[key]

    # -- MIBItiffs -------------------------------------------------------------------------

    def summed_tiff(self, image: Image) -> bytes | None:
        with self.lock:
            if image.summed_tiff is not None:
                return image.summed_tiff
            sims = [(c.mass, name, c.data) for name, c in image.channels.items() if c.mass]
            if not sims or not image.fov_size:
                return None
            run = self.runs[image.run_id]
            panel = self.panels.get((image.section or {}).get("panel", -1), {}).get("name")
            description = {
                f"mibi.{key}": value
                for key, value in {
                    "run": run.name,
                    "fov_id": image.number,
                    "fov_name": image.description or image.number,
                    "folder": image.folder,
                    "size": image.fov_size,
                    "dwell": image.dwell_time,
                    "mass_gain": image.mass_gain,
                    "mass_offset": image.mass_offset,
                    "time_resolution": image.time_bin,
                    "coordinates": [image.x_coord, image.y_coord]
                    if image.x_coord is not None
                    else None,
                    "panel": panel,
                    "description": image.description,
                    "version": "1.0",
                }.items()
                if value is not None
            }
            image.summed_tiff = build_mibitiff(
                sims,
                description,
                image.fov_size,
                date=dt.datetime.fromisoformat(run.run_date),
                coordinates=(image.x_coord or 0.0, image.y_coord or 0.0),
            )
            return image.summed_tiff

    def process_mibitiff(self, run_id: int, payload: bytes) -> Image:
        """POST /upload_mibitiff/: attach the file's channels to the image of its run and folder,
        creating the image if the run's XML did not list it. Processing the same file twice
        updates the same image (a retried upload makes no duplicate)."""
        try:
            parsed = parse_mibitiff(payload)
        except BadFile as exc:
            raise ApiError(400, {"detail": str(exc)}) from exc
        description = parsed.description
        with self.lock:
            run = self.run(run_id)
            tiff_run = description.get("mibi.run")
            if tiff_run and tiff_run != run.name:
                raise ApiError(
                    400,
                    {
                        "detail": f"The MIBItiff belongs to run {tiff_run!r}, not to run "
                        f"{run.name!r} (id {run.id}); check run_id and mibi.run."
                    },
                )
            folder = description.get("mibi.folder") or description.get("mibi.fov_id")
            if not folder:
                raise ApiError(
                    400, {"detail": "The MIBItiff has no mibi.folder or mibi.fov_id to file it by."}
                )
            image = next(
                (self.images[i] for i in run.image_ids if self.images[i].folder == folder), None
            )
            if image is None:
                number = description.get("mibi.fov_id") or str(folder).split("/")[0]
                image = self.add_image(run, str(number), str(folder))
            self.set_channels(
                image, {target: Channel(mass, plane) for mass, target, plane in parsed.channels}
            )
            image.summed_tiff = payload
            image.fov_size = parsed.fov_size or _float_or_none(description.get("mibi.size"))
            image.description = str(
                description.get("mibi.fov_name")
                or description.get("mibi.description")
                or image.description
            )
            image.dwell_time = _float_or_none(description.get("mibi.dwell"))
            image.mass_gain = _float_or_none(description.get("mibi.mass_gain"))
            image.mass_offset = _float_or_none(description.get("mibi.mass_offset"))
            image.time_bin = _float_or_none(description.get("mibi.time_resolution"))
            coordinates = description.get("mibi.coordinates")
            if isinstance(coordinates, list) and len(coordinates) == 2:
                image.x_coord, image.y_coord = (_float_or_none(c) for c in coordinates)
            if parsed.sed is not None:
                self.files[f"{run.path}/{image.folder}/sed.png"] = (
                    encode_png16(parsed.sed),
                    "image/png",
                )
                image.sed = "sed.png"
            return image

    # -- storage ---------------------------------------------------------------------------

    def new_upload_location(self, run: Run) -> str:
        return f"uploads/{run.label}/{uuid.uuid4().hex}.tiff"

    def storage_object(self, path: str) -> tuple[bytes, str] | None:
        """Bytes and content type of a storage path: stored files, each image's
        ``summed_image.tiff`` and its channel PNGs (``.../pngs/<channel>.png``)."""
        with self.lock:
            stored = self.files.get(path)
            if stored is not None:
                return stored
            if path.endswith("/summed_image.tiff"):
                image = self._image_at(path.removesuffix("/summed_image.tiff"))
                tiff = self.summed_tiff(image) if image else None
                return (tiff, "image/tiff") if tiff else None
            head, separator, tail = path.rpartition("/pngs/")
            if not (separator and tail.endswith(".png")):
                return None
            image = self._image_at(head)
            name = tail.removesuffix(".png")
            if image is None or name not in image.channels:
                return None
        return self.channel_png(image, name), "image/png"

    def channel_path(self, image: Image, name: str) -> str:
        return f"{self.runs[image.run_id].path}/{image.folder}/pngs/{name}.png"

    def _image_at(self, location: str) -> Image | None:
        for image in self.images.values():
            if f"{self.runs[image.run_id].path}/{image.folder}" == location:
                return image
        return None

    # -- image sets ------------------------------------------------------------------------

    def create_imageset(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        if not body.get("name"):
            raise ApiError(400, {"name": ["This field is required."]})
        ids = body.get("images")
        if not isinstance(ids, list) or not ids:
            raise ApiError(400, {"images": ["This list may not be empty."]})
        with self.lock:
            for image_id in ids:
                if not isinstance(image_id, int) or image_id not in self.images:
                    raise _invalid_pk("images", image_id)
            project = self.related("project", body.get("project"))
            imageset_id = self.next_id("imageset")
            imageset = {
                "id": imageset_id,
                "name": str(body["name"]),
                "project": project["id"] if project else None,
                "description": body.get("description"),
                "images": list(ids),
            }
            self.imagesets[imageset_id] = imageset
            return imageset


def _number(fields: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    value = fields.get(name)
    if value is None or value in ("", "None", "null"):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        expected = "A valid integer is required." if kind is int else "A valid number is required."
        raise ApiError(400, {name: [expected]}) from None


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _run_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        raise ApiError(
            400, {"user_run_date": ["Datetime has wrong format. Use YYYY-MM-DDThh:mm:ss."]}
        ) from None


def _slides(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ApiError(400, {"slides": ["Expected comma-separated slide ids."]}) from None
