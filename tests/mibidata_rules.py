"""A MIBItiff reader that is as strict as Ionpath's mibidata reader, for tests.

mibidata (part of mibilib) is not on PyPI, so the tests cannot run it. This reader demands what
it demands: a Software tag starting with ``IonpathMIBI``; a JSON description with ``image.type``
on every page; on the first SIMS page resolution in pixels per centimetre with equal x and y,
a DateTime tag in TIFF's ``YYYY:MM:DD HH:MM:SS`` form and both stage position tags; ``mibi.run``,
``mibi.fov_id`` and ``mibi.folder`` in the description, the folder starting with the FOV id; and
unique masses and targets. Anything less raises ``AssertionError`` naming what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import tifffile

__all__ = ["StrictMibiImage", "read_like_mibidata"]

_CENTIMETRE = 3
_REQUIRED_DESCRIPTION = ("mibi.run", "mibi.fov_id", "mibi.folder")


@dataclass(frozen=True)
class StrictMibiImage:
    data: np.ndarray
    """(y, x, channel), the layout mibidata uses."""
    channels: list[tuple[int, str]]
    date: dt.datetime
    coordinates: tuple[float, float]
    """Stage position in micrometres."""
    size_um: float
    description: dict[str, Any]


def _tag(page: tifffile.TiffPage, code: int, name: str) -> Any:
    tag = page.tags.get(code)
    assert tag is not None, f"tag {code} ({name}) is missing; mibidata cannot read the file"
    return tag.value


def _rational(value: Any) -> float:
    assert isinstance(value, tuple) and len(value) == 2 and value[1], f"not a rational: {value!r}"
    return value[0] / value[1]


def read_like_mibidata(source: str | IO[bytes]) -> StrictMibiImage:
    """The SIMS channels of ``source``, read only if mibidata would read them."""
    with tifffile.TiffFile(source) as tif:
        software = _tag(tif.pages.first, 305, "Software")
        assert str(software).startswith("IonpathMIBI"), f"Software is {software!r}"
        planes: list[np.ndarray] = []
        channels: list[tuple[int, str]] = []
        first: tuple[tifffile.TiffPage, dict[str, Any]] | None = None
        for page in tif.pages:
            assert isinstance(page, tifffile.TiffPage)
            description = json.loads(_tag(page, 270, "ImageDescription"))
            assert "image.type" in description, f"page {page.index} has no image.type"
            if description["image.type"].lower() != "sims":
                continue
            channels.append((description["channel.mass"], description["channel.target"]))
            planes.append(page.asarray())
            if first is None:
                first = (page, description)
        assert first is not None, "no SIMS page"
        page, description = first
        assert _tag(page, 296, "ResolutionUnit") == _CENTIMETRE, "resolution is not per centimetre"
        x_resolution = _rational(_tag(page, 282, "XResolution"))
        assert x_resolution == _rational(_tag(page, 283, "YResolution")), (
            "x and y resolution differ"
        )
        date = dt.datetime.strptime(_tag(page, 306, "DateTime"), "%Y:%m:%d %H:%M:%S")
        coordinates = (
            _rational(_tag(page, 286, "XPosition")) * 1e4,
            _rational(_tag(page, 287, "YPosition")) * 1e4,
        )
        width = page.imagewidth
    for key in _REQUIRED_DESCRIPTION:
        assert description.get(key), f"the description lacks {key}"
    fov_id, folder = description["mibi.fov_id"], description["mibi.folder"]
    assert folder.split("/")[0] == fov_id, f"folder {folder!r} does not match fov_id {fov_id!r}"
    masses, targets = zip(*channels, strict=True)
    assert len(set(masses)) == len(masses), "masses are not unique"
    assert len(set(targets)) == len(targets), "targets are not unique"
    return StrictMibiImage(
        data=np.stack(planes, axis=2),
        channels=channels,
        date=date,
        coordinates=coordinates,
        size_um=width / x_resolution * 1e4,
        description=description,
    )
