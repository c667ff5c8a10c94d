"""Opening remote images without freezing napari: the network in a worker, layers when ready.

npe2 readers are synchronous and run on the Qt thread, where a slow or dead server would freeze
the window. So when a viewer is up, the reader only schedules :func:`open_in_viewer` and answers
napari's "nothing to add" sentinel; a worker (the widgets' one idiom, :mod:`.workers`) fetches the
metadata, picks channels, samples contrast and lists ROIs, with a cancellable progress bar in
napari's activity panel; then the layers are added on the Qt thread, a few per event-loop turn
(:mod:`.inserting`). A failure is one notification. Scripts that need the layers wait with
:func:`wait_for_opens`.

The browser's channel picker calls :func:`open_in_viewer` with ``channels=``; the reader takes the
same choice from the URI (``?channels=CD45,dsDNA``).
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.components import Dims
from napari.layers import Image, Labels, Layer, Points, Shapes
from napari.layers.utils.layer_utils import compute_multiscale_level
from napari.utils.notifications import show_error
from napari.utils.progress import cancelable_progress

from napari_lablink._napari.inserting import insert_layers, one_per_layer, pending_inserts
from napari_lablink._napari.layers import LayerDataTuple, layer_data
from napari_lablink._napari.prefetch import follow
from napari_lablink._napari.rois import read_rois, watch_current_viewer
from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.connection import open_image
from napari_lablink.client.contrast import with_contrast
from napari_lablink.client.errors import LablinkError
from napari_lablink.client.selection import parse_channel_list, select_channels
from napari_lablink.client.uri import RemoteURI, parse_uri

if TYPE_CHECKING:
    import napari

__all__ = [
    "failure_message",
    "open_and_wait",
    "open_in_viewer",
    "prepare_layers",
    "wait_for_opens",
]

log = logging.getLogger(__name__)

_STEPS = 4  # metadata, contrast, ROIs, the first planes
_workers: Workers | None = None


def prepare_layers(
    uri: str | RemoteURI,
    *,
    channels: Sequence[str | int] | None = None,
    task: Task | None = None,
) -> list[LayerDataTuple]:
    """Everything opening ``uri`` needs from the network, as napari layer data (any thread).

    ``channels`` (names or indices) overrides the URI's ``channels`` option; none means all.
    """
    parsed = uri if isinstance(uri, RemoteURI) else parse_uri(uri)
    wanted = parse_channel_list(parsed.option("channels")) if channels is None else list(channels)
    image = select_channels(open_image(parsed), wanted)
    _report(task, 1)
    # The ROI query waits on the server while the contrast sample waits on S3: ask both at once.
    with ThreadPoolExecutor(max_workers=1) as pool:
        rois = pool.submit(read_rois, parsed, image.name, image.uri, watch=False)
        image = with_contrast(image)
        _report(task, 2)
        layers = layer_data(image)
        if wanted and len(image.channels) == 1:  # one channel asked for: name it, not the image
            layers = [(d, {**k, "name": image.channels[0].name}, t) for d, k, t in layers]
        layers += rois.result()
    _report(task, 3)
    return layers


def _report(task: Task | None, done: int) -> None:
    if task is not None:
        if task.cancelled.is_set():
            raise _Cancelled
        task.report(done, _STEPS)


class _Cancelled(Exception):
    """The user cancelled the open in the activity panel: add nothing, say nothing."""


class _Progress(cancelable_progress):
    """The activity panel's bar, whose Cancel button also cancels the worker's task."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class _LateBar:
    """An open's progress bar, made once its worker is on its way: the activity panel takes
    tens of milliseconds to make one, better spent waiting on the network. Making it runs the
    event loop, so the worker's progress, or even its end, may come before the bar exists."""

    def __init__(self) -> None:
        self._bar: _Progress | None = None
        self._count = 0
        self._closed = False

    def make(self, desc: str, cancel: Callable[[], None]) -> None:
        bar = _Progress(total=_STEPS, desc=desc)
        bar.cancel_callback = cancel
        self._bar = bar
        if self._closed:
            bar.close()
        elif self._count:
            self.progress(self._count, _STEPS)

    def progress(self, count: int, _total: int) -> None:
        self._count = count
        if self._bar is not None:
            self._bar.n = count
            self._bar.refresh()

    def close(self) -> None:
        self._closed = True
        if self._bar is not None:
            self._bar.close()


