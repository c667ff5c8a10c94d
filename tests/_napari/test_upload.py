"""Uploading napari layers with the npe2 writer and the dock widget, read back by the reader."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lablink import ConfigurationError
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink._napari.upload.mikro_widget import UploadWidget

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(5)


@pytest.fixture
def token_env(mikro, monkeypatch):
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)
    # napari matches writers by file extension: a "?s3=http://127.0.0.1:9000" query would read as
    # one (".1:9000"); these tests take the S3 endpoint from the environment (the %2E form of the
    # query is tested on its own below).
    monkeypatch.setenv("LABLINK_S3_ENDPOINT", mikro.s3_endpoint)


def target(mikro, kind: str) -> str:
    prefix = "/mikro" if kind == "image" else ""
    return f"mikro+http://{mikro.uri_authority}{prefix}/{kind}"


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_save_channels_as_one_image_and_open_it_back(
    make_napari_viewer, mikro_clean, token_env, kind
):
    viewer = make_napari_viewer()
    planes = RNG.integers(0, 4000, size=(2, 6, 40, 56), dtype=np.uint16)
    viewer.add_image(planes[0], name="DAPI", colormap="blue", scale=(0.5, 0.2, 0.25), units="um")
    viewer.add_image(planes[1], name="GFP", colormap="green", scale=(0.5, 0.2, 0.25), units="um")
    written = viewer.layers.save(target(mikro_clean, kind), plugin="napari-lablink")
    assert len(written) == 1 and f"/{kind}/" in written[0]
    viewer.layers.clear()
    viewer.open(written[0], plugin="napari-lablink")
    assert wait_for_opens(60)
    reopened = list(viewer.layers)
    assert [layer.name for layer in reopened] == ["DAPI", "GFP"]
    for layer, expected in zip(reopened, planes, strict=True):
        np.testing.assert_array_equal(np.asarray(layer.data), expected)
        np.testing.assert_allclose(layer.scale, (0.5, 0.2, 0.25))
    if kind == "representation":  # generation 1 keeps colours
        np.testing.assert_allclose(reopened[1].colormap.colors[-1], [0, 1, 0, 1])


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_labels_layer_comes_back_as_labels(make_napari_viewer, mikro_clean, token_env, kind):
    viewer = make_napari_viewer()
    labels = np.zeros((30, 40), dtype=np.int32)
    labels[3:9, 5:25] = 4
    viewer.add_labels(labels, name="cells")
    (uri,) = viewer.layers.save(target(mikro_clean, kind), plugin="napari-lablink")
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    _, layer = viewer.layers  # the saved layer, then the one read back
    assert layer._type_string == "labels"
    np.testing.assert_array_equal(np.asarray(layer.data), labels)


def test_axis_labels_decide_the_layout(make_napari_viewer, mikro_clean, token_env):
    viewer = make_napari_viewer()
    data = RNG.integers(0, 100, size=(3, 4, 10, 12), dtype=np.uint8)
    layer = viewer.add_image(data, name="zt")
    layer.axis_labels = ("z", "t", "y", "x")
    (uri,) = viewer.layers.save(target(mikro_clean, "image"), plugin="napari-lablink")
    image = __import__("napari_lablink").open_image(uri)
    np.testing.assert_array_equal(image.data.values[0], data.transpose(1, 0, 2, 3))


def test_widget_uploads_off_the_qt_thread(
    make_napari_viewer, mikro_clean, token_env, qtbot, notifications
):
    viewer = make_napari_viewer()
    data = RNG.integers(0, 4000, size=(512, 640), dtype=np.uint16)
    viewer.add_image(data, name="plane", scale=(0.3, 0.3), units="um")
    widget = UploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.server.setCurrentText(target(mikro_clean, "image"))
    widget.name.setText("from the widget")
    widget.tags.setText("a, b")
    widget.pyramid.setChecked(True)
    assert [layer.name for layer in widget.checked_layers()] == ["plane"]
    widget.upload()
    assert not widget.upload_button.isEnabled()  # returned at once; the work is in a thread
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=60000)
    (uri,) = widget.last_uris
    assert any(uri in n for n in notifications)
    image = __import__("napari_lablink").open_image(uri)
    assert image.name == "from the widget" and set(image.server_metadata["tags"]) == {"a", "b"}
    assert image.multiscale and image.pixel_size == {"x": 0.3, "y": 0.3}
    np.testing.assert_array_equal(image.data.values[0, 0, 0], data)
    np.testing.assert_array_equal(viewer.layers["plane"].data, data)  # the layer is untouched
    widget.close()


def test_widget_failure_is_a_notification_and_keeps_the_layer(
    make_napari_viewer, mikro_clean, token_env, qtbot, notifications
):
    viewer = make_napari_viewer()
    data = np.ones((64, 64), np.uint16)
    viewer.add_image(data, name="keep me")
    widget = UploadWidget(viewer)
    qtbot.addWidget(widget)
    before = len(mikro_clean.state.images)
    mikro_clean.s3.faults.methods = ["PUT"]
    mikro_clean.s3.faults.rate = 1.0
    widget.server.setCurrentText(target(mikro_clean, "image"))
    widget.upload()
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=60000)
    assert any(
        "Upload to mikro failed" in n and "Nothing was registered" in n for n in notifications
    )
    assert len(mikro_clean.state.images) == before
    assert list(viewer.layers) == [viewer.layers["keep me"]]
    np.testing.assert_array_equal(viewer.layers["keep me"].data, data)


def test_widget_refuses_a_bad_target(make_napari_viewer, qtbot, notifications):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((4, 4)), name="x")
    widget = UploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.server.setCurrentText("mikro+http://127.0.0.1:1/representation/5")
    widget.upload()
    assert any("not a mikro upload target" in n for n in notifications)


def test_menu_command_opens_the_widget(make_napari_viewer):
    from napari_lablink._napari.commands import open_upload_widget

    viewer = make_napari_viewer()
    open_upload_widget(viewer)
    assert any("Upload to mikro" in name for name in viewer.window.dock_widgets)


def test_acquire_menu_opens_the_psf_widget(make_napari_viewer):
    from napari_lablink._napari.commands import open_psf_widget

    viewer = make_napari_viewer()
    open_psf_widget(viewer)
    (name,) = [n for n in viewer.window.dock_widgets if "PSF acquisition" in n]
    viewer.window.dock_widgets[name].shutdown()


def test_rgb_layer_uploads_as_colour_and_a_stack_layer_as_planes(
    make_napari_viewer, mikro_clean, token_env
):
    """The layer says what its last axis is, so the colour check never refuses a layer."""
    viewer = make_napari_viewer()
    photo = RNG.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    viewer.add_image(photo, name="photo", rgb=True)
    (uri,) = viewer.layers.save(target(mikro_clean, "representation"), plugin="napari-lablink")
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    _, layer = viewer.layers  # the saved layer, then the one read back
    assert layer.rgb
    np.testing.assert_array_equal(np.asarray(layer.data), photo)
    viewer.layers.clear()
    viewer.add_image(photo, name="stack", rgb=False)  # napari shows 48 planes of 64 x 3
    (uri,) = viewer.layers.save(target(mikro_clean, "representation"), plugin="napari-lablink")
    assert __import__("napari_lablink").open_image(uri).shape == (1, 1, 48, 64, 3)


@pytest.mark.parametrize(("kind", "count"), [("image", 1), ("representation", 2)])
def test_save_target_with_the_s3_option_in_a_form_napari_accepts(
    make_napari_viewer, mikro_clean, monkeypatch, kind, count
):
    """napari takes a dot after the last '/' for a file extension, and ``?s3=http://127.0.0.1:P``
    has one; written as %2E the dots are no extension and the URI means the same. (One layer
    goes through another writer of the plugin than several: napari picks by layer count.)"""
    monkeypatch.setenv("LABLINK_TOKEN", mikro_clean.token)
    viewer = make_napari_viewer()
    data = RNG.integers(0, 4000, size=(count, 30, 20), dtype=np.uint16)
    for n, plane in enumerate(data):
        viewer.add_image(plane, name=f"channel {n}")
    endpoint = mikro_clean.s3_endpoint.replace(".", "%2E")
    save_to = f"{target(mikro_clean, kind)}?s3={endpoint}"
    written = viewer.layers.save(save_to, plugin="napari-lablink")
    assert len(written) == 1 and f"?s3={mikro_clean.s3_endpoint}" in written[0]
    image = __import__("napari_lablink").open_image(written[0])
    np.testing.assert_array_equal(image.levels[0].compute()[:, 0, 0], data)


def test_save_without_an_s3_endpoint_says_how_to_give_one(
    make_napari_viewer, mikro_clean, monkeypatch
):
    monkeypatch.setenv("LABLINK_TOKEN", mikro_clean.token)
    viewer = make_napari_viewer()
    viewer.add_labels(np.ones((8, 8), np.uint8), name="cells")
    with pytest.raises(ConfigurationError) as info:
        viewer.layers.save(target(mikro_clean, "image"), plugin="napari-lablink")
    text = str(info.value)
    assert "No S3 endpoint is configured" in text
    assert "write the endpoint's dots as %2E" in text and "?s3=http://127%2E0%2E0%2E1:9000" in text
    assert "LABLINK_S3_ENDPOINT" in text and "'Default S3 endpoint' setting" in text


def test_targets_come_from_mikro_profiles_only(make_napari_viewer, qtbot):
    from napari_lablink.profiles import Profile, ProfileStore

    store = ProfileStore(secrets=None)
    store.save(Profile(name="g2", kind="mikro", url="http://127.0.0.1:8080/mikro/graphql"))
    store.save(Profile(name="g1", kind="mikro", url="https://mikro.example.org"))
    store.save(Profile(name="t", kind="mibi", url="http://127.0.0.1:8000"))
    widget = UploadWidget(make_napari_viewer(), store=store)
    qtbot.addWidget(widget)
    offered = [widget.server.itemText(i) for i in range(widget.server.count())]
    assert offered == [
        "mikro+http://127.0.0.1:8080/mikro/image",
        "mikro://mikro.example.org/representation",
    ]


def test_widget_progress_and_cancel_are_in_the_widget(
    make_napari_viewer, mikro_clean, token_env, qtbot, notifications
):
    viewer = make_napari_viewer()
    viewer.add_image(RNG.integers(0, 9, size=(8, 64, 64), dtype=np.uint16), name="slow")
    widget = UploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.server.setCurrentText(target(mikro_clean, "image"))
    before = len(mikro_clean.state.images)
    mikro_clean.s3.faults.kinds = ["slow"]
    mikro_clean.s3.faults.methods = ["PUT"]
    mikro_clean.s3.faults.rate = 1.0
    widget.upload()
    assert widget.progress.isVisibleTo(widget) and widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.progress.maximum() > 0, timeout=60000)  # chunks counted
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=60000)
    assert not widget.progress.isVisibleTo(widget)
    assert widget.status.text() == "Upload cancelled; nothing was registered on the server"
    assert widget.status.text() in notifications
    assert not any("failed" in n for n in notifications)
    assert len(mikro_clean.state.images) == before and widget.last_uris == []


def test_what_mikro_cannot_store_is_refused_before_sending():
    from napari_lablink._napari.upload.mikro_layers import jobs_from_layer_data
    from napari_lablink._napari.upload.mikro_widget import check_jobs

    target = "mikro+http://127.0.0.1:1/mikro/image"
    complex_data = np.ones((8, 8), np.complex64)
    waves = jobs_from_layer_data([(complex_data, {"name": "waves"}, "image")], target)
    assert check_jobs(waves) == (
        "'waves' has data type complex64; mikro stores numbers (integers, floats)"
    )
    empty = jobs_from_layer_data([(np.ones((0, 8), np.uint8), {"name": "none"}, "image")], target)
    assert check_jobs(empty) == "'none' is empty (shape (0, 8))"
    fine = jobs_from_layer_data([(np.ones((8, 8), np.uint8), {"name": "ok"}, "labels")], target)
    assert check_jobs(fine) is None


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_colours_and_contrast_survive_the_round_trip(
    make_napari_viewer, mikro_clean, token_env, kind
):
    """Generation 1 keeps colours in its omero channels, generation 2 colours and contrast
    limits in RGB views; a napari colormap comes back under its napari name."""
    from napari.utils.colormaps import Colormap

    viewer = make_napari_viewer()
    planes = RNG.integers(0, 4000, size=(2, 3, 16, 16), dtype=np.uint16)
    orange = Colormap([[0, 0, 0, 1], [1, 165 / 255, 0, 1]], name="orange ramp")
    viewer.add_image(planes[0], name="DAPI", colormap="blue", contrast_limits=(100, 3000))
    viewer.add_image(planes[1], name="GFP", colormap=orange, contrast_limits=(50, 2000))
    (uri,) = viewer.layers.save(target(mikro_clean, kind), plugin="napari-lablink")
    viewer.layers.clear()
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    dapi, gfp = viewer.layers
    assert dapi.colormap.name == "blue"
    np.testing.assert_allclose(gfp.colormap.colors[-1], [1, 165 / 255, 0, 1], atol=1e-6)
    if kind == "image":
        assert tuple(dapi.contrast_limits) == (100, 3000)
        assert tuple(gfp.contrast_limits) == (50, 2000)
