"""The file formats the stand-in MIBItracker reads and writes: channel PNGs, MIBItiffs, run XMLs
and multipart form bodies.

MIBItiffs are built and parsed here with tifffile directly from the protocol document, not with
``napari_lablink.formats.mibitiff``: the stand-in checks the plugin, so it must not share the
plugin's mistakes.

Run XML: the protocol says only that a run's XML "lists its FOV folders". The stand-in accepts
``<Fov>`` (or ``<FOV>``) elements, numbered ``FOV1, FOV2, ...`` in document order with folders of
the same name, and ``<Point>`` elements of the older MiniSIMS runs, numbered ``Point1, ...`` with
folders ``PointN/RowNumber0/Depth_Profile0``. A ``number`` attribute overrides the numbering, a
``name`` (or ``Name``/``PointName``) attribute names the FOV; the root element's ``name``
attribute names the run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from email.message import Message
from typing import Any

import imagecodecs
import numpy as np
import tifffile

__all__ = [
    "BadFile",
    "Fov",
    "ParsedMibiTiff",
    "Part",
    "build_mibitiff",
    "build_run_xml",
    "decode_channel_file",
    "encode_png16",
    "parse_mibitiff",
    "parse_multipart",
    "parse_run_xml",
]

SOFTWARE = "IonpathMIBIv1.0"


class BadFile(ValueError):
    """An uploaded file the tracker cannot use; the message goes back to the client."""


def encode_png16(plane: np.ndarray) -> bytes:
    """Raw counts as a 16-bit grayscale PNG (big-endian samples, as PNG prescribes)."""
    if plane.dtype != np.uint16:
        plane = np.clip(np.rint(plane.astype(np.float64)), 0, 65535).astype(np.uint16)
    # zlib level 1 with the SUB filter: ~20x faster to encode than the defaults on count data and
    # as fast to decode, so the first fetch of a 40-channel 1024 x 1024 image takes well under 1 s.
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(plane), level=1, filter=16))


def decode_channel_file(filename: str, payload: bytes) -> np.ndarray:
    """The 2-D grayscale image in an uploaded ``.png`` or ``.tif(f)`` channel file."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    try:
        if extension == "png":
            image = np.asarray(imagecodecs.png_decode(payload))
        elif extension in ("tif", "tiff"):
            image = tifffile.imread(io.BytesIO(payload))
        else:
            raise BadFile(f"Unsupported file type {filename!r}: upload a .png or .tiff image.")
    except BadFile:
        raise
    except Exception as exc:
        raise BadFile(f"{filename!r} is not a readable {extension.upper()} image.") from exc
    if image.ndim != 2:
        raise BadFile(f"{filename!r} has shape {image.shape}; a channel is a 2-D grayscale image.")
    if image.dtype == np.uint8:
        image = image.astype(np.uint16)
    if image.dtype not in (np.uint16, np.float32):
        raise BadFile(f"{filename!r} holds {image.dtype} pixels; channels are uint16 or float32.")
    return image


def _sort_key(target: str) -> tuple[int, float, str]:
    try:
        value = float(target)
    except ValueError:
        return (0, 0.0, target.lower())
    return (1, value, "") if math.isfinite(value) else (0, 0.0, target.lower())


def _position(micrometres: float) -> tuple[int, int]:
    """A stage coordinate as the signed rational of centimetres the position tags hold."""
    return round(micrometres * 1000), 10_000_000  # nanometre steps: um * 1000 / 1e7 = cm


def build_mibitiff(
    channels: list[tuple[int, str, np.ndarray]],
    description: dict[str, Any],
    fov_size: float,
    *,
    date: dt.datetime,
    coordinates: tuple[float, float],
) -> bytes:
    """A MIBItiff of (mass, target, plane) channels, pages sorted by target.

    Every channel page carries the DateTime tag and the stage position tags (micrometres in,
    centimetres stored): Ionpath's reader refuses a file without them.
    """
    position_tags = [
        (286, "2i", 1, _position(coordinates[0]), True),
        (287, "2i", 1, _position(coordinates[1]), True),
    ]
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tif:
        for mass, target, plane in sorted(channels, key=lambda c: _sort_key(c[1])):
            pixels_per_cm = plane.shape[1] * 1e4 / fov_size
            page = {
                **description,
                "image.type": "SIMS",
                "channel.mass": mass,
                "channel.target": target,
            }
            tif.write(
                plane,
                compression="zlib",
                description=json.dumps(page),
                metadata=None,
                software=SOFTWARE,
                resolution=(pixels_per_cm, pixels_per_cm),
                resolutionunit="CENTIMETER",
                datetime=date.strftime("%Y:%m:%d %H:%M:%S"),
                extratags=[(285, "s", 0, f"{target} ({mass})".encode(), True), *position_tags],
            )
    return buffer.getvalue()


