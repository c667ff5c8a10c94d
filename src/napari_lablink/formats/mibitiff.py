"""Read and write MIBItiff, the multi-page TIFF of Ionpath's MIBI instruments and MIBItracker.

The format (``docs/protocols/mibitracker.md``): one 2-D page per channel, uint16 counts or
float32, Deflate-compressed, pages sorted by target. Each page's ImageDescription is JSON with
``image.type`` (``"SIMS"`` for channels; SED, optical and label pages carry other types and are
not channels), ``channel.mass``, ``channel.target`` and ``mibi.*`` keys. The Software tag starts
with ``IonpathMIBI``, PageName is ``"<target> (<mass>)"``, and the resolution is in pixels per
centimetre, so that micrometres per pixel = FOV size / width.

Ionpath's own reader (mibidata) refuses a file whose channel pages lack the DateTime tag or the
XPosition/YPosition tags, and it needs ``mibi.run``, ``mibi.fov_id`` and ``mibi.folder`` to place
the image. So the writer always writes them; when the caller knows none, it writes the documented
:data:`DEFAULTS` (the moment of writing, stage position 0,0, FOV ``FOV1`` in folder ``FOV1``, and a
run named after the file, or ``napari-lablink`` when writing to a file object).

Only tifffile is used: it reads and writes every tag the format needs, and keeping this module free
of napari lets the client, the CLI and the stand-in tests share it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, Any

import numpy as np
import tifffile

__all__ = [
    "DEFAULTS",
    "SOFTWARE",
    "MibiImage",
    "MibiTiffError",
    "channel_sort_key",
    "is_mibitiff",
    "page_name",
    "read_mibitiff",
    "write_mibitiff",
]

Source = str | os.PathLike[str] | IO[bytes]

SOFTWARE = "IonpathMIBIv1.0"
_SOFTWARE_PREFIX = "IonpathMIBI"
_UM_PER_CM = 1e4
_TIFF_DATETIME = "%Y:%m:%d %H:%M:%S"
_SIMS = "SIMS"

#: What the writer stores for metadata that mibidata requires and the caller did not give.
#: ``date`` defaults to the time of writing; ``run`` to the file's name without its suffix when
#: writing to a path.
DEFAULTS: Mapping[str, Any] = {
    "coordinates": (0.0, 0.0),
    "fov_id": "FOV1",
    "run": "napari-lablink",
}

# Metadata keys the format defines; they are stored with a "mibi." prefix. Other keys a caller
# passes are stored unprefixed, as Ionpath's own writer does with user-defined attributes.
_MIBI_KEYS = frozenset(
    {
        "run",
        "coordinates",
        "size",
        "slide",
        "fov_id",
        "fov_name",
        "folder",
        "dwell",
        "scans",
        "aperture",
        "instrument",
        "tissue",
        "panel",
        "mass_offset",
        "mass_gain",
        "time_resolution",
        "miscalibrated",
        "check_reg",
        "filename",
        "description",
        "version",
    }
)
# Keys that describe one page rather than the image; a caller may not set them. "shape" is what
# tifffile adds to descriptions it writes itself, so readers drop it too.
_PAGE_KEYS = frozenset({"image.type", "channel.mass", "channel.target", "shape"})

_TAG_PAGE_NAME = 285
_TAG_X_POSITION = 286
_TAG_Y_POSITION = 287
_TAG_SMIN = 340
_TAG_SMAX = 341


class MibiTiffError(ValueError):
    """A file is not a valid MIBItiff, or data cannot be written as one."""


@dataclass(frozen=True, eq=False)
class MibiImage:
    """The SIMS channels of one MIBItiff with the FOV's metadata.

    ``metadata`` holds the ``mibi.*`` keys without their prefix (``run``, ``fov_id``,
    ``fov_name``, ``folder``, ``size``, ...), any user-defined keys, ``date`` (ISO 8601) from the
    DateTime tag and ``coordinates`` (micrometres) from the position tags when present.
    """

    data: np.ndarray
    """Channel stack, dims (channel, y, x), uint16 counts or float32."""
    channels: tuple[tuple[int, str], ...]
    """(mass, target) per channel, in page order."""
    metadata: dict[str, Any] = field(default_factory=dict)
    fov_size_um: float | None = None
    """Width of the field of view in micrometres, from the resolution tags."""

    @property
    def masses(self) -> tuple[int, ...]:
        return tuple(mass for mass, _ in self.channels)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(target for _, target in self.channels)

    @property
    def names(self) -> tuple[str, ...]:
        """Channel names as the tracker and the page names show them: ``"CD45 (150)"``."""
        return tuple(page_name(target, mass) for mass, target in self.channels)

    @property
    def pixel_size_um(self) -> float | None:
        if self.fov_size_um is None:
            return None
        return self.fov_size_um / int(self.data.shape[-1])

    def channel(self, target: str) -> np.ndarray:
        """The 2-D data of the channel with this target."""
        try:
            index = self.targets.index(target)
        except ValueError:
            known = ", ".join(self.targets)
            raise KeyError(f"No channel with target {target!r}; the image has: {known}") from None
        return np.asarray(self.data[index])


def page_name(target: str, mass: int) -> str:
    """The PageName tag of a channel page, e.g. ``"CD45 (150)"``."""
    return f"{target} ({mass})"


def channel_sort_key(target: str) -> tuple[int, float, str]:
    """Order of channel pages: text targets case-insensitively, then numeric targets by value.

    Panels mix antibody targets with bare masses or elements ("CD45", "dsDNA", "197"); Ionpath's
    tools list the named targets first so they stay together.
    """
    try:
        number = float(target)
    except ValueError:
        return (0, 0.0, target.lower())
    if not math.isfinite(number):
        return (0, 0.0, target.lower())
    return (1, number, target)


def is_mibitiff(source: Source) -> bool:
    """Whether ``source`` is a MIBItiff, judged from the first page's Software tag only.

    napari asks every reader about every TIFF dropped on it, so this reads one IFD and no pixels.
    Files that are not TIFFs at all give False; a missing file raises ``FileNotFoundError``.
    """
    position = source.tell() if hasattr(source, "tell") else None
    try:
        with tifffile.TiffFile(source) as tif:
            software = tif.pages.first.tags.valueof("Software")
    except tifffile.TiffFileError:
        return False
    finally:
        if position is not None:
            source.seek(position)  # type: ignore[union-attr]
    return isinstance(software, str) and software.startswith(_SOFTWARE_PREFIX)


def read_mibitiff(source: Source) -> MibiImage:
    """Read every SIMS page of a MIBItiff; SED, optical and label pages are skipped.

    Files of format version 0.1 (FOV name in ``mibi.description``, folders like
    ``Point1/RowNumber0/Depth_Profile0``) get ``fov_name`` and ``fov_id`` filled in from those.
    """
    where = _describe(source)
    try:
        tif = tifffile.TiffFile(source)
    except tifffile.TiffFileError as exc:
        raise MibiTiffError(f"{where} is not a TIFF file ({exc}).") from exc
    with tif:
        software = tif.pages.first.tags.valueof("Software")
        if not (isinstance(software, str) and software.startswith(_SOFTWARE_PREFIX)):
            raise MibiTiffError(
                f"{where} is not a MIBItiff: its Software tag is {software!r}, a MIBItiff's "
                f"starts with {_SOFTWARE_PREFIX!r}. Open it as a plain TIFF instead."
            )
        planes: list[np.ndarray] = []
        channels: list[tuple[int, str]] = []
        first_sims: tifffile.TiffPage | None = None
        first_description: dict[str, Any] = {}
        for index, page in enumerate(tif.pages):
            assert isinstance(page, tifffile.TiffPage)
            description = _page_description(page, index, where)
            if str(description.get("image.type", "")).upper() != _SIMS:
                continue
            try:
                channels.append(
                    (int(description["channel.mass"]), str(description["channel.target"]))
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise MibiTiffError(
                    f"{where}: SIMS page {index} lacks a valid channel.mass and channel.target "
                    f"in its description."
                ) from exc
            plane = page.asarray()
            if planes and plane.shape != planes[0].shape:
                raise MibiTiffError(
                    f"{where}: SIMS page {index} is {plane.shape}, the first channel is "
                    f"{planes[0].shape}; all channels of a MIBItiff have one size."
                )
            planes.append(plane)
            if first_sims is None:
                first_sims, first_description = page, description
        if first_sims is None:
            raise MibiTiffError(f"{where} is a MIBItiff without SIMS pages: it holds no channels.")
        metadata = _image_metadata(first_sims, first_description)
        fov_size = _fov_size_um(first_sims, metadata)
    return MibiImage(np.stack(planes), tuple(channels), metadata, fov_size)


def write_mibitiff(
    dest: str | os.PathLike[str] | IO[bytes],
    data: Any,
    channels: Sequence[tuple[int, str]],
    metadata: Mapping[str, Any] | None = None,
    *,
    fov_size_um: float | None = None,
    dtype: str | np.dtype[Any] | None = None,
    sed: np.ndarray | None = None,
) -> None:
    """Write channels as a MIBItiff, pages sorted by target.

    ``data`` has dims (channel, y, x) and may be a dask array: pages are computed and written
    one at a time, so only one channel is in memory. ``channels`` holds (mass, target) per
    channel. ``metadata`` keys defined by the format (``run``, ``fov_id``, ``folder``, ...) get the
    ``mibi.`` prefix (keys already prefixed are kept), others are stored as given; ``date`` (a
    datetime or ISO string) becomes the DateTime tag and ``coordinates`` (x, y micrometres) the
    position tags. The FOV size comes from ``fov_size_um`` or ``metadata["size"]``.
    Missing ``date``, ``coordinates``, ``run``, ``fov_id`` and ``folder`` get the values of
    :data:`DEFAULTS` (``folder`` and ``fov_id`` default to each other), so that every file opens in
    mibidata. Integer data is stored as uint16 (an error if values do not fit), float data as
    float32, unless ``dtype`` forces one of the two. ``sed`` adds an SED page, which is not a
    channel.
    """
    metadata = _with_defaults(_bare_keys(metadata or {}), dest)
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    shape = tuple(int(n) for n in data.shape)
    if len(shape) != 3:
        raise MibiTiffError(f"MIBItiff data must have dims (channel, y, x); got shape {shape}.")
    channels = [(_as_mass(mass), str(target)) for mass, target in channels]
    _check_channels(channels, shape[0])
    size = fov_size_um if fov_size_um is not None else metadata.get("size")
    if size is None or not float(size) > 0:
        raise MibiTiffError(
            "A MIBItiff needs the field of view size in micrometres: pass fov_size_um or "
            "metadata['size'] (a positive number)."
        )
    size = float(size)
    metadata["size"] = size
    save_dtype = _save_dtype(np.dtype(data.dtype), dtype)
    date = _tiff_datetime(metadata.pop("date"))
    description = _image_description(metadata)
    resolution = shape[2] * _UM_PER_CM / size
    position_tags = _position_tags(metadata.get("coordinates"))
    order = sorted(range(shape[0]), key=lambda i: channel_sort_key(channels[i][1]))

    with tifffile.TiffWriter(dest) as tif:
        for index in order:
            mass, target = channels[index]
            plane = _to_save_dtype(np.asarray(data[index]), save_dtype, target)
            page_description = {
                **description,
                "image.type": _SIMS,
                "channel.mass": mass,
                "channel.target": target,
            }
            range_type = "H" if save_dtype == np.uint16 else "f"
            page_tags = [
                *position_tags,
                (_TAG_PAGE_NAME, "s", 0, page_name(target, mass).encode(), True),
                (_TAG_SMIN, range_type, 1, plane.min().item(), True),
                (_TAG_SMAX, range_type, 1, plane.max().item(), True),
            ]
            _write_page(tif, plane, page_description, resolution, page_tags, date)
        if sed is not None:
            sed = np.asarray(sed)
            if sed.ndim == 3:  # an RGB rendering of the grayscale SED
                sed = sed[..., 0]
            sed_tags = [*position_tags, (_TAG_PAGE_NAME, "s", 0, b"SED", True)]
            sed_resolution = sed.shape[1] * _UM_PER_CM / size
            _write_page(tif, sed, {"image.type": "SED"}, sed_resolution, sed_tags, date)


def _bare_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Format keys without their ``mibi.`` prefix, so defaults see what the caller gave."""
    bare: dict[str, Any] = {}
    for key, value in metadata.items():
        name = key[len("mibi.") :] if key.startswith("mibi.") else key
        bare[name if name in _MIBI_KEYS else key] = value
    return bare


