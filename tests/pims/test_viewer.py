"""Images served by the real PIMS in a real napari viewer (under Xvfb).

The reader's layer data goes into the viewer as napari would add it; the pyramid is looked at
zoomed out and zoomed in, where napari must pick different levels and fetch only what it shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager

from napari_lablink._napari.readers import read_remote_now
from napari_lablink.testing.pims.images import TestImage

pytestmark = [pytest.mark.pims, pytest.mark.viewer, pytest.mark.timeout(900)]


def add(viewer, uri: str) -> list:
    """Add what the reader returns, as napari does with a reader's layer data tuples."""
    layers = []
    for data, kwargs, kind in read_remote_now(uri):
        added = getattr(viewer, f"add_{kind}")(data, **kwargs)
        layers.extend(added if isinstance(added, list) else [added])
    return layers


def source(image: TestImage, level: int = 0) -> np.ndarray:
    with tifffile.TiffFile(image.path) as tif:
        return tif.series[0].levels[level].asarray()


def test_pyramid_opens_as_multiscale_channels(make_napari_viewer, real_pims, pims_images) -> None:
    image = pims_images["pyramid"]
    viewer = make_napari_viewer()
    layers = add(viewer, real_pims.uri(image.path))
    assert [layer.name for layer in layers] == ["Hoechst", "CD45"]
    for layer in layers:
        assert layer.multiscale
        assert [level.shape for level in layer.data] == [(3000, 4100), (1500, 2050), (750, 1025)]
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
        assert layer.blending == "additive"
        assert layer.metadata["lablink"]["uri"] == real_pims.uri(image.path)
    np.testing.assert_allclose(layers[0].colormap.colors[-1], [1, 0, 0, 1])
    np.testing.assert_allclose(layers[1].colormap.colors[-1], [0, 1, 0, 1])
    low, high = layers[1].contrast_limits
    assert 0 < low < high < 65535  # PIMS's FAST bounds, not the dtype's range


def test_pyramid_zoomed_out_and_in(make_napari_viewer, real_pims, pims_images, tmp_path) -> None:
    image = pims_images["pyramid"]
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(800, 600)
    layers = add(viewer, real_pims.uri(image.path))
    viewer.reset_view()
    whole = viewer.screenshot(canvas_only=True, flash=False)
    assert layers[0].data_level == 2  # the whole slide on a small canvas: the smallest level
    # Zoomed 16 times onto the centre, a few hundred full-resolution pixels show: level 0.
    viewer.scene.camera.center = (1500 * 0.5, 2050 * 0.5)
    viewer.scene.camera.zoom = viewer.scene.camera.zoom * 16
    close = viewer.screenshot(canvas_only=True, flash=False)
    assert layers[0].data_level == 0
    for shot, name in ((whole, "whole"), (close, "close")):
        _save(tmp_path / f"pims-pyramid-{name}.png", shot)
        red, green = shot[..., 0].astype(float), shot[..., 1].astype(float)
        assert red.std() > 5 and green.std() > 5  # both channels show structure
    assert not np.array_equal(whole, close)
    # What napari holds for the visible part of level 0 is the source's pixels there, and
    # panning to another part of the slide brings that part's pixels.
    full = source(image)[1]
    seen = []
    for center in ((1500 * 0.5, 2050 * 0.5), (400 * 0.5, 3700 * 0.5)):
        viewer.scene.camera.center = center
        viewer.screenshot(canvas_only=True, flash=False)
        (top, left), (bottom, right) = layers[1].corner_pixels
        assert 0 < bottom - top < 3000 and 0 < right - left < 4100  # only part of the slide
        shown = np.asarray(layers[1]._slice.image.raw)
        np.testing.assert_array_equal(shown, full[top : bottom + 1, left : right + 1])
        seen.append((top, left))
    assert seen[0] != seen[1]


def test_rgb_pyramid_opens_as_one_rgb_layer(make_napari_viewer, real_pims, pims_images) -> None:
    image = pims_images["rgb_pyramid"]
    viewer = make_napari_viewer()
    (layer,) = add(viewer, real_pims.uri(image.path))
    assert layer.rgb and layer.multiscale
    assert layer.name == "rgb_pyramid.ome.tif"
    assert [level.shape for level in layer.data] == [
        (2000, 2600, 3),
        (1000, 1300, 3),
        (500, 650, 3),
        (250, 325, 3),
    ]
    np.testing.assert_allclose(layer.scale, (0.25, 0.25))
    np.testing.assert_array_equal(np.asarray(layer.data[3]), source(image, 3))


def test_zt_stack_has_sliders(make_napari_viewer, real_pims, pims_images) -> None:
    image = pims_images["zt_stack"]
    viewer = make_napari_viewer()
    layers = add(viewer, real_pims.uri(image.path))
    assert [layer.name for layer in layers] == ["Lamin", "Tubulin"]
    assert viewer.dims.ndim == 4
    assert layers[1].data.shape == (3, 5, 200, 240)
    np.testing.assert_allclose(layers[1].scale, (1.0, 1.5, 0.2, 0.2))
    viewer.dims.set_point(0, 2)
    viewer.dims.set_point(1, 4 * 1.5)
    np.testing.assert_array_equal(np.asarray(layers[1]._slice.image.raw), source(image)[2, 4, 1])


def test_unknown_path_notifies_and_adds_nothing(make_napari_viewer, real_pims) -> None:
    seen: list[str] = []

    def record(event) -> None:
        seen.append(str(event.value.message if hasattr(event, "value") else event))

    notification_manager.notification_ready.connect(record)
    try:
        viewer = make_napari_viewer()
        uri = f"pims+http://127.0.0.1:{real_pims.port}/upload-missing/nothing.ome.tif"
        assert read_remote_now(uri) == [(None,)]
    finally:
        notification_manager.notification_ready.disconnect(record)
    assert len(viewer.layers) == 0
    assert any("upload-missing/nothing.ome.tif" in n and "HTTP 404" in n for n in seen), seen


def _save(path: Path, shot: np.ndarray) -> None:
    import imagecodecs

    path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(shot)))
