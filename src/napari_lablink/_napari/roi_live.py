"""Live ROI layers: server changes applied to open Shapes/Points layers on the Qt thread.

Connecting and subscribing run in a background job; the client core then streams ROI events from
its own thread, and :meth:`Workers.on_main` carries each one to the main thread, where it becomes
an added, moved or removed shape. So the Qt thread never waits on the network. A layer is
watched from the moment it is added to a viewer (if its metadata says ``live``) until it is
removed.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np
from napari.utils.notifications import show_warning

from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.errors import ConfigurationError, LablinkError
from napari_lablink.client.mikro.roi_server import RoiMethods
from napari_lablink.client.mikro.rois import Roi, RoiEvent
from napari_lablink.client.mikro.subscription import Subscription
from napari_lablink.client.uri import parse_uri

__all__ = ["LiveRois", "live_layers", "remember_ids", "watch_viewer"]

log = logging.getLogger(__name__)

_LIVE: dict[int, LiveRois] = {}
_WATCHED_VIEWERS: weakref.WeakSet[Any] = weakref.WeakSet()


def _rois_meta(layer: Any) -> dict[str, Any]:
    return layer.metadata.setdefault("lablink", {}).setdefault("rois", {})


def _ids(layer: Any) -> list[str]:
    features = layer.features
    if "roi_id" not in features:
        return [""] * len(layer.data)
    return ["" if v is None or v != v else str(v) for v in features["roi_id"]]


def remember_ids(layer: Any, ids: list[str], image_uri: str) -> None:
    """Record that the shapes of ``layer`` are the ROIs ``ids`` of ``image_uri`` (after a save)."""
    features = layer.features.copy()
    features["roi_id"] = ids
    layer.features = features
    layer.feature_defaults = {**_defaults(layer), "roi_id": ""}
    meta = _rois_meta(layer)
    meta["image"] = image_uri
    meta["ids"] = list(ids)


def _defaults(layer: Any) -> dict[str, Any]:
    try:
        return dict(layer.feature_defaults.iloc[0])
    except (AttributeError, IndexError):
        return {}


class LiveRois:
    """Keeps one layer in step with the ROIs of its image.

    Connecting (which may log in) and subscribing happen in a background job, so adding a
    layer never waits on the network; ``watch`` is None until the subscription has started.
    """

    def __init__(self, layer: Any, image_uri: str) -> None:
        self._layer = weakref.ref(layer)
        self._points = layer._type_string == "points"
        #: The one way back to the Qt thread: the subscription calls from its own thread.
        self._workers = Workers()
        self.watch: Subscription | None = None
        uri = parse_uri(image_uri)
        on_event = self._workers.on_main(self._apply)
        on_error = self._workers.on_main(self._failed)

        def subscribe(task: Task) -> Subscription:
            server = shared_connection(uri)
            if not isinstance(server, RoiMethods):
                raise ConfigurationError(f"{uri.server} keeps no ROIs")
            return server.watch_rois(uri, on_event, on_error=on_error)

        self._workers.start(
            subscribe,
            done=self._watching,
            failed=self._failed,
            discard=lambda watch: watch.stop(timeout=0),  # stopped before it had started
        )

    def _watching(self, watch: Subscription) -> None:
        self.watch = watch

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop(timeout=0)
        self._workers.close()

    def _failed(self, error: Exception) -> None:
        layer = self._layer()
        name = layer.name if layer else "ROIs"
        show_warning(f"{name}: live updates stopped: {describe(error)}")

    # -- applying events (Qt thread) -------------------------------------------------------------

    def _apply(self, event: RoiEvent) -> None:
        layer = self._layer()
        if layer is None:
            self.stop()
            return
        try:
            if event.type == "delete" and event.roi_id:
                self._remove(layer, event.roi_id)
            elif event.type in ("create", "update") and event.roi is not None:
                self._put(layer, event.roi)
            elif event.type == "resync":
                self._resync(layer, event.rois)
        except Exception:  # a broken event must not take the viewer down
            log.exception("applying a live ROI event failed")

    def _mine(self, roi: Roi) -> bool:
        return (roi.kind == "point") == self._points

    def _remove(self, layer: Any, roi_id: str) -> None:
        ids = _ids(layer)
        if roi_id not in ids:
            return
        layer.selected_data = {ids.index(roi_id)}
        layer.remove_selected()
        meta = _rois_meta(layer)
        meta["ids"] = [i for i in meta.get("ids", []) if i != roi_id]

    def _put(self, layer: Any, roi: Roi) -> None:
        if not self._mine(roi) or roi.id is None:
            return
        dims = layer.metadata["lablink"]["dims"]
        rows = roi.along(dims)
        ids = _ids(layer)
        if roi.id in ids:
            index = ids.index(roi.id)
            current = np.asarray(layer.data[index])
            same_kind = self._points or layer.shape_type[index] == roi.kind
            if (
                same_kind
                and current.shape == rows.reshape(current.shape).shape
                and np.allclose(current, rows.reshape(current.shape), atol=1e-6)
            ):
                return
            if self._points:
                data = np.asarray(layer.data).copy()
                data[index] = rows[0]
                layer.data = data
                return
            self._remove(layer, roi.id)
        if self._points:
            layer.add(rows[:1])
        else:
            layer.add(rows, shape_type=roi.kind)
        column = layer.features.columns.get_loc("roi_id")
        layer.features.iloc[-1, column] = roi.id
        meta = _rois_meta(layer)
        meta["ids"] = [*meta.get("ids", []), roi.id]

    def _resync(self, layer: Any, rois: tuple[Roi, ...]) -> None:
        mine = {r.id: r for r in rois if self._mine(r) and r.id}
        for roi_id in _ids(layer):
            if roi_id and roi_id not in mine:
                self._remove(layer, roi_id)
        for roi in mine.values():
            self._put(layer, roi)


def live_layers() -> dict[int, LiveRois]:
    """The watched layers, by ``id(layer)`` (for tests and diagnostics)."""
    return _LIVE


def _start(layer: Any) -> None:
    meta = (layer.metadata.get("lablink") or {}).get("rois") or {}
    if not meta.get("live") or not meta.get("image") or id(layer) in _LIVE:
        return
    try:
        _LIVE[id(layer)] = LiveRois(layer, meta["image"])
    except LablinkError as exc:  # a URI we cannot read: nothing was started
        show_warning(f"{layer.name}: no live updates: {exc}")


def _stop(layer: Any) -> None:
    live = _LIVE.pop(id(layer), None)
    if live is not None:
        live.stop()


def watch_viewer(viewer: Any) -> None:
    """Start live updates for ROI layers added to ``viewer`` (once per viewer)."""
    if viewer is None or viewer in _WATCHED_VIEWERS:
        return
    _WATCHED_VIEWERS.add(viewer)
    mine: set[int] = set()

    def inserted(event: Any) -> None:
        _start(event.value)
        mine.add(id(event.value))

    def closed() -> None:  # closing a viewer removes no layers: end their watches here
        for key in list(mine):
            live = _LIVE.pop(key, None)
            if live is not None:
                live.stop()

    viewer.layers.events.inserted.connect(inserted)
    viewer.layers.events.removed.connect(lambda event: _stop(event.value))
    window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    if window is not None:
        window.destroyed.connect(closed)
    for layer in viewer.layers:
        _start(layer)
        mine.add(id(layer))
