"""napari image layers -> the pieces of a MIBItiff: channel stack, (mass, target) pairs, metadata.

A MIBItiff channel is a mass and a target, so each layer must say both in its name, the way the
reader and the tracker name them: ``CD45 (150)``. The field of view size comes from the layers'
scale in micrometres, or from the source file/tracker image the layers were opened from. A scale
without units (napari's default unit is the pixel, and most code never sets units) is taken as
micrometres per pixel, with a note saying so; an unscaled layer (scale 1, no units) has no size.
Only napari facts are read here; the file format lives in ``formats.mibitiff``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import IO, Any

import dask.array as da

from napari_lablink.client.errors import ConfigurationError
from napari_lablink.formats.mibitiff import MibiTiffError, write_mibitiff

__all__ = ["MibiLayers", "mibi_layers", "parse_channel_name"]

_NAME_RE = re.compile(r"^\s*(?P<target>.*?\S)\s*\(\s*(?P<mass>\d+)\s*\)\s*$")
_TO_MICROMETRES = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "micron": 1.0, "nm": 1e-3,
                   "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3}  # fmt: skip
#: What napari and callers write for "no unit": the scale is then a bare number.
_NO_UNITS = frozenset({"", "none", "pixel", "pixels", "px"})
#: Metadata the writer sets per file or per page; never carried over from a source.
_NOT_CARRIED = frozenset({"size", "image.type", "channel.mass", "channel.target", "shape"})


@dataclass
class MibiLayers:
    """What ``write_mibitiff`` needs, built from layers (data stays lazy when it was)."""

    data: da.Array
    channels: list[tuple[int, str]]
    fov_size_um: float
    metadata: dict[str, Any] = field(default_factory=dict)
    layer_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Assumptions made on the user's behalf, for a notification (e.g. a unit-less scale)."""

    def write(
        self, destination: str | IO[bytes], metadata: dict[str, Any], server: str | None = None
    ) -> None:
        """Write the layers as one MIBItiff; what the format refuses is the user's to fix."""
        try:
            write_mibitiff(
                destination, self.data, self.channels, metadata, fov_size_um=self.fov_size_um
            )
        except MibiTiffError as exc:
            raise ConfigurationError(
                f"Cannot save {', '.join(self.layer_names)} as a MIBItiff: {exc}", server=server
            ) from None


def parse_channel_name(name: str) -> tuple[str, int] | None:
    """``"CD45 (150)"`` -> ``("CD45", 150)``; None when the name carries no mass."""
    match = _NAME_RE.match(name)
    return (match.group("target"), int(match.group("mass"))) if match else None


def _lablink(meta: dict[str, Any]) -> dict[str, Any]:
    return (meta.get("metadata") or {}).get("lablink") or {}


def _source_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """MIBItiff metadata of the file or tracker image a layer was opened from, if any."""
    lablink = _lablink(meta)
    if isinstance(lablink.get("mibitiff"), dict):
        return {k: v for k, v in lablink["mibitiff"].items() if k not in _NOT_CARRIED}
    server = lablink.get("server_metadata") or {}
    if "image_id" not in server:  # not a tracker image
        return {}
    run = server.get("run") or {}
    carried = {
        "run": run.get("name"),
        "fov_id": server.get("number"),
        "folder": server.get("folder"),
        "fov_name": server.get("description"),
        "dwell": server.get("dwell_time"),
    }
    return {k: v for k, v in carried.items() if v is not None}


def _source_fov_size(meta: dict[str, Any]) -> float | None:
    lablink = _lablink(meta)
    mibitiff = lablink.get("mibitiff") or {}
    server = lablink.get("server_metadata") or {}
    for value in (mibitiff.get("size"), server.get("fov_size_um")):
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def _x_unit(meta: dict[str, Any]) -> str:
    """The unit of the last (x) axis, lower case; "" when none is given."""
    units = meta.get("units")
    if isinstance(units, str):
        return units.strip().lower()
    if not units or units[-1] is None:
        return ""
    return str(units[-1]).strip().lower()


