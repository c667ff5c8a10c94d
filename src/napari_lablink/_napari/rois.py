"""mikro ROIs in napari: a Shapes and a Points layer on the image's pixels, saved back on demand.

Reading: the layers get the image's ``scale`` and hold plain pixel indices, so every vertex sits
on the pixel it names in 2-D and 3-D. Each shape remembers its ROI in the ``roi_id`` feature
and the layer the image and ROI ids it showed (``metadata["lablink"]["rois"]``); saving uses
them to update and delete instead of copying. Whether the reader adds ROI layers is the URI's
``rois`` option: ``auto`` (the default) adds them when the image has ROIs, ``1`` always (empty
layers to draw in, kept live), ``0`` never.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from napari.utils.notifications import show_warning

from napari_lablink.client.connection import shared_connection
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.mikro.roi_layers import spatial_dims
from napari_lablink.client.mikro.roi_server import RoiMethods
from napari_lablink.client.mikro.roi_wire import ImageGeometry
from napari_lablink.client.mikro.rois import Roi, SaveReport
from napari_lablink.client.uri import RemoteURI, parse_uri

__all__ = [
    "ROI_LAYER_TYPES",
    "read_rois",
    "roi_layer_data",
    "wants_rois",
    "write_rois",
]

log = logging.getLogger(__name__)

LayerDataTuple = tuple[Any, dict[str, Any], str]
ROI_LAYER_TYPES = ("shapes", "points")
_EDGE = "#ffd700"


def wants_rois(uri: RemoteURI) -> str:
    """``auto``, ``always`` or ``never``, from the URI's ``rois`` option."""
    said = (uri.option("rois") or "auto").strip().lower()
    if said in ("1", "true", "yes", "on", "always"):
        return "always"
    if said in ("0", "false", "no", "off", "never"):
        return "never"
    return "auto"


def _features(rois: Sequence[Roi]) -> pd.DataFrame:
    # Typed columns: an empty layer must still take "" ids for the shapes drawn into it.
    return pd.DataFrame(
        {
            "roi_id": pd.Series([r.id or "" for r in rois], dtype=object),
            "label": pd.Series([r.label or "" for r in rois], dtype=object),
            "c": pd.Series([round(r.vertices[0, 0]) for r in rois], dtype=int),
        }
    )


def roi_layer_data(
    rois: Sequence[Roi], geometry: ImageGeometry, image_uri: str, name: str, *, live: bool
) -> list[LayerDataTuple]:
    """A Shapes layer and a Points layer (each only when it has ROIs, or always when ``live``)
    for ``rois`` of the image ``image_uri``."""
    dims = spatial_dims(geometry)
    scale = tuple(geometry.pixel_size.get(d, 1.0) for d in dims)
    shapes = [r for r in rois if r.kind != "point"]
    points = [r for r in rois if r.kind == "point"]
    defaults = {"roi_id": "", "label": "", "c": 0}

    def common(layer_rois: Sequence[Roi], kind: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": f"{name} {kind}",
            "scale": scale,
            "features": _features(layer_rois),
            "feature_defaults": defaults,
            "metadata": {
                "lablink": {
                    "uri": image_uri,
                    "dims": dims,
                    "rois": {
                        "image": image_uri,
                        "ids": [r.id for r in layer_rois if r.id],
                        "live": live,
                    },
                }
            },
        }
        if geometry.pixel_size:
            meta["units"] = tuple("um" if d in geometry.pixel_size else "pixel" for d in dims)
            meta["axis_labels"] = dims
        if any(r.label for r in layer_rois):
            meta["text"] = {"string": "{label}", "color": "white", "size": 10}
        return meta

    out: list[LayerDataTuple] = []
    if shapes or live:
        meta = common(shapes, "ROIs")
        colors = [r.color or _EDGE for r in shapes]
        meta.update(
            shape_type=[r.kind for r in shapes],
            edge_color=colors if shapes else _EDGE,
            face_color="transparent",
            edge_width=1.5,
            ndim=len(dims),
        )
        out.append(([r.along(dims) for r in shapes], meta, "shapes"))
    if points or live:
        meta = common(points, "points")
        meta.update(size=6, face_color=_EDGE, border_color="black", ndim=len(dims))
        data = np.asarray([r.along(dims)[0] for r in points]).reshape(-1, len(dims))
        out.append((data, meta, "points"))
    return out


