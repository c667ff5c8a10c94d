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

from napari.utils.notifications import show_warning

from napari_lablink._napari.mibitiff.layers import mibi_layers
from napari_lablink._napari.writers import write_remote
from napari_lablink.client.uri import is_remote_uri

__all__ = ["write_mibitiff_layers"]

#: The first of the manifest's ``filename_extensions``: what npe2 appends to a bare path.
APPENDED_EXTENSION = ".tiff"


def write_mibitiff_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write 2-D image layers named ``Target (mass)`` as one MIBItiff; returns what was written."""
    path = os.fspath(path)
    if is_remote_uri(path):
        return write_remote(path.removesuffix(APPENDED_EXTENSION), layer_data)
    content = mibi_layers(layer_data)
    for note in content.notes:
        show_warning(note)
    content.write(path, content.metadata)
    return [path]
