"""The Upload to mikro widget's "annotations" choice: Shapes/Points layers as ROIs (Xvfb)."""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import pytest

from napari_lablink import ConfigurationError, UploadCancelledError, connect
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink._napari.upload.mikro_rois import annotation_target, check_annotations
from napari_lablink._napari.upload.mikro_widget import ANNOTATIONS, UploadWidget
from napari_lablink.client.mikro.rois import Roi

pytestmark = pytest.mark.viewer

PIXELS = np.random.default_rng(3).integers(0, 200, (1, 1, 6, 40, 50), dtype=np.uint8)
SCALE = (0.5, 0.25, 0.2)  # z, y, x in micrometres
GENERATIONS = ["image", "representation"]
WAIT_MS = 60_000


@pytest.fixture
def token_env(mikro, monkeypatch):
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)
    monkeypatch.setenv("LABLINK_S3_ENDPOINT", mikro.s3_endpoint)


def _image(mikro, kind: str) -> str:
    if kind == "image":
        object_id = mikro.add_image(PIXELS, "to annotate", pixel_size=(0.2, 0.25, 0.5))
        return f"mikro+http://{mikro.uri_authority}/mikro/image/{object_id}"
    object_id = mikro.add_representation(
        PIXELS, "to annotate", physical_size={"x": 0.2, "y": 0.25, "z": 0.5}
    )
    return f"mikro+http://{mikro.uri_authority}/representation/{object_id}"


def _on_server(mikro, uri: str) -> list[Any]:
    generation = "gen2" if "/image/" in uri else "gen1"
    object_id = uri.rsplit("/", 1)[-1]
    return [r for r in mikro.rois.all(generation) if r.target == object_id]


def _widget(qtbot, viewer) -> UploadWidget:
    widget = UploadWidget(viewer)
    qtbot.addWidget(widget)
    widget.what.setCurrentText(ANNOTATIONS)
    return widget


def _check(widget: UploadWidget, names: list[str]) -> None:
    from qtpy.QtCore import Qt

    for i in range(widget.layers.count()):
        item = widget.layers.item(i)
        on = item.text() in names
        item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_annotations_become_rois_of_an_open_image(
    make_napari_viewer, qtbot, mikro_clean, token_env, notifications, kind
) -> None:
    uri = _image(mikro_clean, kind)
    viewer = make_napari_viewer()
    viewer.open(uri + "?rois=0", plugin="napari-lablink")
    assert wait_for_opens(60)
    # Drawn in world coordinates (µm) on unit-scale layers, one shape red.
    shapes = viewer.add_shapes(
        [
            np.asarray([[1.0, 2.5, 4.0], [1.0, 2.5, 8.0], [1.0, 5.0, 8.0], [1.0, 5.0, 4.0]]),
            np.asarray([[0.5, 0.25, 0.2], [0.5, 2.5, 2.0]]),
        ],
        shape_type=["rectangle", "line"],
        edge_color=["red", "#777777"],
        name="cells",
    )
    points = viewer.add_points(np.asarray([[1.5, 1.25, 1.0], [2.0, 5.0, 6.0]]), name="beads")
    widget = _widget(qtbot, viewer)
    # Only the annotation layers are offered, and the open image is the target.
    assert [widget.layers.item(i).text() for i in range(widget.layers.count())] == [
        "cells",
        "beads",
    ]
    assert widget.image.currentText() == uri
    assert not widget.name.isVisibleTo(widget) and widget.image.isVisibleTo(widget)
    _check(widget, ["cells", "beads"])
    widget.upload()
    assert not widget.upload_button.isEnabled()  # returned at once; the work is in a thread
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=WAIT_MS)
    assert widget.status.text().startswith(f"Saved 4 ROI(s) to {uri}: 4 new")
    records = _on_server(mikro_clean, uri)
    kinds = sorted(r.kind for r in records)
    assert kinds == ["LINE", "POINT", "POINT", "RECTANGLE"]
    rectangle = next(r for r in records if r.kind == "RECTANGLE")
    corners = (
        rectangle.vectors
        if kind == "image"
        else [[v["c"], v["t"], v["z"], v["y"], v["x"]] for v in rectangle.vectors]
    )
    np.testing.assert_allclose(corners, [[0, 0, 2, 10, 20], [0, 0, 2, 20, 40]])
    # The layers know their ROIs now: uploading again adds no copies.
    assert all(shapes.features["roi_id"]) and all(points.features["roi_id"])
    widget.upload()
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=WAIT_MS)
    assert "0 new, 0 moved, 0 deleted" in widget.status.text()
    assert len(_on_server(mikro_clean, uri)) == 4
    # Neither generation can keep the red colour, and the user is told so.
    wording = "generation 2 keeps no colours" if kind == "image" else "its API cannot set one"
    assert any(wording in n and "1 colour(s)" in n for n in notifications)
    widget.close()