def open_in_viewer(
    viewer: napari.Viewer,
    uri: str,
    *,
    channels: Sequence[str | int] | None = None,
    done: Callable[[list[Any]], object] | None = None,
    failed: Callable[[Exception], object] | None = None,
) -> Task:
    """Open ``uri`` into ``viewer`` in the background (call on the Qt thread).

    ``done(layers)`` hears the layers added (none after a failure or a cancel). A failure is a
    notification, or goes to ``failed(exception)`` instead when given.
    """
    shown = failure_subject(uri)
    viewer_ref = weakref.ref(viewer)
    height, width = viewer.canvas.size
    canvas = None if len(viewer.layers) else (int(height), int(width))  # reset to the image

    bar = _LateBar()

    def on_done(layers: list[Layer]) -> None:
        target = viewer_ref()
        if target is not None and not task.cancelled.is_set():
            first = None
            if canvas is not None and layers and not len(target.layers):
                first = functools.partial(_start_where_built, target, layers[0])
            add_layers(target, layers, done, before=first)
        elif done is not None:
            done([])

    def on_failed(exc: Exception) -> None:
        if failed is not None:
            failed(exc)
        elif not isinstance(exc, _Cancelled):
            show_error(failure_message(uri, exc))
        if done is not None:
            done([])

    task = _background().start(
        lambda t: make_layers(prepare_layers(uri, channels=channels, task=t), t, canvas),
        done=on_done,
        failed=on_failed,
        progress=bar.progress,
        finished=bar.close,
    )
    bar.make(f"Opening {shown}", task.cancel)
    return task


def make_layers(
    layers: list[LayerDataTuple],
    task: Task | None = None,
    canvas: tuple[int, int] | None = None,
) -> list[Layer]:
    """napari layers of ``layers``, one per channel, built off the Qt thread.

    A visible layer reads its first plane while it is built, so that read happens here, in the
    worker, and napari finds the plane already sliced when the layer is added. A pyramid is
    read once, at the level napari will show on a ``canvas`` of that size (height, width) once
    the view is reset to the image; otherwise napari would read that level on the Qt thread.
    The visible channels read side by side: each waits on the network, not on a core.
    """
    specs = one_per_layer(layers)
    built = [_build(data, kwargs, kind, canvas) for data, kwargs, kind in specs]
    shown = [
        layer
        for layer, (_, kwargs, _) in zip(built, specs, strict=True)
        if kwargs.get("visible", True)
    ]
    if len(shown) > 1:
        with ThreadPoolExecutor(max_workers=min(len(shown), _PLANE_READERS)) as pool:
            list(pool.map(_show, shown))
    elif shown:
        _show(shown[0])
    _report(task, _STEPS)
    return built


#: Visible channels whose first planes are read at the same time.
_PLANE_READERS = 8


def _build(data: Any, kwargs: dict[str, Any], kind: str, canvas: tuple[int, int] | None) -> Layer:
    """One layer, built hidden (nothing read) and pointed where a fresh viewer will show it: the
    middle plane, and for a pyramid the level that fits the canvas."""
    layer = Layer.create(data, {**kwargs, "visible": False}, kind)
    if kwargs.get("visible", True) and canvas is not None:
        _middle_plane(layer)
        if isinstance(layer, Image) and layer.multiscale:
            _shown_level(layer, canvas)
    return layer


def _show(layer: Layer) -> None:
    """Make a built layer visible, which slices (reads) its plane. Overlapping reads are safe
    with napari's dask cache mended (:mod:`.dask_cache`)."""
    layer.visible = True


def _middle_plane(layer: Layer) -> None:
    """Point ``layer`` at the plane an empty viewer goes to when it is added (the middle step
    of every axis), so its first read is the one napari shows, not plane 0."""
    dims = _middle_dims(layer)
    if dims is not None:
        layer._slice_dims(dims)  # hidden: records where to slice, reads nothing yet


def _middle_dims(layer: Layer) -> Dims | None:
    """The dims an empty viewer has once ``layer`` is its first layer (at the middle step of
    every axis, as napari goes there), or None where :func:`_middle_plane` leaves it alone."""
    extent = layer.extent
    bounds = np.concatenate([*extent.world, extent.step])
    if layer.ndim <= 2 or not isinstance(layer, Image | Labels) or not np.isfinite(bounds).all():
        return None
    dims = Dims(ndim=layer.ndim, range=tuple(zip(*extent.world, extent.step, strict=True)))
    dims.current_step = tuple(int((n - 1) / 2) for n in dims.nsteps)  # as napari does
    return dims


def _start_where_built(viewer: napari.Viewer, first: Layer) -> None:
    """Give an empty viewer the dims it will have once ``first`` is in, before it goes in.

    Otherwise napari slices the first layer at step 0 of the new axes (a read of plane 0 on
    the Qt thread, from the network for a z-stack) and then again at the middle step, where
    the worker has already sliced it; with the dims in place both slices find nothing new."""
    dims = _middle_dims(first)
    if dims is not None:
        viewer.dims.ndim = dims.ndim
        viewer.dims.range = dims.range
        viewer.dims.current_step = dims.current_step


#: napari's reset view leaves this fraction of the canvas around the image.
_VIEW_MARGIN = 0.05


