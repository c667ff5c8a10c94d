"""The "Upload to MIBItracker" dock widget: a layer becomes a channel of a tracker image over real
HTTP to the stand-in, read back through the mibi reader; failures are notifications and leave the
layers alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from napari_lablink._napari.opening import wait_for_opens
from napari_lablink._napari.upload.tracker_widget import TrackerUploadWidget
from napari_lablink.testing.tracker.server import TrackerStandIn

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(13)
SIZE = 32
PLUGIN = "napari-lablink"


@pytest.fixture
def tracker(monkeypatch) -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("20240115-A", "tonsil run")
        dsdna = RNG.integers(0, 300, size=(SIZE, SIZE), dtype=np.uint16)
        stand_in.image_id = stand_in.add_image(  # type: ignore[attr-defined]
            run, "FOV1", {"dsDNA": (89, dsdna)}, 160.0
        )
        monkeypatch.setenv("LABLINK_MIBI_EMAIL", stand_in.email)
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", stand_in.password)
        yield stand_in


def image_uri(tracker: TrackerStandIn, image_id: int | None = None) -> str:
    return f"mibi+http://127.0.0.1:{tracker.port}/images/{image_id or tracker.image_id}"


def run_upload(widget: TrackerUploadWidget, qtbot) -> None:
    widget.upload()
    assert not widget.upload_button.isEnabled()  # returned at once; the work is in a thread
    qtbot.waitUntil(widget.upload_button.isEnabled, timeout=30000)


def test_selected_layer_becomes_a_channel(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    viewer = make_napari_viewer()
    # A local file's path is no upload target, even in a folder named like the scheme.
    local = {"lablink": {"uri": "mibi_runs/FOV1.tiff", "server_metadata": {"image_id": 3}}}
    other = viewer.add_image(np.zeros((SIZE, SIZE), np.uint16), name="other", metadata=local)
    mask = RNG.integers(0, 5, size=(SIZE, SIZE), dtype=np.uint16)
    viewer.add_image(mask, name="segmentation", scale=(5.0, 5.0), units="um")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.layer.currentText() == "segmentation"  # the selected (last added) layer
    assert widget.channel.text() == "segmentation"
    assert widget.target.text() == ""
    viewer.layers.selection.active = other
    assert widget.layer.currentText() == "other" and widget.channel.text() == "other"
    widget.layer.setCurrentText("segmentation")
    widget.target.setText(image_uri(tracker))
    run_upload(widget, qtbot)

    assert widget.last_uri == image_uri(tracker)
    assert any("Uploaded channel 'segmentation'" in n and image_uri(tracker) in n
               for n in notifications)  # fmt: skip
    np.testing.assert_array_equal(tracker.image_channels(tracker.image_id)["segmentation"], mask)
    signed = [r for r in tracker.requests if "upload_channel" in r.path]
    assert len(signed) == 1
    assert list(viewer.layers) == [other, viewer.layers["segmentation"]]
    np.testing.assert_array_equal(viewer.layers["segmentation"].data, mask)  # untouched
    viewer.layers.clear()
    viewer.open(image_uri(tracker), plugin=PLUGIN)
    assert wait_for_opens(60)
    layers = list(viewer.layers)
    by_name = {layer.name: layer for layer in layers}
    assert set(by_name) == {"dsDNA (89)", "segmentation"}
    np.testing.assert_array_equal(np.asarray(by_name["segmentation"].data), mask)
    widget.close()


def test_channel_name_and_float_data_from_a_tracker_layer(
    make_napari_viewer, tracker: TrackerStandIn, qtbot
) -> None:
    viewer = make_napari_viewer()
    viewer.open(image_uri(tracker), plugin=PLUGIN)
    assert wait_for_opens(60)
    (dsdna,) = list(viewer.layers)
    density = RNG.random((SIZE, SIZE)).astype(np.float32)
    viewer.add_image(density, name="density")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    # The target defaults to the image a layer came from; a typed name survives layer changes.
    assert widget.target.text() == image_uri(tracker)
    widget.channel.textEdited.emit("cell density")
    widget.channel.setText("cell density")
    viewer.layers.selection.active = dsdna
    widget.layer.setCurrentText("density")
    assert widget.channel.text() == "cell density"
    run_upload(widget, qtbot)
    stored = tracker.image_channels(tracker.image_id)["cell density"]
    assert stored.dtype == np.float32  # floats go as a float32 TIFF
    np.testing.assert_array_equal(stored, density)
    widget.close()


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unknown image", "Not found"),
        ("bad password", "Unable to log in with provided credentials."),
        ("server down", "The server could not be reached"),
        ("not an image uri", "is not a MIBItracker upload target"),
    ],
)
def test_failures_are_notifications_and_leave_layers_alone(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications, monkeypatch, case, words
) -> None:
    viewer = make_napari_viewer()
    data = RNG.integers(0, 9, size=(SIZE, SIZE), dtype=np.uint16)
    viewer.add_image(data, name="keep me")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    target = image_uri(tracker)
    if case == "unknown image":
        target = image_uri(tracker, 4242)
    elif case == "bad password":
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", "not-my-password")
    elif case == "server down":
        tracker.stop()
    else:
        target = f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A/FOV1"
    widget.target.setText(target)
    run_upload(widget, qtbot)

    failures = [n for n in notifications if n.startswith("Upload to MIBItracker failed")]
    assert len(failures) == 1 and words in failures[0], notifications
    assert "not-my-password" not in failures[0] and tracker.password not in failures[0]
    assert widget.status.text() == failures[0]
    assert widget.last_uri is None
    assert [layer.name for layer in viewer.layers] == ["keep me"]
    np.testing.assert_array_equal(viewer.layers["keep me"].data, data)
    if case != "server down":
        assert set(tracker.image_channels(tracker.image_id)) == {"dsDNA"}
    widget.close()


def test_non_plane_layers_are_refused_before_any_request(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, SIZE, SIZE), np.uint16), name="stack")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.target.setText(image_uri(tracker))
    tracker.clear_requests()
    widget.upload()
    assert widget.upload_button.isEnabled()
    assert any("'stack' has shape (3, 32, 32)" in n and "2-D" in n for n in notifications)
    assert tracker.requests == []
    widget.close()


def test_selected_channel_layers_go_to_a_run_as_a_mibitiff(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    viewer = make_napari_viewer()
    cd45 = RNG.integers(0, 40, size=(SIZE, SIZE), dtype=np.uint16)
    cd3 = RNG.integers(0, 40, size=(SIZE, SIZE), dtype=np.uint16)
    first = viewer.add_image(cd45, name="CD45 (150)", scale=(4.0, 4.0), units="um")
    viewer.add_image(np.ones((SIZE, SIZE), np.uint16), name="not selected (1)")
    second = viewer.add_image(cd3, name="CD3 (143)", scale=(4.0, 4.0), units="um")
    viewer.layers.selection = {first, second}
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.run.setText(f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A")
    widget.upload_to_run()
    assert not widget.run_button.isEnabled()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=30000)

    image_id = int(str(widget.last_uri).rsplit("/", 1)[1])
    assert image_id != tracker.image_id  # a new FOV after the run's FOV1
    assert tracker.image(image_id)["number"] == "FOV2"
    stored = tracker.image_channels(image_id)
    assert set(stored) == {"CD45", "CD3"}
    np.testing.assert_array_equal(stored["CD45"], cd45)
    np.testing.assert_array_equal(stored["CD3"], cd3)
    assert any("Uploaded CD45 (150), CD3 (143) as a MIBItiff to" in n for n in notifications)
    widget.close()


def test_run_upload_of_unnamed_layers_says_how_to_name_them(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((SIZE, SIZE), np.uint16), name="nuclei", scale=(4.0, 4.0), units="um")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.run.setText(f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A")
    before = len(tracker.state.images)
    widget.upload_to_run()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=30000)
    assert any(
        n.startswith("Upload to MIBItracker failed") and "'Target (mass)'" in n
        for n in notifications
    ), notifications
    assert len(tracker.state.images) == before
    assert [layer.name for layer in viewer.layers] == ["nuclei"]
    widget.close()


def test_menu_command_opens_the_widget(make_napari_viewer) -> None:
    from napari_lablink._napari.commands import open_tracker_upload_widget

    viewer = make_napari_viewer()
    open_tracker_upload_widget(viewer)
    assert any("Upload to MIBItracker" in name for name in viewer.window.dock_widgets)


def test_a_channel_of_the_wrong_size_is_refused_before_it_is_sent(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((SIZE // 2, SIZE), np.uint16), name="small")
    widget = TrackerUploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.target.setText(image_uri(tracker))
    tracker.clear_requests()
    run_upload(widget, qtbot)
    expected = f"Channel 'small' is {SIZE}x{SIZE // 2} pixels; image {tracker.image_id} is 32x32"
    assert expected in widget.status.text() and "HTTP" not in widget.status.text()
    assert not any("upload_channel" in r.path for r in tracker.requests)
    assert set(tracker.image_channels(tracker.image_id)) == {"dsDNA"}
    widget.close()


def test_targets_start_from_a_tracker_profile_and_cancel_is_information(
    make_napari_viewer, tracker: TrackerStandIn, qtbot, notifications
) -> None:
    from napari_lablink.profiles import Profile, ProfileStore

    store = ProfileStore(secrets=None)
    store.save(Profile(name="m", kind="mikro", url="http://127.0.0.1:8080/mikro"))
    store.save(Profile(name="t", kind="mibi", url=f"http://127.0.0.1:{tracker.port}"))
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((SIZE, SIZE), np.uint16), name="late")
    widget = TrackerUploadWidget(viewer, store=store)
    qtbot.addWidget(widget)
    server = f"mibi+http://127.0.0.1:{tracker.port}"
    assert widget.target.text() == f"{server}/images/"
    assert widget.run.text() == f"{server}/runs/"

    widget.target.setText(image_uri(tracker))
    tracker.clear_requests()
    tracker.faults.kinds = ["slow"]
    tracker.faults.methods = ["GET"]
    tracker.faults.rate = 1.0
    try:
        widget.upload()
        assert widget.progress.isVisibleTo(widget) and widget.cancel_button.isEnabled()
        widget.cancel_button.click()
        qtbot.waitUntil(widget.upload_button.isEnabled, timeout=30000)
    finally:
        tracker.faults.clear()
    assert widget.status.text() == "Upload to MIBItracker cancelled; nothing was sent"
    assert widget.status.text() in notifications
    assert not any("failed" in n for n in notifications)
    assert not any("upload_channel" in r.path for r in tracker.requests)
    assert not widget.progress.isVisibleTo(widget)
    widget.close()