@dataclass
class ParsedMibiTiff:
    channels: list[tuple[int, str, np.ndarray]]
    description: dict[str, Any]
    """The first SIMS page's description."""
    fov_size: float | None
    sed: np.ndarray | None = None


def parse_mibitiff(payload: bytes) -> ParsedMibiTiff:
    """Channels and metadata of an uploaded MIBItiff; ``BadFile`` if it is not one."""
    try:
        tif = tifffile.TiffFile(io.BytesIO(payload))
    except tifffile.TiffFileError as exc:
        raise BadFile("The uploaded file is not a TIFF.") from exc
    with tif:
        software = tif.pages.first.tags.valueof("Software")
        if not (isinstance(software, str) and software.startswith("IonpathMIBI")):
            raise BadFile(f"The uploaded TIFF is not a MIBItiff (Software tag {software!r}).")
        parsed = ParsedMibiTiff([], {}, None)
        for page in tif.pages:
            assert isinstance(page, tifffile.TiffPage)
            try:
                description = json.loads(page.tags.valueof("ImageDescription") or "{}")
            except ValueError as exc:
                raise BadFile("A page of the uploaded MIBItiff has no JSON description.") from exc
            kind = str(description.get("image.type", "")).upper()
            if kind == "SED":
                parsed.sed = page.asarray()
            if kind != "SIMS":
                continue
            try:
                mass, target = int(description["channel.mass"]), str(description["channel.target"])
            except (KeyError, TypeError, ValueError) as exc:
                raise BadFile("A SIMS page lacks channel.mass or channel.target.") from exc
            parsed.channels.append((mass, target, page.asarray()))
            if not parsed.description:
                parsed.description = description
                parsed.fov_size = _fov_size(page)
    if not parsed.channels:
        raise BadFile("The uploaded MIBItiff has no SIMS channels.")
    return parsed


def _fov_size(page: tifffile.TiffPage) -> float | None:
    resolution = page.tags.valueof("XResolution")
    if page.tags.valueof("ResolutionUnit") != 3 or not resolution or not resolution[0]:
        return None
    return page.imagewidth * 1e4 * resolution[1] / resolution[0]


@dataclass(frozen=True)
class Fov:
    number: str
    folder: str
    name: str


def parse_run_xml(payload: bytes) -> tuple[str | None, list[Fov]]:
    """The run name (if the XML gives one) and the FOVs it lists, in order."""
    try:
        root = ElementTree.fromstring(payload)
    except ElementTree.ParseError as exc:
        raise BadFile(f"The run XML cannot be parsed: {exc}.") from exc
    fovs: list[Fov] = []
    counts = {"FOV": 0, "Point": 0}
    for element in root.iter():
        tag = element.tag.split("}")[-1]
        kind = "FOV" if tag.lower() == "fov" else "Point" if tag == "Point" else None
        if kind is None:
            continue
        counts[kind] += 1
        number = element.get("number") or f"{kind}{counts[kind]}"
        folder = number if kind == "FOV" else f"{number}/RowNumber0/Depth_Profile0"
        name = next(
            (element.get(a) for a in ("name", "Name", "PointName") if element.get(a)), number
        )
        fovs.append(Fov(number, folder, str(name)))
    return root.get("name"), fovs


def build_run_xml(run_name: str, fovs: list[Fov]) -> bytes:
    """A run XML the stand-in itself can parse back (served for ``copy_run``)."""
    root = ElementTree.Element("Run", {"name": run_name})
    for fov in fovs:
        tag = "Point" if fov.number.startswith("Point") else "Fov"
        ElementTree.SubElement(root, tag, {"number": fov.number, "name": fov.name})
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


@dataclass
class Part:
    """One field of a multipart form; ``filename`` is None for plain fields."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """The fields of a ``multipart/form-data`` body, by name (a repeated name keeps the last)."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BadFile("Multipart form parse error - Invalid boundary in multipart: None")
    delimiter = b"--" + boundary.encode("latin-1")
    parts: dict[str, Part] = {}
    sections = body.split(delimiter)
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n")
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise BadFile("Multipart form parse error - a part has no header block.")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = Message()
        disposition["Content-Disposition"] = headers.get("content-disposition", "")
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_filename()
        if not isinstance(name, str):
            raise BadFile("Multipart form parse error - a part has no name.")
        parts[name] = Part(name, data.removesuffix(b"\r\n"), filename, headers.get("content-type"))
    return parts
