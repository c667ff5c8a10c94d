"""Adding many layers without freezing napari: a few per turn of the Qt event loop.

napari builds a vispy node, a layer-controls panel and a list entry for every layer it adds, and
redraws the scene after each: around 100 ms per layer on a busy machine, so a 40-channel FOV
added in one go froze the window for seconds. Here layers go in one turn of the event loop at a
time, as many as fit in :data:`TURN_BUDGET` but at least one, in their order (the visible
channels come first in a many-channel image). Between turns napari draws, answers the mouse and
slices what has arrived, so the first channels are on screen before the last are added.

The next turn is a timer of :data:`PAUSE_MS`, not a zero-delay call: Qt runs those as posted
events, ahead of timers and input, so a chain of them held the window as long as a single call.

Layers added after the first turn do not take the selection: the user may already be working
with what is on screen, and napari rebuilding the controls panel for each new layer is a good
part of its cost.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.layers import Layer
from napari.layers.utils.stack_utils import split_channels

if TYPE_CHECKING:
    import napari

    from napari_lablink._napari.layers import LayerDataTuple

__all__ = ["TURN_BUDGET", "insert_layers", "one_per_layer", "pending_inserts", "window_closed"]

#: Seconds of Qt-thread time one turn may spend adding layers (one layer always goes in).
TURN_BUDGET = 0.03
#: Milliseconds between turns, in which Qt draws and answers input and other timers.
PAUSE_MS = 2

_pending: set[_Inserter] = set()


def one_per_layer(layers: list[LayerDataTuple]) -> list[LayerDataTuple]:
    """``layers`` with every ``channel_axis`` tuple split into one tuple per channel, the way
    napari's ``add_image`` splits it (any thread: slicing only, no pixels read)."""
    out: list[LayerDataTuple] = []
    for data, kwargs, kind in layers:
        if kind == "image" and kwargs.get("channel_axis") is not None:
            rest = {k: v for k, v in kwargs.items() if k != "channel_axis"}
            out.extend(split_channels(data, kwargs["channel_axis"], **rest))
        else:
            out.append((data, kwargs, kind))
    return out


def pending_inserts() -> bool:
    """Whether some layers are still waiting for their turn."""
    return bool(_pending)


def insert_layers(
    viewer: napari.Viewer,
    layers: list[Layer],
    done: Callable[[list[Layer]], object] | None = None,
    *,
    before: Callable[[], object] | None = None,
) -> None:
    """Add ``layers`` to ``viewer`` over as many event-loop turns as they need; ``done(added)``
    once the last is in (call on the Qt thread).

    The first turn runs now, so a small image is added before this returns. ``before`` is work
    on the viewer that must come first (setting up its dims), which then has the first turn to
    itself. If the viewer closes meanwhile, the rest is dropped and ``done`` hears what was
    added.
    """
    _Inserter(viewer, layers, done, before).step()


class _Inserter:
    def __init__(
        self,
        viewer: napari.Viewer,
        layers: list[Layer],
        done: Callable[[list[Layer]], object] | None,
        before: Callable[[], object] | None,
    ) -> None:
        self._viewer = weakref.ref(viewer)
        self._before = before
        self._waiting = deque(layers)
        self._done = done
        self._added: list[Layer] = []
        _pending.add(self)

    def step(self) -> None:
        from qtpy.QtCore import QTimer

        viewer = self._viewer()
        if viewer is None or window_closed(viewer):
            self._waiting.clear()
            self._before = None
        start = time.perf_counter()
        spent = False
        if self._before is not None:
            before, self._before = self._before, None
            before()
            spent = time.perf_counter() - start > TURN_BUDGET
        while self._waiting and not spent:
            self._add(viewer, self._waiting.popleft())
            spent = time.perf_counter() - start > TURN_BUDGET
        if self._waiting:
            QTimer.singleShot(PAUSE_MS, self.step)
            return
        _pending.discard(self)
        if self._done is not None:
            self._done(self._added)

    def _add(self, viewer: Any, layer: Layer) -> None:
        layers = viewer.layers
        first = not self._added
        # napari's own switch for "select what was inserted"; later layers leave it alone.
        activate = getattr(layers, "_activate_on_insert", None)
        if not first and activate is not None:
            layers._activate_on_insert = False
        try:
            layers.append(layer)
        finally:
            if not first and activate is not None:
                layers._activate_on_insert = activate
        self._added.append(layer)


def window_closed(viewer: Any) -> bool:
    """Whether the viewer's window is gone (napari keeps the model alive after ``close``)."""
    window = getattr(viewer, "window", None)
    return window is not None and not hasattr(window, "_qt_window")