def read_rois(
    uri: RemoteURI, image_name: str, image_uri: str, *, watch: bool = True
) -> list[LayerDataTuple]:
    """The ROI layers the reader adds next to the image ``uri`` (see the module docstring).

    ``watch=False`` leaves following live changes to the caller (:func:`watch_current_viewer`
    on the Qt thread), for when this runs in a worker."""
    mode = wants_rois(uri)
    if mode == "never" or uri.scheme != "mikro":
        return []
    server = shared_connection(uri)
    if not isinstance(server, RoiMethods):
        return []
    listing = server.rois(uri)
    for message in listing.skipped:
        show_warning(f"{image_name}: {message}")
    if not listing.rois and mode == "auto":
        return []
    geometry = server.roi_geometry(uri)
    if watch:
        watch_current_viewer()
    return roi_layer_data(listing.rois, geometry, image_uri, image_name, live=True)


def watch_current_viewer() -> None:
    import napari

    from napari_lablink._napari.roi_live import watch_viewer

    watch_viewer(napari.current_viewer())


def write_rois(path: str, layer_data: list[LayerDataTuple]) -> list[str]:
    """Save Shapes/Points layers as ROIs of the image ``path`` names; returns ``[path]``.

    The saved layers in the current viewer learn the ids of their ROIs, so the next save
    updates them rather than adding copies.
    """
    target = parse_uri(path)
    others = [t for _, _, t in layer_data if t not in ROI_LAYER_TYPES]
    if others:
        raise ConfigurationError(
            f"{', '.join(sorted(set(others)))} layers cannot be saved together with ROIs",
            obj=str(target.without_options()),
            hint="Save image layers to .../image (no id) and Shapes/Points layers to "
            ".../image/<id> separately",
        )
    if target.object_id is None:
        raise ConfigurationError(
            "ROIs belong to an image: name the image to save Shapes/Points layers to",
            obj=str(target.without_options()),
            hint="Save them to .../image/<id> (the image the ROIs were drawn on)",
        )
    server = shared_connection(target)
    if not isinstance(server, RoiMethods):
        raise ConfigurationError(
            f"{target.scheme} servers keep no ROIs", hint="Save ROIs to a mikro image"
        )
    for data, meta, layer_type in layer_data:
        report = server.upload_rois(target, (data, meta, layer_type))
        for warning in report.warnings:
            show_warning(f"{meta.get('name', layer_type)}: {warning}")
        _remember(meta, layer_type, report, str(target.without_options()))
    return [path]


def _remember(meta: dict[str, Any], layer_type: str, report: SaveReport, image_uri: str) -> None:
    """Tell the saved layer which ROI each of its shapes is now.

    napari hands a writer layer data, not layers. The data's ``metadata`` is the layer's own
    ``metadata`` dict (``as_layer_data_tuple`` does not copy it), so that object identifies the
    layer in whichever viewer holds it, even when another layer somewhere has its name. Data
    without that dict (made by hand) falls back to the name in the current viewer, and only
    when exactly one layer of that kind has it.
    """
    import napari

    current = napari.current_viewer()
    viewers = [current, *napari.Viewer._instances] if current is not None else []
    layers = [
        layer for viewer in viewers for layer in viewer.layers if layer._type_string == layer_type
    ]
    if "metadata" in meta:
        found = [layer for layer in layers if layer.metadata is meta["metadata"]][:1]
    elif current is not None:
        found = [
            layer
            for layer in current.layers
            if layer._type_string == layer_type and layer.name == meta.get("name")
        ]
    else:  # a script without a viewer: nothing to tell
        return
    if len(found) != 1 or len(found[0].data) != len(report.ids):
        return
    from napari_lablink._napari.roi_live import remember_ids

    remember_ids(found[0], report.ids, image_uri)