def _with_defaults(metadata: dict[str, Any], dest: Any) -> dict[str, Any]:
    """``metadata`` completed with what mibidata requires (see :data:`DEFAULTS`)."""
    if metadata.get("date") is None:
        metadata["date"] = _dt.datetime.now().replace(microsecond=0)
    if metadata.get("coordinates") is None:
        metadata["coordinates"] = DEFAULTS["coordinates"]
    if not metadata.get("run"):
        stem = _file_stem(dest)
        metadata["run"] = stem or DEFAULTS["run"]
    folder = metadata.get("folder")
    if not metadata.get("fov_id"):
        metadata["fov_id"] = str(folder).split("/")[0] if folder else DEFAULTS["fov_id"]
    if not folder:
        metadata["folder"] = metadata["fov_id"]
    elif str(folder).split("/")[0] != str(metadata["fov_id"]):
        raise MibiTiffError(
            f"metadata['folder'] = {folder!r} does not start with the FOV id "
            f"{metadata['fov_id']!r}; mibidata requires the folder to begin with it."
        )
    return metadata


def _file_stem(dest: Any) -> str | None:
    name = os.fspath(dest) if isinstance(dest, str | os.PathLike) else getattr(dest, "name", None)
    if not isinstance(name, str):
        return None
    stem = os.path.basename(name)
    for suffix in (".tiff", ".tif"):
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)] or None
    return stem or None


