"""The "annotations" half of the Upload to mikro widget: Shapes/Points layers as ROIs of an image.

Which images a user can mean (those open in the viewer from a mikro server), the checks made
before anything is sent, and the background job. The wire work is the client's
``upload_rois``; this module only chooses what to hand it and words the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from napari_lablink._napari.workers import Task
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.errors import ConfigurationError, LablinkError
from napari_lablink.client.mikro.roi_layers import layer_origin
from napari_lablink.client.mikro.roi_server import RoiMethods
from napari_lablink.client.mikro.rois import SaveReport
from napari_lablink.client.uri import RemoteURI, parse_uri

__all__ = [
    "ROI_LAYER_TYPES",
    "annotation_target",
    "check_annotations",
    "ids_per_layer",
    "open_image_uris",
    "save_annotations",
]

#: The layer kinds that become ROIs.
ROI_LAYER_TYPES = ("shapes", "points")
#: URI kinds that name an image ROIs can belong to (generation 2, generation 1).
_IMAGE_KINDS = ("image", "representation")


def open_image_uris(layers: Sequence[Any]) -> list[str]:
    """The mikro images open in the viewer (their URIs without options), in layer order."""
    found: list[str] = []
    for layer in layers:
        if layer._type_string not in ("image", "labels"):
            continue
        said = (layer.metadata or {}).get("lablink", {}).get("uri")
        if not said or not str(said).startswith("mikro"):
            continue
        try:
            uri = parse_uri(str(said))
        except LablinkError:
            continue
        if uri.kind in _IMAGE_KINDS and uri.object_id is not None:
            text = str(uri.without_options())
            if text not in found:
                found.append(text)
    return found


def annotation_target(image: str, server: str) -> RemoteURI:
    """The image the ROIs go to: ``image`` as typed, or a bare id completed with ``server``
    (the widget's ``.../image`` or ``.../representation`` field)."""
    text = image.strip()
    if not text:
        raise ConfigurationError(
            "name the image the ROIs belong to",
            hint="Pick an open mikro image, or type its URI (…/image/<id>) or its id",
        )
    if "://" not in text:
        text = f"{server.strip().rstrip('/')}/{text}"
    uri = parse_uri(text)
    if uri.scheme != "mikro" or uri.kind not in _IMAGE_KINDS or uri.object_id is None:
        raise ConfigurationError(
            f"{uri.without_options()} is not a mikro image",
            hint="ROIs belong to one image: mikro+http://HOST:PORT/PREFIX/image/<id> "
            "(generation 2) or …/representation/<id> (generation 1)",
        )
    return uri


def check_annotations(layers: Sequence[Any], target: RemoteURI) -> str | None:
    """Why these layers cannot become ROIs of ``target`` (None if they can), found before
    anything is sent."""
    wrong = [
        f"{layer.name!r} ({layer._type_string})"
        for layer in layers
        if layer._type_string not in ROI_LAYER_TYPES
    ]
    if wrong:
        return (
            f"{', '.join(wrong)}: only Shapes and Points layers become ROIs; upload image "
            "and labels layers with the 'images' choice"
        )
    for layer in layers:
        origin = layer_origin({"metadata": layer.metadata or {}})
        if origin is None:
            continue
        source = parse_uri(origin)
        if source.server != target.server:
            return (
                f"{layer.name!r} holds the ROIs of an image on {source.server}, not on "
                f"{target.server}; copy its shapes into a new layer to put them on this server"
            )
        if (source.kind, source.object_id) != (target.kind, target.object_id):
            return (
                f"{layer.name!r} holds the ROIs of {source.without_options()}, not of "
                f"{target.without_options()}; copy its shapes into a new layer to put them "
                "on another image"
            )
    return None


def save_annotations(
    task: Task, target: RemoteURI, layer_data: list[tuple[Any, dict[str, Any], str]]
) -> SaveReport:
    """In a worker thread: the layers' shapes and points saved as ROIs of ``target``."""
    server = shared_connection(target)
    if not isinstance(server, RoiMethods):
        raise ConfigurationError(f"{target.server} keeps no ROIs", hint="Pick a mikro image")
    return server.upload_rois(target, layer_data, progress=task.report, cancel=task.cancelled)


def ids_per_layer(report: SaveReport, sizes: Sequence[int]) -> list[list[str]]:
    """``report.ids`` (one per shape, layers in order) split back into each layer's ids."""
    out, start = [], 0
    for size in sizes:
        out.append(report.ids[start : start + size])
        start += size
    return out
