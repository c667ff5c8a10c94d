"""The connections a dock widget makes to things that outlive it, and letting go of them.

A widget stays connected to the viewer's events, its layers' events and the acquisition core's
callbacks only as long as it is shown: one that outlives its connections is called by a viewer
it no longer belongs to (and keeps itself alive through them). So every such connection goes
through one :class:`Connections`, which disconnects each exactly once when the widget closes,
whether through ``closeEvent`` or through the viewer deleting its dock widgets
(:func:`close_with`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Connections", "close_with", "watch_layer_list"]

Slot = Callable[..., Any]


class _Signal(Protocol):
    """What Qt signals, napari's event emitters and the core's ``Callbacks`` have in common."""

    def connect(self, slot: Slot, /) -> Any: ...

    def disconnect(self, slot: Slot, /) -> Any: ...


class Connections:
    """Connections made through :meth:`link`, undone by :meth:`clear` or for good by
    :meth:`close`."""

    def __init__(self) -> None:
        self._links: list[tuple[_Signal, Slot]] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._links)

    def link(self, signal: _Signal, slot: Slot) -> None:
        """Connect ``slot`` to ``signal`` and remember it (nothing, once closed)."""
        if self._closed:
            return
        signal.connect(slot)
        self._links.append((signal, slot))

    def unlink(self, signal: _Signal, slot: Slot) -> None:
        """Disconnect one connection made by :meth:`link` (if it still is connected)."""
        with contextlib.suppress(ValueError):
            self._links.remove((signal, slot))
            _disconnect(signal, slot)

    def clear(self) -> None:
        """Disconnect everything linked so far; later links still work."""
        while self._links:
            _disconnect(*self._links.pop())

    def close(self, *_: object) -> None:
        """Disconnect everything and refuse new links. Idempotent."""
        self._closed = True
        self.clear()


def _disconnect(signal: _Signal, slot: Slot) -> None:
    # The other side may be gone already (a Qt object deleted with the viewer).
    with contextlib.suppress(RuntimeError, TypeError, ValueError):
        signal.disconnect(slot)


class _Closable(Protocol):
    def close(self, *_: object) -> Any: ...


def close_with(widget: Any, *resources: _Closable) -> None:
    """Close ``resources`` when ``widget`` is destroyed.

    napari deletes its dock widgets with the window without calling their ``closeEvent``. The
    signal holds each resource through a closure: PyQt holds a bound method only weakly, and the
    widget's own references may already be gone when ``destroyed`` fires.
    """
    for resource in resources:
        widget.destroyed.connect(lambda *_, resource=resource: resource.close())


def watch_layer_list(
    links: Connections, viewer: Any, slot: Slot, *, selection: str = "changed"
) -> None:
    """Call ``slot`` when layers are added, removed or (re)selected (``selection`` names the
    selection event: ``changed`` or ``active``)."""
    links.link(viewer.layers.events.inserted, slot)
    links.link(viewer.layers.events.removed, slot)
    links.link(getattr(viewer.layers.selection.events, selection), slot)
