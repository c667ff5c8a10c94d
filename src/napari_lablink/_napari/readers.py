"""npe2 reader for remote URIs: ``viewer.open(uri)``, ``napari <uri>`` and dropped links.

The reader only decides whether a path is ours. With a viewer up it hands each URI to
:func:`~napari_lablink._napari.opening.open_in_viewer`, which does the network work in the
background and adds the layers when they are ready, and answers napari's "nothing to add"
sentinel at once: an npe2 reader runs on the Qt thread, and a server must never freeze the window.
Without a viewer (a script calling the reader) it reads in place. Either way a failure is a
notification, never a half-made layer or a traceback dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from napari.utils.notifications import show_error

from napari_lablink._napari.opening import failure_message, open_in_viewer, prepare_layers
from napari_lablink.client.errors import LablinkError
from napari_lablink.client.uri import is_remote_uri

__all__ = ["get_reader", "read_remote", "read_remote_now"]

log = logging.getLogger(__name__)

#: napari's "read fine, nothing to add" answer.
_NOTHING = [(None,)]


def get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    paths = [path] if isinstance(path, str) else list(path)
    if paths and all(is_remote_uri(str(p)) for p in paths):
        return read_remote
    return None


def read_remote(path: str | list[str]) -> list:
    """Open in the background into the current viewer; in place when there is none."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return read_remote_now(path)
    for uri in [path] if isinstance(path, str) else list(path):
        open_in_viewer(viewer, str(uri))
    return _NOTHING


def read_remote_now(path: str | list[str]) -> list:
    """The layer data of every URI in ``path``, read in the calling thread (may block)."""
    layers: list = []
    for uri in [path] if isinstance(path, str) else list(path):
        try:
            layers.extend(prepare_layers(str(uri)))
        except LablinkError as exc:
            show_error(failure_message(str(uri), exc))
        except Exception as exc:  # a bug of ours must still not cost the user a traceback dialog
            log.exception("unexpected error opening %s", str(uri).split("?", 1)[0])
            show_error(failure_message(str(uri), exc))
    return layers or _NOTHING
