"""Following the viewer's layer list from a dock widget, and letting go of it on close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LayerListWatch"]


class LayerListWatch:
    """Calls ``slot`` when layers are added, removed or (re)selected; :meth:`close` undoes it.

    A widget that outlives its connections would be called by a viewer it no longer shows, so
    every connection made here is remembered and disconnected exactly once.
    """

    def __init__(self, viewer: Any, slot: Callable[..., Any], *, selection: str = "changed"):
        self._connections = [
            (viewer.layers.events.inserted, slot),
            (viewer.layers.events.removed, slot),
            (getattr(viewer.layers.selection.events, selection), slot),
        ]
        for signal, callback in self._connections:
            signal.connect(callback)

    def close(self) -> None:
        for signal, callback in self._connections:
            signal.disconnect(callback)
        self._connections = []
