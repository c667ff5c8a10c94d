"""Which beads the PSF analysis measures: found in every stack, or the points a user marked.

Users of napari-psf-analysis pick their beads with a Points layer; this offers the same choice
live. The chosen layer is watched, so moving, adding or deleting a point takes effect with the
next stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Layer, Points
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QWidget

__all__ = ["AUTO", "BeadSource"]

AUTO = "found automatically"
Link = Callable[[Any, Callable[..., Any]], None]


class BeadSource(QComboBox):
    """A choice of ``AUTO`` or a Points layer; ``positions_changed`` carries world coordinates
    ((y, x) or (z, y, x) per point, µm) or ``None`` for automatic detection.

    Connections go through ``link``/``unlink`` so that the widget's owner of connections can
    disconnect them all when the widget closes.
    """

    positions_changed = Signal(object)

    def __init__(
        self,
        viewer: Any,
        link: Link,
        unlink: Link,
        ignore: Callable[[Layer], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._link, self._unlink = link, unlink
        self._ignore = ignore
        self._watched: tuple[Any, Callable[..., Any]] | None = None
        self.setToolTip("Beads to measure: found in each stack, or the points of a Points layer")
        self.refill()
        link(viewer.layers.events.inserted, self.refill)
        link(viewer.layers.events.removed, self.refill)
        link(self.currentIndexChanged, self._on_choice)

    def refill(self, *_: object) -> None:
        """List the viewer's Points layers; falls back to ``AUTO`` if the chosen one went."""
        current = self.currentText() or AUTO
        names = [
            layer.name
            for layer in self._viewer.layers
            if isinstance(layer, Points) and not self._ignore(layer)
        ]
        self.blockSignals(True)
        self.clear()
        self.addItems([AUTO, *names])
        self.setCurrentText(current if current in names else AUTO)
        self.blockSignals(False)
        if self.currentText() != current:
            self._on_choice()

    def _on_choice(self, *_: object) -> None:
        if self._watched is not None:
            self._unlink(*self._watched)
            self._watched = None
        name = self.currentText()
        if name == AUTO or name not in self._viewer.layers:
            self.positions_changed.emit(None)
            return
        layer = self._viewer.layers[name]
        self._watched = (layer.events.data, self._emit)
        self._link(*self._watched)
        self._emit()

    def _emit(self, *_: object) -> None:
        layer = self._viewer.layers[self.currentText()]
        world = np.array([layer.data_to_world(p) for p in layer.data], dtype=float)
        self.positions_changed.emit(world.reshape(len(layer.data), -1))
