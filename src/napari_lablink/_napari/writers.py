"""npe2 writer for server targets: ``viewer.layers.save(URI, plugin="napari-lablink")``.

The path names the server and the kind of object; the server assigns the id. The writer returns
the URIs of what it created (napari reports them as the written paths). npe2 allows one writer
without file extensions per plugin to be found, so :func:`write_remote` dispatches on the scheme:
``mikro+http://HOST:PORT/image`` uploads to mikro, ``mibi+http://HOST:PORT/runs/LABEL`` saves the
layers as a MIBItiff and uploads it to that MIBItracker run.
"""

from __future__ import annotations

from typing import Any

from napari_lablink._napari.tracker_upload import upload_layers_to_run
from napari_lablink._napari.upload_layers import jobs_from_layer_data
from napari_lablink.client.connection import as_uploader, shared_connection
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.uri import parse_uri

__all__ = ["write_mikro", "write_remote"]


#: The layer types that upload as images. The manifest hands this writer every layer type, so a
#: points or shapes layer gets this explanation instead of npe2's bare "No writer found".
UPLOADABLE = ("image", "labels")


def write_remote(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Upload layers to the server ``path`` names (mikro, or a MIBItracker run)."""
    others = sorted({kind for _, _, kind in layer_data if kind not in UPLOADABLE})
    if others:
        raise ConfigurationError(
            f"Only image and labels layers upload to a server; {', '.join(others)} layers do not",
            obj=str(parse_uri(path).without_options()),
            hint="Select only image and labels layers before saving to the server",
        )
    if parse_uri(path).scheme == "mibi":
        return upload_layers_to_run(path, layer_data)
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
    return [
        server.upload(job.data, kind=target.kind, **job.kwargs())
        for job in jobs_from_layer_data(layer_data, path)
    ]