def test_a_bare_id_goes_to_the_server_field(make_napari_viewer, qtbot, mikro_clean, token_env):
    uri = _image(mikro_clean, "image")
    viewer = make_napari_viewer()
    viewer.add_points(np.asarray([[0.0, 1.0, 1.0]]), name="one")
    widget = _widget(qtbot, viewer)
    assert widget.image.currentText() == ""  # no mikro image is open
    widget.server.setCurrentText(uri.rsplit("/", 1)[0])
    widget.image.setCurrentText(uri.rsplit("/", 1)[1])
    _check(widget, ["one"])
    widget.upload()
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=WAIT_MS)
    assert [r.kind for r in _on_server(mikro_clean, uri)] == ["POINT"]


def test_what_cannot_become_rois_is_refused_before_sending(
    make_napari_viewer, qtbot, mikro_clean, token_env, notifications
) -> None:
    uri = _image(mikro_clean, "image")
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 4)), name="plain")
    points = viewer.add_points(np.asarray([[0.0, 1.0]]), name="dots")
    widget = _widget(qtbot, viewer)
    _check(widget, [])
    widget.upload()
    assert "check at least one Shapes or Points layer" in widget.status.text()
    _check(widget, ["dots"])
    widget.image.setCurrentText("")
    widget.upload()
    assert "name the image the ROIs belong to" in widget.status.text()
    widget.image.setCurrentText(uri.rsplit("/", 1)[0])  # a server, not an image
    widget.upload()
    assert "is not a mikro image" in widget.status.text()
    target = annotation_target(uri, "")
    assert "only Shapes and Points layers become ROIs" in check_annotations([image], target)
    points.metadata = {"lablink": {"rois": {"image": "mikro+http://elsewhere:9/image/3"}}}
    widget.image.setCurrentText(uri)
    widget.upload()
    assert "on mikro+http://elsewhere:9, not on" in widget.status.text()
    other = uri.rsplit("/", 1)[0] + "/999"
    points.metadata = {"lablink": {"rois": {"image": other}}}
    widget.upload()
    assert f"holds the ROIs of {other}, not of {uri}" in widget.status.text()
    assert all(m.startswith("Upload to mikro:") for m in notifications)
    assert not _on_server(mikro_clean, uri)


def test_cancel_stops_between_rois_and_says_how_many_were_saved(mikro_clean) -> None:
    uri = _image(mikro_clean, "image")
    rois = [Roi("point", np.asarray([[0, 0, 1, y, 1]], dtype=float)) for y in range(20)]
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 5:
            cancel.set()

    with connect(uri.rsplit("/image/", 1)[0], token=mikro_clean.token) as server:
        with pytest.raises(UploadCancelledError, match="Cancelled after 5 of 20 ROIs") as info:
            server.upload_rois(uri, rois, progress=progress, cancel=cancel)
        assert "those stay on the server" in str(info.value)
        assert len(_on_server(mikro_clean, uri)) == 5
        assert seen == [(n, 20) for n in range(6)]
        seen.clear()
        report = server.upload_rois(uri, rois[:3], progress=progress)
        assert seen[-1] == (3, 3) and len(report.created) == 3
        with pytest.raises(ConfigurationError, match="names no image"):
            server.upload_rois(uri.rsplit("/", 1)[0], rois)


def test_widget_cancel_reports_what_stayed(
    make_napari_viewer, qtbot, mikro_clean, token_env
) -> None:
    uri = _image(mikro_clean, "image")
    viewer = make_napari_viewer()
    many = np.stack([np.full(400, 1.0), np.linspace(0, 9, 400), np.linspace(0, 9, 400)], axis=1)
    viewer.add_points(many, name="many")
    widget = _widget(qtbot, viewer)
    widget.image.setCurrentText(uri)
    _check(widget, ["many"])
    widget.upload()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.upload_button.isEnabled(), timeout=WAIT_MS)
    found = re.search(r"Cancelled after (\d+) of 400 ROIs", widget.status.text())
    assert found is not None, widget.status.text()
    assert len(_on_server(mikro_clean, uri)) == int(found.group(1))