def _shown_level(layer: Image, canvas: tuple[int, int]) -> None:
    """Point ``layer`` at the pyramid level napari picks when the whole image fills a 2-D view
    of ``canvas``; napari then finds that level in place and does not slice again."""
    factors = np.asarray(layer.downsample_factors)[:, -2:]
    full = np.asarray(layer.level_shapes[0][-2:], dtype=float)
    scale = np.asarray(layer.scale[-2:], dtype=float)
    view = np.asarray(canvas, dtype=float)
    if full.min() <= 0 or view.min() <= 0:
        return
    zoom = (1 - _VIEW_MARGIN) * np.min(view / (full * scale))
    level = compute_multiscale_level(view / zoom / scale, view, factors)
    corners = np.zeros((2, layer.ndim), dtype=int)
    corners[1, -2:] = np.asarray(layer.level_shapes[level][-2:]) - 1
    layer._data_level = level  # napari's own field; no public setter short of locking it
    layer.corner_pixels = corners


def add_layers(
    viewer: napari.Viewer,
    layers: list[Layer],
    done: Callable[[list[Layer]], object] | None = None,
    *,
    before: Callable[[], object] | None = None,
) -> None:
    """Add built layers a few per event-loop turn (on the Qt thread; see :mod:`.inserting`);
    ``done(added)`` once all are in. ``before`` runs first, in a turn of its own if it is slow.

    Channel names that are already layer names get the image's name in front, and so do the
    earlier layers of the same name that napari-lablink opened, so neither reads "DAPI [1]".
    """
    existing = {layer.name: layer for layer in viewer.layers}
    clashes = [layer.name for layer in layers if layer.name in existing]
    if clashes:
        image_name = next(filter(None, map(_source_name, layers)), None)
        if image_name:
            for layer in layers:
                if _source_name(layer) and not layer.name.startswith(image_name):
                    layer.name = f"{image_name}: {layer.name}"
        for name in clashes:
            source = _source_name(existing[name])
            if source and not name.startswith(source):
                existing[name].name = f"{source}: {name}"
    rois = any(isinstance(layer, Shapes | Points) for layer in layers)
    pixels = any(isinstance(layer, Image | Labels) for layer in layers)

    def inserted(added: list[Layer]) -> None:
        if rois:
            watch_current_viewer()
        if pixels and added:
            follow(viewer)
        if done is not None:
            done(added)

    insert_layers(viewer, layers, inserted, before=before)


def _source_name(layer: Layer) -> str | None:
    """The name of the server image ``layer`` came from, if napari-lablink opened it."""
    name = layer.metadata.get("lablink", {}).get("name")
    return str(name) if name else None


def failure_subject(uri: str | RemoteURI) -> str:
    """The object a message is about, as the user knows it: the URI without its query."""
    return str(uri).split("?", 1)[0]


def failure_message(uri: str | RemoteURI, exc: Exception) -> str:
    """The notification for a failed open: what happened and what to do, then which object."""
    if isinstance(exc, LablinkError):
        return f"Could not open the image. {exc}"
    return f"Could not open the image: {describe(exc)} ({failure_subject(uri)})"


def _background() -> Workers:
    global _workers
    if _workers is None:
        _workers = Workers()
    return _workers


def pending_opens() -> bool:
    """Whether an open is still on its way."""
    return (_workers is not None and not _workers.idle) or pending_inserts()


def wait_for_opens(timeout: float = 60.0) -> bool:
    """Run the Qt event loop until every open has added its layers; False on timeout.

    For scripts and tests: ``viewer.open(uri)`` returns before the layers are there.
    """
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while pending_opens():
        if time.monotonic() > end:
            return False
        QApplication.processEvents()
        time.sleep(0.005)
    QApplication.processEvents()
    return True


def open_and_wait(
    viewer: napari.Viewer,
    uri: str,
    *,
    channels: Sequence[str | int] | None = None,
    timeout: float = 120.0,
) -> list[Layer]:
    """Open ``uri`` into ``viewer`` and return its layers once they are all in (Qt thread).

    For scripts and notebooks, where ``viewer.open(uri)`` returns before the layers arrive. The
    event loop keeps running meanwhile. A failure raises its :class:`LablinkError`; a timeout
    raises :class:`TimeoutError` and leaves the open running.
    """
    from qtpy.QtWidgets import QApplication

    outcome: list[list[Layer] | Exception] = []
    open_in_viewer(viewer, uri, channels=channels, done=outcome.append, failed=outcome.append)
    end = time.monotonic() + timeout
    while not outcome:
        if time.monotonic() > end:
            raise TimeoutError(f"{failure_subject(uri)} did not open within {timeout:g} s")
        QApplication.processEvents()
        time.sleep(0.005)
    first = outcome[0]
    if isinstance(first, Exception):
        raise first
    return first
