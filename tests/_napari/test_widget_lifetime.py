"""Every dock widget lets go of the viewer, its layers and the cores when it goes.

A widget goes either by ``close()`` (its dock's close button) or by the viewer closing, which
deletes its dock widgets without closing them; both must leave no listener behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from napari_lablink._napari.browser.widget import BrowserWidget
from napari_lablink._napari.psf.widget import PSFWidget
from napari_lablink._napari.upload.mikro_widget import UploadWidget
from napari_lablink._napari.upload.tracker_widget import TrackerUploadWidget
from napari_lablink.acquisition import SimulatedMicroscope
from napari_lablink.profiles import ProfileStore

pytestmark = pytest.mark.viewer

TIMEOUT_MS = 20_000


def _microscope(settings: object) -> SimulatedMicroscope:
    return SimulatedMicroscope(frame_shape=(32, 32), pixel_size_um=0.1)


WIDGETS: dict[str, Callable[[Any, Any], Any]] = {
    "mikro upload": lambda viewer, tmp_path: UploadWidget(viewer),
    "tracker upload": lambda viewer, tmp_path: TrackerUploadWidget(viewer),
    "browser": lambda viewer, tmp_path: BrowserWidget(
        viewer, store=ProfileStore(tmp_path / "servers.toml", secrets=None)
    ),
    "psf": lambda viewer, tmp_path: PSFWidget(viewer, backends={"simulated": _microscope}),
}


def _listeners(viewer: Any) -> list[str]:
    """Our listeners on the viewer's layer list and the layers' data (napari's left out)."""
    emitters = [
        viewer.layers.events.inserted,
        viewer.layers.events.removed,
        viewer.layers.selection.events.changed,
        viewer.layers.selection.events.active,
        *(layer.events.data for layer in viewer.layers),
    ]
    return [
        name for emitter in emitters for name in map(_owner, emitter.callbacks) if name is not None
    ]


def _owner(callback: Any) -> str | None:
    """``module.qualname`` of a napari listener if it is lablink's (napari keeps a bound method
    as a (weak reference, method name) pair)."""
    if isinstance(callback, tuple):
        target = callback[0]()
        qualname = f"{type(target).__module__}.{type(target).__qualname__}.{callback[1]}"
    else:  # a function, or an emitter napari chains on
        qualname = f"{getattr(callback, '__module__', '')}.{getattr(callback, '__qualname__', '')}"
    return qualname if qualname.startswith("napari_lablink") else None


def _core_listeners(widget: Any) -> dict[str, int]:
    if not isinstance(widget, PSFWidget):
        return {}
    engine, analyzer = widget.engine, widget.analyzer
    return {
        "stack_completed": len(engine.stack_completed),
        "state_changed": len(engine.state_changed),
        "run_failed": len(engine.run_failed),
        "result_ready": len(analyzer.result_ready),
        "analysis_failed": len(analyzer.analysis_failed),
    }


@pytest.mark.parametrize("kind", list(WIDGETS))
def test_closing_a_widget_disconnects_it(kind, make_napari_viewer, qtbot, tmp_path) -> None:
    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((1, 2)), name="marks")
    widget = WIDGETS[kind](viewer, tmp_path)
    viewer.window.add_dock_widget(widget, name=kind)
    if isinstance(widget, PSFWidget):
        _follow_marks(qtbot, widget)
        assert "napari_lablink._napari.psf.beads.BeadSource._emit" in _listeners(viewer)
    if kind != "browser":  # the browser follows its profiles, not the viewer
        assert _listeners(viewer)
    core = _core_listeners(widget)
    assert all(core.values())

    widget.close()

    assert _listeners(viewer) == []
    assert not any(_core_listeners(widget).values())
    assert widget._workers.closed if hasattr(widget, "_workers") else widget._res.workers.closed
    # the viewer's events reach nothing of the widget any more
    shown = _shown_layers(widget)
    viewer.add_image(np.zeros((8, 8)), name="after close")
    viewer.layers.selection.active = viewer.layers["after close"]
    assert _shown_layers(widget) == shown


@pytest.mark.parametrize("kind", list(WIDGETS))
def test_closing_the_viewer_disconnects_its_widgets(
    kind, make_napari_viewer, qtbot, tmp_path
) -> None:
    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((1, 2)), name="marks")
    widget = WIDGETS[kind](viewer, tmp_path)
    viewer.window.add_dock_widget(widget, name=kind)
    if isinstance(widget, PSFWidget):
        _follow_marks(qtbot, widget)
    assert _listeners(viewer) or kind == "browser"
    del widget  # the dock owns it now; closing the viewer deletes it

    viewer.close()

    qtbot.waitUntil(lambda: _listeners(viewer) == [], timeout=TIMEOUT_MS)


def _follow_marks(qtbot, widget: PSFWidget) -> None:
    """Connected, and following the "marks" Points layer's data too."""
    qtbot.waitUntil(lambda: not widget.connecting, timeout=TIMEOUT_MS)
    widget.bead_source.setCurrentText("marks")


def _shown_layers(widget: Any) -> list[str]:
    """The layer names a widget offers, for those that follow the layer list."""
    if isinstance(widget, UploadWidget):
        return [widget.layers.item(i).text() for i in range(widget.layers.count())]
    if isinstance(widget, TrackerUploadWidget):
        return [widget.layer.itemText(i) for i in range(widget.layer.count())]
    if isinstance(widget, PSFWidget):
        return [widget.bead_source.itemText(i) for i in range(widget.bead_source.count())]
    return []
