"""napari image layers -> the pieces of a MIBItiff: channel stack, (mass, target) pairs, metadata.

A MIBItiff channel is a mass and a target, so each layer must say both in its name, the way the
reader and the tracker name them: ``CD45 (150)``. The field of view size comes from the layers'
scale in micrometres, or from the source file/tracker image the layers were opened from.
Only napari facts are read here; the file format lives in ``formats.mibitiff``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import dask.array as da

from napari_lablink.client.errors import ConfigurationError

__all__ = ["MibiLayers", "mibi_layers", "parse_channel_name"]

_NAME_RE = re.compile(r"^\s*(?P<target>.*?\S)\s*\(\s*(?P<mass>\d+)\s*\)\s*$")
_TO_MICROMETRES = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "micron": 1.0, "nm": 1e-3,
                   "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3}  # fmt: skip
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


def _pixel_size_um(meta: dict[str, Any]) -> float | None:
    """Micrometres per pixel along x from the layer's scale and units (None: unknown)."""
    scale = meta.get("scale")
    units = meta.get("units")
    if scale is None or units is None or not len(scale):
        return None
    factor = _TO_MICROMETRES.get(str(units[-1]).strip().lower())
    return float(scale[-1]) * factor if factor is not None else None


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
    if not fov_size:
        raise ConfigurationError(
            f"The field of view size of {names[0]!r} is unknown: its scale is in pixels",
            hint="Set the layers' scale in micrometres per pixel (layer.scale, units 'um')",
        )
    return MibiLayers(
        data=da.stack([da.asarray(a) for a in arrays]),
        channels=channels,
        fov_size_um=float(fov_size),
        metadata=_source_metadata(metas[0]),
        layer_names=names,
    )
