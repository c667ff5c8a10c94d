"""napari layers -> upload arguments: which layers go together, their axes, scale and names.

Image layers that share a shape become one multichannel upload (a ``c`` axis, one channel per
layer, in layer order); every Labels layer and every RGB layer is an upload of its own. Only
napari facts are read here (axis labels, scale, units, colormaps, metadata); the protocol lives in
the client core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask.array as da

from napari_lablink.client.colors import parse_color
from napari_lablink.client.models import Channel
from napari_lablink.client.uri import parse_uri

__all__ = ["UploadJob", "jobs_from_layer_data"]

#: napari's placeholder axis labels ("-2", "axis -1", ...): the user has not named the axes.
_UNSET_PREFIXES = ("-", "axis")
_TO_MICROMETRES = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "micron": 1.0, "nm": 1e-3,
                   "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3}  # fmt: skip


@dataclass
class UploadJob:
    """Keyword arguments for ``MikroServer.upload`` built from one or more layers."""

    data: Any
    name: str
    dims: tuple[str, ...] | None
    channels: list[Channel] = field(default_factory=list)
    pixel_size: dict[str, float] = field(default_factory=dict)
    labels: bool = False
    rgb: bool = False
    origins: list[str] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dims": self.dims,
            "channels": self.channels,
            "pixel_size": self.pixel_size,
            "labels": self.labels,
            "rgb": self.rgb,
            "origins": self.origins,
        }


def _full_resolution(data: Any, meta: dict[str, Any]) -> Any:
    return data[0] if meta.get("multiscale") and isinstance(data, list | tuple) else data


def _axis_names(meta: dict[str, Any], ndim: int) -> tuple[str, ...] | None:
    labels = meta.get("axis_labels")
    if labels is None or len(labels) != ndim:
        return None
    names = tuple(str(label) for label in labels)
    if all(name.strip().lower().startswith(_UNSET_PREFIXES) for name in names):
        return None
    return names


def _spatial_names(dims: tuple[str, ...] | None, ndim: int) -> tuple[str, ...] | None:
    """The layer's axis names, napari's conventional ones when unlabelled, None if ambiguous."""
    if dims is not None:
        return tuple(d.lower() for d in dims)
    return ("t", "z", "y", "x")[-ndim:] if 2 <= ndim <= 4 else None


def _pixel_size(meta: dict[str, Any], names: tuple[str, ...] | None) -> dict[str, float]:
    if names is None:
        return {}
    scale = meta.get("scale")
    units = meta.get("units")
    scale = [1.0] * len(names) if scale is None else list(scale)
    units = ["pixel"] * len(names) if units is None else [str(u) for u in units]
    sizes: dict[str, float] = {}
    for name, value, unit in zip(names, scale, units, strict=False):
        if name not in ("x", "y", "z"):
            continue
        factor = _TO_MICROMETRES.get(str(unit).strip().lower())
        if factor is None and float(value) == 1.0:
            continue  # unscaled pixels: no physical size known
        sizes[name] = float(value) * (factor or 1.0)
    return sizes


def _origin(meta: dict[str, Any], target_server: str) -> list[str]:
    uri = (meta.get("metadata") or {}).get("lablink", {}).get("uri")
    if not uri:
        return []
    try:
        source = parse_uri(uri)
    except ValueError:
        return []
    same_server = source.server == target_server and source.kind == "representation"
    return [source.object_id] if same_server and source.object_id else []


def _color(meta: dict[str, Any]) -> tuple[float, float, float] | None:
    colormap = meta.get("colormap")
    if isinstance(colormap, dict):
        colors = colormap.get("colors")
        if colors is not None and len(colors):
            return tuple(float(v) for v in colors[-1][:3])  # type: ignore[return-value]
        return parse_color(colormap.get("name"))
    return parse_color(colormap)


def _contrast_limits(meta: dict[str, Any]) -> tuple[float, float] | None:
    limits = meta.get("contrast_limits")
    if limits is None or len(limits) != 2 or not float(limits[1]) > float(limits[0]):
        return None
    return float(limits[0]), float(limits[1])


def jobs_from_layer_data(
    layer_data: list[tuple], target: str, name: str | None = None
) -> list[UploadJob]:
    """Group napari layer data tuples into uploads for the server ``target`` names.

    ``name`` overrides the uploaded image's name (for a single group); otherwise the layer's
    name, or the shared source image's name for channels that came from one server image.
    """
    server = parse_uri(target).server
    images: dict[tuple, list[tuple[Any, dict, str]]] = {}
    jobs: list[UploadJob] = []
    for data, meta, kind in layer_data:
        array = _full_resolution(data, meta)
        if kind == "labels" or meta.get("rgb"):
            dims = _axis_names(meta, array.ndim - (1 if meta.get("rgb") else 0))
            names = _spatial_names(dims, array.ndim - (1 if meta.get("rgb") else 0))
            jobs.append(
                UploadJob(
                    data=array,
                    name=name or meta.get("name", "layer"),
                    dims=None if dims is None else (*dims, "c") if meta.get("rgb") else dims,
                    pixel_size=_pixel_size(meta, names),
                    labels=kind == "labels",
                    rgb=bool(meta.get("rgb")),
                    origins=_origin(meta, server),
                )
            )
        elif kind == "image":
            images.setdefault((tuple(array.shape), str(array.dtype)), []).append(
                (array, meta, kind)
            )
    for group in images.values():
        arrays = [a for a, _, _ in group]
        metas = [m for _, m, _ in group]
        first = metas[0]
        names = _spatial_names(_axis_names(first, arrays[0].ndim), arrays[0].ndim)
        source_names = {(m.get("metadata") or {}).get("lablink", {}).get("name") for m in metas}
        shared = source_names.pop() if len(source_names) == 1 else None
        multichannel = len(arrays) > 1
        jobs.append(
            UploadJob(
                data=da.stack([da.asarray(a) for a in arrays]) if multichannel else arrays[0],
                name=name or (shared if multichannel and shared else first.get("name", "image")),
                # Stacked channels need names: unnamed, a 6-D stack would be refused anyway.
                dims=("c", *names) if multichannel and names else names,
                channels=[
                    Channel(
                        name=m.get("name", f"Channel {i}"),
                        color=_color(m),
                        contrast_limits=_contrast_limits(m),
                    )
                    for i, m in enumerate(metas)
                ],
                pixel_size=_pixel_size(first, names),
                origins=_origin(first, server),
            )
        )
    return jobs