def _pixel_size_um(meta: dict[str, Any]) -> float | None:
    """Micrometres per pixel along x from the layer's scale in length units (None: unknown)."""
    scale = meta.get("scale")
    if scale is None or not len(scale):
        return None
    factor = _TO_MICROMETRES.get(_x_unit(meta))
    return float(scale[-1]) * factor if factor is not None else None


def _unitless_scale(meta: dict[str, Any]) -> float | None:
    """The x scale of a layer without length units, unless it is napari's default of 1."""
    scale = meta.get("scale")
    if scale is None or not len(scale) or _x_unit(meta) not in _NO_UNITS:
        return None
    value = float(scale[-1])
    return value if value > 0 and value != 1.0 else None


def _wider_than_float32(array: Any) -> bool:
    return array.dtype.kind == "f" and array.dtype.itemsize > 4


def mibi_layers(layer_data: list[tuple[Any, dict[str, Any], str]]) -> MibiLayers:
    """The MIBItiff content of a set of 2-D image layers of one shape, in layer order."""
    if not layer_data:
        raise ConfigurationError("No layers to save as a MIBItiff", hint="Select image layers")
    arrays: list[Any] = []
    channels: list[tuple[int, str]] = []
    names: list[str] = []
    unnamed: list[str] = []
    for data, meta, kind in layer_data:
        name = str(meta.get("name", "layer"))
        array = data[0] if meta.get("multiscale") and isinstance(data, list | tuple) else data
        if kind != "image" or meta.get("rgb") or array.ndim != 2:
            raise ConfigurationError(
                f"Layer {name!r} is not a 2-D grayscale image layer (it is a {kind} layer of "
                f"shape {tuple(array.shape)})",
                hint="A MIBItiff holds one 2-D plane per channel: save only such image layers",
            )
        parsed = parse_channel_name(name)
        if parsed is None:
            unnamed.append(name)
            continue
        target, mass = parsed
        arrays.append(array)
        channels.append((mass, target))
        names.append(name)
    if unnamed:
        listed = ", ".join(repr(n) for n in unnamed)
        raise ConfigurationError(
            f"MIBItiff channels need a target and a mass; layer(s) {listed} give no mass",
            hint="Rename each layer 'Target (mass)', for example 'CD45 (150)'",
        )
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) > 1:
        sizes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(names, arrays, strict=True))
        raise ConfigurationError(
            f"The channels of a MIBItiff have one size; these layers differ: {sizes}",
            hint="Save layers of one shape together",
        )
    metas = [meta for _, meta, _ in layer_data]
    width = arrays[0].shape[-1]
    pixel_size = _pixel_size_um(metas[0])
    fov_size = pixel_size * width if pixel_size else _source_fov_size(metas[0])
    notes: list[str] = []
    if not fov_size and (assumed := _unitless_scale(metas[0])):
        fov_size = assumed * width
        notes.append(
            f"The scale of {names[0]!r} has no units; took it as {assumed:g} micrometres per "
            f"pixel (field of view {fov_size:g} um). Set the layer's units if that is wrong"
        )
    wide = [(n, a.dtype) for n, a in zip(names, arrays, strict=True) if _wider_than_float32(a)]
    if wide:
        listed = ", ".join(f"{n!r} ({dtype})" for n, dtype in wide)
        verb = "is" if len(wide) == 1 else "are"
        notes.append(f"A MIBItiff holds float32, so {listed} {verb} saved with float32 precision")
    if not fov_size:
        raise ConfigurationError(
            f"The field of view size of {names[0]!r} is unknown: its scale is neither a length "
            f"(um, nm, mm) nor a bare number other than 1, and it comes from no MIBItiff or "
            f"tracker image",
            hint="Set the layers' scale in micrometres per pixel (layer.scale; layer.units 'um')",
        )
    return MibiLayers(
        data=da.stack([da.asarray(a) for a in arrays]),
        channels=channels,
        fov_size_um=float(fov_size),
        metadata=_source_metadata(metas[0]),
        layer_names=names,
        notes=notes,
    )
