"""The ROI methods of a mikro connection: read, upload, save (update/delete) and watch ROIs.

Mixed into :class:`~napari_lablink.client.mikro.server.MikroServer`; the URI's kind picks the
generation as for images. ROIs need no S3: only GraphQL (and a websocket to watch them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from napari_lablink.client.errors import ConfigurationError, LablinkError, UploadCancelledError
from napari_lablink.client.mikro.roi_layers import LayerRois, layer_origin, layer_rois
from napari_lablink.client.mikro.roi_wire import (
    Gen1Rois,
    Gen2Rois,
    ImageGeometry,
    Listing,
    RoiWire,
)
from napari_lablink.client.mikro.rois import Roi, RoiEvent, SaveReport, WireError, to_wire
from napari_lablink.client.mikro.session import MikroSession
from napari_lablink.client.mikro.subscription import Subscription, websocket_url
from napari_lablink.client.uri import RemoteURI

__all__ = ["RoiMethods"]

LayerTuple = tuple[Any, dict[str, Any], str]

_NOT_KEPT = (
    "mikro generation 2 keeps no labels or tags with ROIs: {n} label(s)/tag(s) were not saved"
)


_COLOURS_NOT_KEPT = {
    "image": "mikro generation 2 keeps no colours with ROIs: {n} colour(s) were not saved",
    "representation": "mikro generation 1 shows a ROI's colour but its API cannot set one: "
    "{n} colour(s) were not saved",
}


class RoiMethods:
    """ROIs of the images of one mikro server."""

    # Provided by MikroServer (through Server).
    session: MikroSession
    label: str
    credentials: Any
    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def resolve(self, ref: str | int | RemoteURI) -> RemoteURI: ...

    def _roi_target(self, ref: str | int | RemoteURI) -> tuple[RoiWire, str, RemoteURI]:
        self._check_open()
        uri = self.resolve(ref)
        wires: dict[str, RoiWire] = {
            "image": Gen2Rois(self.session),
            "representation": Gen1Rois(self.session),
        }
        wire = wires.get(uri.kind)
        if wire is None or uri.object_id is None:
            raise ConfigurationError(
                f"{uri.without_options()} names no image to hold ROIs",
                server=self.label,
                hint=f"Use {uri.server}/image/<id> or {uri.server}/representation/<id>",
            )
        return wire, uri.object_id, uri

    # -- reading --------------------------------------------------------------------------------

    def roi_geometry(self, ref: str | int | RemoteURI) -> ImageGeometry:
        """The shape and pixel size ROIs of ``ref`` are placed in."""
        wire, object_id, _ = self._roi_target(ref)
        return wire.geometry(object_id)

    def rois(self, ref: str | int | RemoteURI) -> Listing:
        """Every ROI of image ``ref`` napari can show, and a message per ROI it cannot."""
        wire, object_id, _ = self._roi_target(ref)
        return wire.list(object_id)

    # -- writing --------------------------------------------------------------------------------

    def upload_rois(
        self,
        ref: str | int | RemoteURI,
        layers: LayerTuple | Sequence[LayerTuple] | Sequence[Roi],
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> SaveReport:
        """Save napari Shapes/Points layer data (``(data, meta, layer_type)`` tuples, e.g. from
        ``layer.as_layer_data_tuple()``) or :class:`Roi` objects as ROIs of image ``ref``.

        One ROI per shape or point, in the image's pixel indices (the layer's scale and
        translate honoured). Shapes that came from this image (a ``roi_id`` feature) update
        their ROI instead of adding one; ROIs the layer showed and no longer has are deleted.

        Every layer is checked before anything is sent. ``progress(done, total)`` counts ROIs;
        setting ``cancel`` stops before the next ROI with :class:`UploadCancelledError` (each
        ROI is its own record: those already saved stay, and the error says how many).
        """
        wire, object_id, uri = self._roi_target(ref)
        target = str(uri.without_options())
        items: list[Any] = [layers] if _is_layer_tuple(layers) else list(layers)
        if all(isinstance(item, Roi) for item in items):
            found_all = [LayerRois(list(items))]
        else:
            geometry = wire.geometry(object_id)
            found_all = []
            for data, meta, layer_type in items:
                self._check_origin(layer_origin(meta), uri)
                found_all.append(layer_rois(data, meta, layer_type, geometry, target=target))
        counter = _Counter(sum(len(f.rois) for f in found_all), progress, cancel, target)
        report = SaveReport()
        for found in found_all:
            saved = self._save(wire, object_id, found, target, counter)
            for name in ("ids", "created", "updated", "deleted", "warnings"):
                getattr(report, name).extend(getattr(saved, name))
        counter.finish()
        return report

    def _check_origin(self, source: str | None, uri: RemoteURI) -> None:
        if source is None:
            return
        try:
            origin = self.resolve(source)
        except LablinkError:
            origin = None
        same = origin is not None and (origin.kind, origin.object_id) == (uri.kind, uri.object_id)
        if not same:
            raise ConfigurationError(
                f"This layer holds the ROIs of {source.split('?', 1)[0]}, not of "
                f"{uri.without_options()}",
                server=self.label,
                hint="Save it to the image it came from; to copy its shapes to another image, "
                "paste them into a new Shapes layer",
            )

    def _save(
        self,
        wire: RoiWire,
        object_id: str,
        found: LayerRois,
        target: str,
        counter: _Counter | None = None,
    ) -> SaveReport:
        counter = counter or _Counter(len(found.rois), None, None, target)
        report = SaveReport(warnings=list(found.warnings))
        present = (
            {r.id: r for r in wire.list(object_id).rois}
            if found.known or any(r.id for r in found.rois)
            else {}
        )
        seen: set[str] = set()
        for roi in found.rois:
            counter.next()
            if roi.id is not None and roi.id in seen:  # a copied shape: a new ROI, not a move
                roi = Roi(roi.kind, roi.vertices, label=roi.label, color=roi.color, tags=roi.tags)
            if roi.id is not None:
                seen.add(roi.id)
            try:
                _, _, note = to_wire(roi)
            except WireError as exc:
                raise ConfigurationError(str(exc), server=self.label, obj=target) from None
            if note:
                report.warnings.append(note)
            if roi.id is not None and roi.id in present:
                if present[roi.id].same_place(roi):
                    report.ids.append(roi.id)
                    continue
                new_id = wire.update(object_id, roi)
                report.updated.append(new_id)
                report.ids.append(new_id)
            else:
                new_id = wire.create(object_id, roi)
                report.created.append(new_id)
                report.ids.append(new_id)
        kept = {r.id for r in found.rois if r.id is not None}
        for gone in sorted(found.known - kept):
            if gone in present:
                wire.delete(gone)
                report.deleted.append(gone)
        # Created ROIs and (generation 1) re-created ones start colourless on the server.
        fresh = set(report.created)
        if wire.kind == "representation":
            fresh |= set(report.updated)
        lost = sum(
            r.color is not None
            and (new_id in fresh or (r.id in present and present[r.id].color != r.color))
            for r, new_id in zip(found.rois, report.ids, strict=True)
        )
        if lost:
            report.warnings.append(_COLOURS_NOT_KEPT[wire.kind].format(n=lost))
        if not wire.keeps_labels:
            dropped = sum(bool(r.label) + bool(r.tags) for r in found.rois)
            if dropped:
                report.warnings.append(_NOT_KEPT.format(n=dropped))
        return report

    # -- watching -------------------------------------------------------------------------------

    def watch_rois(
        self,
        ref: str | int | RemoteURI,
        on_event: Callable[[RoiEvent], None],
        *,
        on_error: Callable[[LablinkError], None] | None = None,
    ) -> Subscription:
        """Start streaming the ROI changes of image ``ref`` to ``on_event`` (from a background
        thread); ``stop()`` the returned subscription when done.

        After a dropped connection it reconnects by itself and sends a ``resync`` event with all
        ROIs, since changes made meanwhile were not streamed.
        """
        wire, object_id, _ = self._roi_target(ref)

        def on_data(data: dict[str, Any]) -> None:
            event = wire.event(data, object_id)
            if event is not None:
                on_event(event)

        def on_reconnect() -> None:
            try:
                rois = wire.list(object_id).rois
            except LablinkError as exc:
                if on_error is not None:
                    on_error(exc)
                return
            on_event(RoiEvent("resync", rois=tuple(rois)))

        graphql_url = f"{self.session.transport.base_url.rstrip('/')}/graphql"
        return Subscription(
            websocket_url(graphql_url),
            wire.subscription,
            wire.subscription_variables(object_id),
            token=lambda: self.credentials.token,
            on_data=on_data,
            on_reconnect=on_reconnect,
            on_error=on_error,
            label=self.label,
        ).start()


class _Counter:
    """ROIs saved so far across the layers of one upload: progress, and the cancel check."""

    def __init__(
        self,
        total: int,
        progress: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
        target: str,
    ) -> None:
        self.total, self.done = total, -1
        self._progress, self._cancel, self._target = progress, cancel, target

    def next(self) -> None:
        """Called before each ROI: counts the one before it, then honours a cancel."""
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, self.total)
        if self._cancel is not None and self._cancel.is_set():
            raise UploadCancelledError(
                f"Cancelled after {self.done} of {self.total} ROIs; those stay on the server",
                obj=self._target,
                hint="Saving the layer again adds those a second time: reopen the image's ROIs "
                "to go on from what is there",
            )

    def finish(self) -> None:
        if self._progress is not None:
            self._progress(self.total, self.total)


def _is_layer_tuple(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and isinstance(value[1], dict)
        and isinstance(value[2], str)
    )
