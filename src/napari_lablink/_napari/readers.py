"""npe2 reader for remote URIs: ``viewer.open(uri)``, ``napari <uri>`` and dropped links.

The reader only decides whether a path is ours and hands off to the client core; a failure becomes
a napari notification and napari's "nothing to add" sentinel, so no broken layer is added and no
traceback dialog appears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from napari.utils.notifications import show_error

from napari_lablink._napari.layers import layer_data
from napari_lablink._napari.rois import read_rois
from napari_lablink.client.connection import open_image
from napari_lablink.client.errors import LablinkError
from napari_lablink.client.uri import is_remote_uri, parse_uri

__all__ = ["get_reader", "read_remote"]

log = logging.getLogger(__name__)

#: napari's "read fine, nothing to add" answer.
_NOTHING = [(None,)]


def get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    paths = [path] if isinstance(path, str) else list(path)
    if paths and all(is_remote_uri(str(p)) for p in paths):
        return read_remote
    return None


def read_remote(path: str | list[str]) -> list:
    paths = [path] if isinstance(path, str) else list(path)
    layers: list = []
    for uri in paths:
        try:
            image = open_image(str(uri))
            layers.extend(layer_data(image))
            layers.extend(read_rois(parse_uri(str(uri)), image.name, image.uri))
        except LablinkError as exc:
            show_error(f"Could not open {_shown(uri)}: {exc}")
        except Exception as exc:  # a bug of ours must still not cost the user a traceback dialog
            log.exception("unexpected error opening %s", _shown(uri))
            show_error(f"Could not open {_shown(uri)}: unexpected {type(exc).__name__}: {exc}")
    return layers or _NOTHING


def _shown(uri: str) -> str:
    return str(uri).split("?", 1)[0]
