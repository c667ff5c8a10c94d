"""npe2 writer for server targets: ``viewer.layers.save(URI, plugin="napari-lablink")``.

The path names the server and the kind of object; the server assigns the id. The writer returns
the URIs of what it created (napari reports them as the written paths). npe2 allows one writer
without file extensions per plugin to be found, so :func:`write_remote` dispatches on the scheme:
``mikro+http://HOST:PORT/image`` uploads to mikro, ``mibi+http://HOST:PORT/runs/LABEL`` saves the
layers as a MIBItiff and uploads it to that MIBItracker run.

npe2 picks writers by the file extension it sees after the path's last ``/``: a target such as
``...image?s3=http://127.0.0.1:9000`` reads as extension ``.1:9000`` and reaches no writer at all.
Written with ``%2E`` for each dot of the endpoint the target has no extension and means the same.
"""

from __future__ import annotations

from typing import Any

from napari_lablink._napari.rois import ROI_LAYER_TYPES, write_rois
from napari_lablink._napari.upload.mikro_layers import jobs_from_layer_data
from napari_lablink._napari.upload.tracker import upload_layers_to_run
from napari_lablink.client.connection import as_uploader, shared_connection
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.mikro.server import NO_S3_ENDPOINT
from napari_lablink.client.uri import parse_uri

__all__ = ["write_mikro", "write_remote"]

_SAVE_ENDPOINT_HINT = (
    "napari takes a dot after the last '/' of a save target for a file extension, so write "
    "the endpoint's dots as %2E (for example "
    "mikro+http://HOST:PORT/image?s3=http://127%2E0%2E0%2E1:9000), or set it once: "
    "LABLINK_S3_ENDPOINT, s3 = '...' in servers.toml, or the plugin's 'Default S3 endpoint' "
    "setting"
)


#: The layer types that upload as images. The manifest hands this writer every layer type, so a
#: points or shapes layer gets this explanation instead of npe2's bare "No writer found".
UPLOADABLE = ("image", "labels", *ROI_LAYER_TYPES)


def write_remote(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Upload layers to the server ``path`` names (mikro, or a MIBItracker run); Shapes and
    Points layers saved to a mikro image (``.../image/ID``) become its ROIs."""
    others = sorted({kind for _, _, kind in layer_data if kind not in UPLOADABLE})
    if others:
        raise ConfigurationError(
            f"Only image, labels, shapes and points layers save to a server; "
            f"{', '.join(others)} layers do not",
            obj=str(parse_uri(path).without_options()),
            hint="Select only image and labels layers (pixels), or shapes and points layers "
            "(ROIs of a mikro image) before saving to the server",
        )
    if parse_uri(path).scheme == "mibi":
        return upload_layers_to_run(path, layer_data)
    if any(layer_type in ROI_LAYER_TYPES for _, _, layer_type in layer_data):
        return write_rois(path, layer_data)
    return write_mikro(path, layer_data)


def write_mikro(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    target = parse_uri(path)
    if target.scheme != "mikro" or target.object_id is not None:
        raise ConfigurationError(
            f"{target.without_options()} is not a mikro upload target",
            hint="Save to mikro+http://HOST:PORT/image or .../representation (no id: "
            "the server assigns it)",
        )
    server = as_uploader(shared_connection(target))
    try:
        return [
            server.upload(job.data, kind=target.kind, **job.kwargs())
            for job in jobs_from_layer_data(layer_data, path)
        ]
    except ConfigurationError as exc:
        if exc.message != NO_S3_ENDPOINT:
            raise
        # The core's advice ("add ?s3=...") fails here: napari would not call this writer.
        raise ConfigurationError(
            exc.message, server=exc.server, obj=exc.obj, hint=_SAVE_ENDPOINT_HINT
        ) from None