def _write_page(
    tif: tifffile.TiffWriter,
    plane: np.ndarray,
    description: Mapping[str, Any],
    resolution: float,
    extratags: list[tuple[Any, ...]],
    date: str,
) -> None:
    tif.write(
        plane,
        compression="zlib",  # TIFF compression 8, "Adobe Deflate", as Ionpath writes it
        description=json.dumps(description),
        metadata=None,  # no tifffile "shape" JSON: the description above is the page's
        software=SOFTWARE,
        resolution=(resolution, resolution),
        resolutionunit="CENTIMETER",
        datetime=date,
        rowsperstrip=plane.shape[0],
        extratags=extratags,
    )


def _describe(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return f"File {os.fspath(source)!r}"
    name = getattr(source, "name", None)
    return f"File {name!r}" if isinstance(name, str) else "The file object"


def _page_description(page: tifffile.TiffPage, index: int, where: str) -> dict[str, Any]:
    text = page.tags.valueof("ImageDescription")
    if text is None:
        return {}
    try:
        description = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise MibiTiffError(
            f"{where}: page {index} has a description that is not JSON; a MIBItiff's pages "
            f"describe themselves in JSON."
        ) from exc
    return description if isinstance(description, dict) else {}


def _image_metadata(page: tifffile.TiffPage, description: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, value in description.items():
        if key.startswith("mibi."):
            metadata[key[len("mibi.") :]] = value
        elif key not in _PAGE_KEYS:
            metadata[key] = value
    _upgrade_version_0_1(metadata)
    date = page.tags.valueof("DateTime")
    if isinstance(date, str):
        try:
            metadata["date"] = _dt.datetime.strptime(date, _TIFF_DATETIME).isoformat()
        except ValueError:
            metadata["date"] = date
    x_position = page.tags.valueof(_TAG_X_POSITION)
    y_position = page.tags.valueof(_TAG_Y_POSITION)
    if x_position is not None and y_position is not None:
        metadata["coordinates"] = (_cm_to_um(x_position), _cm_to_um(y_position))
    return metadata


def _upgrade_version_0_1(metadata: dict[str, Any]) -> None:
    """Fill the keys that format version 0.1 lacked from the ones it had."""
    if not metadata.get("fov_name") and metadata.get("description"):
        metadata["fov_name"] = metadata["description"]
    folder = metadata.get("folder")
    if folder and not metadata.get("fov_id"):
        metadata["fov_id"] = str(folder).split("/")[0]
    if not folder and str(metadata.get("fov_id", "")).startswith("FOV"):
        metadata["folder"] = metadata["fov_id"]


def _fov_size_um(page: tifffile.TiffPage, metadata: Mapping[str, Any]) -> float | None:
    unit = page.tags.valueof("ResolutionUnit")
    resolution = page.tags.valueof("XResolution")
    if unit == tifffile.RESUNIT.CENTIMETER and resolution and resolution[0]:
        pixels_per_cm = resolution[0] / resolution[1]
        return float(page.imagewidth / pixels_per_cm * _UM_PER_CM)
    size = metadata.get("size")
    return float(size) if isinstance(size, int | float) and size > 0 else None


def _cm_to_um(value: Any) -> float:
    if isinstance(value, tuple):
        return float(value[0] / value[1] * _UM_PER_CM)
    return float(value) * _UM_PER_CM


def _um_to_cm_rational(value: float) -> tuple[int, int]:
    fraction = Fraction(float(value) / _UM_PER_CM).limit_denominator(1_000_000)
    return fraction.numerator, fraction.denominator


def _position_tags(coordinates: Any) -> list[tuple[Any, ...]]:
    try:
        x, y = (float(value) for value in coordinates)
    except (TypeError, ValueError) as exc:
        raise MibiTiffError(
            f"metadata['coordinates'] must be (x, y) in micrometres; got {coordinates!r}."
        ) from exc
    # Signed rationals: stage coordinates can be negative.
    return [
        (_TAG_X_POSITION, "2i", 1, _um_to_cm_rational(x), True),
        (_TAG_Y_POSITION, "2i", 1, _um_to_cm_rational(y), True),
    ]


def _as_mass(mass: Any) -> int:
    try:
        as_int = int(mass)
    except (TypeError, ValueError) as exc:
        raise MibiTiffError(f"Channel masses must be integers; got {mass!r}.") from exc
    if as_int != mass:
        raise MibiTiffError(f"Channel masses must be integers; got {mass!r}.")
    return as_int


def _check_channels(channels: Sequence[tuple[int, str]], count: int) -> None:
    if len(channels) != count:
        raise MibiTiffError(
            f"The data has {count} channels but {len(channels)} (mass, target) pairs were given."
        )
    listed: tuple[tuple[str, list[object]], ...] = (
        ("targets", [t for _, t in channels]),
        ("masses", [m for m, _ in channels]),
    )
    for what, values in listed:
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise MibiTiffError(
                f"Channel {what} must be unique in a MIBItiff; repeated: {', '.join(duplicates)}."
            )
    empty = [mass for mass, target in channels if not target.strip()]
    if empty:
        raise MibiTiffError(f"Channels with masses {empty} have no target name.")


def _save_dtype(data_dtype: np.dtype[Any], forced: str | np.dtype[Any] | None) -> np.dtype[Any]:
    if forced is not None:
        wanted = np.dtype(forced)
        if wanted not in (np.dtype(np.uint16), np.dtype(np.float32)):
            raise MibiTiffError(f"A MIBItiff holds uint16 or float32 data; dtype={wanted} is not.")
        return wanted
    if np.issubdtype(data_dtype, np.floating):
        return np.dtype(np.float32)
    if np.issubdtype(data_dtype, np.integer) or data_dtype == np.bool_:
        return np.dtype(np.uint16)
    raise MibiTiffError(
        f"A MIBItiff holds counts (uint16) or float32; {data_dtype} data is neither."
    )


def _to_save_dtype(plane: np.ndarray, save_dtype: np.dtype[Any], target: str) -> np.ndarray:
    if plane.ndim != 2:
        raise MibiTiffError(f"Channel {target!r} is not 2-D (shape {plane.shape}).")
    if plane.dtype == save_dtype:
        return plane
    if save_dtype == np.uint16:
        if plane.size and (plane.min() < 0 or plane.max() > np.iinfo(np.uint16).max):
            raise MibiTiffError(
                f"Channel {target!r} has values from {plane.min()} to {plane.max()}, outside "
                f"the 0..65535 of uint16 counts; pass dtype='float32' to store it as float."
            )
        if np.issubdtype(plane.dtype, np.floating) and not np.array_equal(plane, np.round(plane)):
            raise MibiTiffError(
                f"Channel {target!r} has fractional values that uint16 counts cannot hold; "
                f"pass dtype='float32'."
            )
    return plane.astype(save_dtype)


def _tiff_datetime(date: Any) -> str:
    if isinstance(date, str):
        try:
            date = _dt.datetime.fromisoformat(date)
        except ValueError as exc:
            raise MibiTiffError(
                f"metadata['date'] must be a datetime or an ISO 8601 string; got {date!r}."
            ) from exc
    if not isinstance(date, _dt.datetime):
        raise MibiTiffError(f"metadata['date'] must be a datetime; got {type(date).__name__}.")
    return date.strftime(_TIFF_DATETIME)


def _image_description(metadata: Mapping[str, Any]) -> dict[str, Any]:
    description: dict[str, Any] = {}
    for key, value in metadata.items():
        bare = key[len("mibi.") :] if key.startswith("mibi.") else key
        if key in _PAGE_KEYS:
            raise MibiTiffError(
                f"metadata key {key!r} is set per page by the writer and cannot be given."
            )
        description[f"mibi.{bare}" if bare in _MIBI_KEYS else key] = _jsonable(value, key)
    return description


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, np.generic):
        value = value.item()
    try:
        json.dumps(value)
    except TypeError as exc:
        raise MibiTiffError(
            f"metadata[{key!r}] = {value!r} cannot be stored in the JSON page description."
        ) from exc
    return value
