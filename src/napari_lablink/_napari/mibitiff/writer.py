"""npe2 writer for image layers as a MIBItiff: to a local ``*.tiff`` or uploaded to a run.

napari picks writers by file extension. This writer carries ``.tiff``/``.tif``; a remote target
has no extension, and npe2 then hands a single layer to the first writer with extensions after
appending that writer's first extension (``mibi+http://HOST/runs/LABEL`` becomes ``...LABEL.tiff``).
So a remote URI arriving here loses that suffix and goes to the same dispatcher as the
extension-less writer: saving one layer or many to a server URI behaves the same.
"""

from __future__ import annotations

import os
from typing import Any

from napari_lablink._napari.mibitiff.layers import mibi_layers
from napari_lablink._napari.writers import write_remote
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.formats.mibitiff import MibiTiffError, write_mibitiff
from napari_lablink.uri import is_remote_uri

__all__ = ["write_mibitiff_layers"]

#: The first of the manifest's ``filename_extensions``: what npe2 appends to a bare path.
APPENDED_EXTENSION = ".tiff"


def write_mibitiff_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write 2-D image layers named ``Target (mass)`` as one MIBItiff; returns what was written."""
    path = os.fspath(path)
    if is_remote_uri(path):
        return write_remote(path.removesuffix(APPENDED_EXTENSION), layer_data)
    content = mibi_layers(layer_data)
    try:
        write_mibitiff(
            path,
            content.data,
            content.channels,
            content.metadata,
            fov_size_um=content.fov_size_um,
        )
    except MibiTiffError as exc:
        raise ConfigurationError(f"Cannot save {', '.join(content.layer_names)}: {exc}") from None
    return [path]
