"""napari's Shapes/Points layer data <-> ROIs in an image's pixel grid (numpy only, no napari).

A layer tuple ``(data, meta, layer_type)`` holds vertices in the layer's data coordinates; napari
shows them at ``data * scale + translate`` (world, micrometres for our images). An image pixel
``i`` sits at world ``i * pixel_size``, so a vertex's pixel index is
``(data * scale + translate) / pixel_size``, per axis. Layers made by the reader carry the
image's scale and plain pixel indices, so both directions are exact there.

A layer that came from the server names the image it came from in
``metadata["lablink"]["rois"]["image"]``, the ROIs it showed in ``...["ids"]`` and, per shape,
the ROI it is in the ``roi_id`` feature; that is what lets saving update and delete instead of
creating copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.mikro.roi_wire import ImageGeometry
from napari_lablink.client.mikro.rois import Roi, colour_hex
from napari_lablink.client.models import DIMS

__all__ = ["LayerRois", "layer_dims", "layer_origin", "layer_rois", "spatial_dims"]

#: napari's Shapes types are our kinds; a Points layer holds points.
_SHAPE_KINDS = ("line", "rectangle", "ellipse", "path", "polygon")
_ROI_ID = "roi_id"
#: Colours nobody chose: napari's defaults for new shapes and points, and the reader's edge.
_DEFAULT_COLOURS = frozenset({"#777777", "#ffffff", "#ffd700"})


def spatial_dims(geometry: ImageGeometry) -> tuple[str, ...]:
    """The axes an image layer of this image has in napari (size-1 t and z are squeezed)."""
    sizes = dict(zip(DIMS, geometry.shape, strict=True))
    return tuple(d for d in ("t", "z", "y", "x") if sizes[d] > 1 or d in ("y", "x"))


@dataclass
class LayerRois:
    """The ROIs of one layer, with what the layer remembers of the server."""

    rois: list[Roi]
    #: ids the layer showed when it was read or last saved (to find deleted shapes)
    known: set[str] = field(default_factory=set)
    #: the image URI the layer came from, if it came from a server
    origin: str | None = None
    warnings: list[str] = field(default_factory=list)


def layer_dims(meta: Mapping[str, Any], ndim: int, geometry: ImageGeometry) -> tuple[str, ...]:
    """Which image axes the layer's ``ndim`` coordinates are.

    Our own layers say it in their metadata; axis labels named like image axes say it next;
    else the layer's axes are the last ``ndim`` axes of the image as napari shows it.
    """
    lablink = (meta.get("metadata") or {}).get("lablink") or {}
    said = tuple(lablink.get("dims") or ())
    if len(said) == ndim and all(d in DIMS[1:] for d in said):
        return said
    labels = tuple(str(a) for a in meta.get("axis_labels") or ())
    if len(labels) == ndim and len(set(labels)) == ndim and all(a in DIMS[1:] for a in labels):
        return labels
    shown = spatial_dims(geometry)
    if ndim <= len(shown):
        return shown[len(shown) - ndim :]
    if ndim <= 4:
        return DIMS[5 - ndim :]
    raise ConfigurationError(
        f"A {ndim}-D layer cannot hold ROIs of a (c, t, z, y, x) image",
        hint="Draw the shapes in a layer with the image's axes",
    )


def _column(features: Any, name: str, n: int) -> list[Any]:
    if features is None:
        return [None] * n
    try:
        values = list(features[name])
    except (KeyError, TypeError, IndexError):
        return [None] * n
    return [None if _missing(v) else v for v in values][:n] + [None] * max(0, n - len(values))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return tuple(str(t) for t in value)


def layer_rois(
    data: Any, meta: Mapping[str, Any], layer_type: str, geometry: ImageGeometry, *, target: str
) -> LayerRois:
    """The ROIs of a Shapes or Points layer tuple, in ``geometry``'s pixel indices.

    ``target`` is the image URI they are for (named in messages). Raises
    :class:`ConfigurationError` for other layer types and for vertices outside the image.
    """
    if layer_type not in ("shapes", "points"):
        raise ConfigurationError(
            f"A {layer_type} layer holds no ROIs",
            obj=target,
            hint="Save Shapes or Points layers as ROIs, image and labels layers as images",
        )
    if layer_type == "points":
        points = np.asarray(data, dtype=float)
        shapes = [p[None, :] for p in points.reshape(len(points), -1)] if len(points) else []
        kinds = ["point"] * len(shapes)
    else:
        shapes = [np.asarray(s, dtype=float) for s in data]
        types = meta.get("shape_type") or ["polygon"] * len(shapes)
        kinds = [str(t) for t in types]
    n = len(shapes)
    ndim = shapes[0].shape[1] if n else int(meta.get("ndim") or 2)
    dims = layer_dims(meta, ndim, geometry)
    scale = np.asarray(meta.get("scale") if meta.get("scale") is not None else [1.0] * ndim)
    translate = np.asarray(
        meta.get("translate") if meta.get("translate") is not None else [0.0] * ndim
    )
    pixel = np.asarray([geometry.pixel_size.get(d, 1.0) for d in dims])
    features = meta.get("features")
    ids, labels, tags = (_column(features, c, n) for c in (_ROI_ID, "label", "tags"))
    channel = _column(features, "c", n)
    colours = _colours(meta, layer_type, n)
    sizes = dict(zip(DIMS, geometry.shape, strict=True))
    rois = []
    for i, (vertices, kind) in enumerate(zip(shapes, kinds, strict=True)):
        if kind not in _SHAPE_KINDS and kind != "point":
            raise ConfigurationError(
                f"Shape {i} is a {kind!r}, which mikro cannot keep", obj=target
            )
        indices = (vertices * scale + translate) / pixel
        five = np.zeros((len(indices), len(DIMS)))
        five[:, 0] = float(channel[i] or 0)
        for column, d in enumerate(dims):
            five[:, DIMS.index(d)] = indices[:, column]
        _check_inside(five, sizes, i, layer_type, target)
        rois.append(
            Roi(
                kind,
                five,
                id=str(ids[i]) if ids[i] is not None else None,
                label=str(labels[i]) if labels[i] is not None else None,
                color=colours[i],
                tags=_tags(tags[i]),
            )
        )
    remembered = _remembered(meta)
    return LayerRois(
        rois,
        known={str(i) for i in remembered.get("ids") or ()},
        origin=layer_origin(meta),
    )


def _colours(meta: Mapping[str, Any], layer_type: str, n: int) -> list[str | None]:
    """Each shape's edge colour (each point's face colour) as hex; None where it is a default,
    so only colours someone picked count as lost when a server cannot keep them."""
    given = meta.get("face_color" if layer_type == "points" else "edge_color")
    if given is None or isinstance(given, str):
        rows: list[Any] = [given] * n
    else:
        array = np.asarray(given, dtype=float)
        rows = [array] * n if array.ndim == 1 else list(array[:n]) + [None] * (n - len(array))
    found = [colour_hex(row) if row is not None else None for row in rows]
    return [None if c is None or c[:7] in _DEFAULT_COLOURS else c for c in found]


def _remembered(meta: Mapping[str, Any]) -> dict[str, Any]:
    lablink = (meta.get("metadata") or {}).get("lablink") or {}
    return lablink.get("rois") or {}


def layer_origin(meta: Mapping[str, Any]) -> str | None:
    """The URI of the image a layer's ROIs came from, if they came from a server."""
    origin = _remembered(meta).get("image")
    return str(origin) if origin else None


def _check_inside(
    five: np.ndarray, sizes: Mapping[str, int], index: int, layer_type: str, target: str
) -> None:
    for axis, d in enumerate(DIMS):
        low, high = five[:, axis].min(), five[:, axis].max()
        if low < -0.5 - 1e-6 or high > sizes[d] - 0.5 + 1e-6:
            what = "Point" if layer_type == "points" else "Shape"
            raise ConfigurationError(
                f"{what} {index} reaches {d} = {low if low < 0 else high:.6g} pixels, outside "
                f"the image (0 to {sizes[d] - 1} along {d})",
                obj=target,
                hint="Move it onto the image, or check the layer's scale and translate",
            )


def rois_for_layers(rois: Sequence[Roi]) -> tuple[list[Roi], list[Roi]]:
    """``rois`` split into (shapes, points), the two layers they are shown in."""
    return [r for r in rois if r.kind != "point"], [r for r in rois if r.kind == "point"]
