"""Browsing PIMS by path against the real Cytomine PIMS 1.0.0 (it has no listing route)."""

from __future__ import annotations

import pytest

from napari_lablink.client.connection import connect
from napari_lablink.client.errors import ConfigurationError, NotFoundError
from napari_lablink.client.pims.server import PimsServer
from napari_lablink.testing.pims.images import TestImage
from napari_lablink.testing.pims.server import RealPims

pytestmark = [pytest.mark.pims, pytest.mark.timeout(900)]


def test_a_path_lists_its_image_with_the_facts_of_info(
    real_pims: RealPims, pims_images: dict[str, TestImage]
) -> None:
    image = pims_images["multichannel"]
    path = real_pims.path(image.path)
    with connect(f"pims+http://127.0.0.1:{real_pims.port}") as server:
        assert isinstance(server, PimsServer)
        (entry,) = server.browse(f"/{path}")
        assert entry.uri == real_pims.uri(image.path)
        assert entry.name == "multichannel.ome.tif" and entry.kind == "image"
        assert entry.shape == (3, 1, 1, 300, 412) and entry.dims == ("c", "t", "z", "y", "x")
        assert entry.dtype == "uint16"
        assert entry.channels == ("DAPI", "GFP", "mCherry")
        assert entry.pixel_size == {"y": 0.325, "x": 0.325}
        assert not entry.has_children
        assert server.get(entry.uri).shape == entry.shape
        assert server.browse("") == []
        assert server.browse(path, offset=1) == []
        with pytest.raises(NotFoundError, match=r"upload-missing/nothing\.ome\.tif"):
            server.browse("upload-missing/nothing.ome.tif")
        with pytest.raises(ConfigurationError, match="no folders"):
            server.browse(path, parent=entry.uri)


@pytest.mark.viewer
def test_the_browser_finds_a_path_and_opens_it(
    qtbot, make_napari_viewer, real_pims: RealPims, pims_images: dict[str, TestImage]
) -> None:
    from qtpy.QtCore import Qt

    from napari_lablink._napari.browser.widget import BrowserWidget
    from napari_lablink.profiles import Profile, ProfileStore

    store = ProfileStore(secrets=None)
    store.save(Profile(name="pims", kind="pims", url=f"http://127.0.0.1:{real_pims.port}"))
    viewer = make_napari_viewer()
    widget = BrowserWidget(viewer, store=store)
    widget.connect_profile("pims")
    qtbot.waitUntil(lambda: widget.state("pims") == "connected", timeout=30_000)
    qtbot.waitUntil(lambda: not widget.loading, timeout=30_000)
    assert widget.entries == []  # PIMS lists nothing: it is browsed by path
    image = pims_images["multichannel"]
    widget.search_box.setText(real_pims.path(image.path))
    qtbot.keyClick(widget.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not widget.loading and bool(widget.entries), timeout=30_000)
    widget.select_entry(0)
    assert widget.details["channels"].text() == "DAPI, GFP, mCherry"
    assert widget.details["pixel size"].text() == "y 0.325 µm, x 0.325 µm"
    widget.open_selected()
    from napari_lablink._napari.opening import wait_for_opens

    assert wait_for_opens(60)
    assert [layer.name for layer in widget.viewer.layers] == ["DAPI", "GFP", "mCherry"]
    widget.search_box.setText("upload-missing/nothing.ome.tif")
    qtbot.keyClick(widget.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not widget.loading, timeout=30_000)
    assert widget.entries == [] and "no image file at this path" in widget.status.text()
