"""A server that stops answering while its layers are shown: one notification, then redraws.

The client core stops reading from a server once a chunk read finds it gone and reports the
outage once (:mod:`napari_lablink.client.outages`). Here that report becomes one napari warning,
and the server's return a redraw of its layers: the planes sliced meanwhile were left empty.
Reports arrive in whichever thread read the chunk; napari's notifications may be sent from any
thread, the redraw is sent to the Qt thread.
"""

from __future__ import annotations

import logging
from typing import Any

from napari.utils.notifications import show_warning
from superqt.utils import ensure_main_thread

from napari_lablink.client import outages
from napari_lablink.client.errors import InvalidURIError
from napari_lablink.client.uri import parse_uri

__all__ = ["watch_outages"]

log = logging.getLogger(__name__)

_watching = False


def watch_outages() -> None:
    """Turn the core's outage reports into napari notifications and redraws (once per session)."""
    global _watching
    if not _watching:
        _watching = True
        outages.listen(_heard)


def _heard(outage: outages.Outage) -> None:
    if outage.over:
        _redraw(outage.server)
    else:
        show_warning(outage.message)


@ensure_main_thread
def _redraw(server: str) -> None:
    """Slice again every layer of ``server`` in the current viewer, after emptying napari's dask
    cache: it keeps the empty chunks of the outage (and the slices made of them) by task key,
    and would show them again."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return
    layers = [layer for layer in viewer.layers if _server_of(layer) == server]
    if not layers:
        return
    _empty_dask_cache()
    for layer in layers:
        layer.refresh()


def _server_of(layer: Any) -> str | None:
    uri = layer.metadata.get("lablink", {}).get("uri") if layer.metadata else None
    try:
        return parse_uri(uri).server if uri else None
    except InvalidURIError:
        return None


def _empty_dask_cache() -> None:
    """Drop everything napari's opportunistic dask cache holds (there is no public way to drop
    some of it; the layers of other servers read their chunks once more)."""
    try:
        from napari.utils._dask_utils import _DASK_CACHE
    except ImportError:  # a napari without it keeps no chunks
        log.debug("napari has no dask cache to empty")
        return
    empty = getattr(_DASK_CACHE, "empty", None)  # the thread-safe way, see dask_cache.py
    if empty is not None:
        empty()
    else:
        _DASK_CACHE.cache.clear()
