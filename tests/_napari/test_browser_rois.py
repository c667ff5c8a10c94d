"""The Lablink browser's "Load ROIs" box: opening a mikro image with or without its ROIs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_lablink._napari.browser.widget import BrowserWidget
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink.client.mikro.roi_wire import GEN1_CREATE, GEN2_CREATE
from napari_lablink.profiles import Profile, ProfileStore
from napari_lablink.testing import MikroStandIn
from tests.testing.helpers import data_of, graphql

pytestmark = pytest.mark.viewer

STACK = np.random.default_rng(4).integers(0, 255, (1, 1, 5, 30, 40), dtype=np.uint8)
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def mikro() -> Iterator[MikroStandIn]:
    with MikroStandIn() as stand_in:
        image = stand_in.add_image(STACK, "cells 3d", pixel_size=(0.2, 0.25, 0.5))
        variables = {
            "input": {
                "image": image,
                "kind": "RECTANGLE",
                "vectors": [[0, 0, 2, 5, 6], [0, 0, 2, 15, 26]],
            }
        }
        data_of(graphql(stand_in.gen2_graphql_url, GEN2_CREATE, variables, stand_in.token))
        rep = stand_in.add_representation(STACK, "cells gen1")
        variables_1 = {
            "representation": rep,
            "type": "POINT",
            "vectors": [{"x": 3, "y": 4, "z": 1}],
        }
        data_of(graphql(stand_in.gen1_graphql_url, GEN1_CREATE, variables_1, stand_in.token))
        yield stand_in


@pytest.fixture
def store(_isolated_config) -> ProfileStore:
    return ProfileStore(secrets=None)


def _browse(qtbot, make_napari_viewer, store: ProfileStore, url: str) -> BrowserWidget:
    viewer = make_napari_viewer()
    widget = BrowserWidget(viewer, store=store)
    viewer.window.add_dock_widget(widget, name="Lablink browser")
    widget.select_profile("m")
    qtbot.mouseClick(widget.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.state("m") == "connected", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.loading and bool(widget.entries), timeout=WAIT_MS)
    widget.select_entry(0)
    return widget


def _kinds(widget: BrowserWidget) -> list[str]:
    return [layer._type_string for layer in widget.viewer.layers]


@pytest.mark.parametrize("prefix", ["/mikro", ""])
def test_load_rois_opens_them_and_is_remembered(
    qtbot, make_napari_viewer, mikro, store, prefix
) -> None:
    url = f"http://{mikro.uri_authority}{prefix}"
    store.save(Profile(name="m", kind="mikro", url=url, s3=mikro.s3_endpoint), token=mikro.token)
    widget = _browse(qtbot, make_napari_viewer, store, url)
    # On by default: the image's ROIs come along, as with the reader's ?rois=auto.
    assert widget.load_rois.isVisibleTo(widget) and widget.load_rois.isChecked()
    assert widget.selected_uri() == widget.selected_entry().uri
    widget.open_selected()
    assert wait_for_opens(60)
    # Both ROI layers open (live, to draw in); the image's one ROI is in the layer of its kind.
    assert _kinds(widget) == ["image", "shapes", "points"]
    image, shapes, points = widget.viewer.layers
    assert (len(shapes.data), len(points.data)) == ((1, 0) if prefix else (0, 1))
    np.testing.assert_allclose(shapes.scale, image.scale)
    # Unchecked: the image alone, and the choice outlives the widget.
    widget.load_rois.setChecked(False)
    assert widget.selected_uri().endswith("rois=0")
    widget.viewer.layers.clear()
    widget.open_selected()
    assert wait_for_opens(60)
    assert _kinds(widget) == ["image"]
    again = _browse(qtbot, make_napari_viewer, store, url)
    assert not again.load_rois.isChecked()
    again.load_rois.setChecked(True)
    assert _browse(qtbot, make_napari_viewer, store, url).load_rois.isChecked()
