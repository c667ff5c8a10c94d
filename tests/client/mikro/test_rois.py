"""ROIs through the mikro client, both generations, against the stand-in over real HTTP."""

from __future__ import annotations

import queue
import time
from typing import Any

import numpy as np
import pytest

import napari_lablink
from napari_lablink import AuthenticationError, ConfigurationError
from napari_lablink.client.mikro.roi_wire import GEN1_CREATE, GEN2_CREATE
from napari_lablink.client.mikro.rois import Roi, RoiEvent, box_corners, from_wire, to_wire
from napari_lablink.testing import MikroStandIn

PIXELS = np.zeros((2, 3, 6, 40, 50), dtype=np.uint8)  # c, t, z, y, x
SIZE = {"x": 0.2, "y": 0.25, "z": 0.5}
GENERATIONS = ["representation", "image"]


@pytest.fixture(scope="module")
def targets(mikro: MikroStandIn) -> dict[str, str]:
    return {
        "representation": mikro.add_representation(PIXELS, "rois gen1", physical_size=SIZE),
        "image": mikro.add_image(PIXELS, "rois gen2", pixel_size=(0.2, 0.25, 0.5)),
    }


@pytest.fixture
def servers(mikro_clean: MikroStandIn) -> Any:
    """A connection per generation (generation 2 lives under the /mikro prefix)."""
    base = f"mikro+http://{mikro_clean.uri_authority}"
    with (
        napari_lablink.connect(base, token=mikro_clean.token) as gen1,
        napari_lablink.connect(f"{base}/mikro", token=mikro_clean.token) as gen2,
    ):
        yield {"representation": gen1, "image": gen2}


def _ref(kind: str, targets: dict[str, str]) -> str:
    return f"{kind}/{targets[kind]}"


# napari data coordinates of a (t, z, y, x) layer with the image's scale, in micrometres
SCALE = (1.0, 0.5, 0.25, 0.2)


def _shapes_layer(shapes: list[np.ndarray], types: list[str], **meta: Any) -> tuple:
    return (shapes, {"shape_type": types, "scale": SCALE, **meta}, "shapes")


def _every_kind() -> tuple[list[np.ndarray], list[str]]:
    plane = [2.0, 3.0]  # t, z
    rect = [[*plane, 5, 6], [*plane, 5, 16], [*plane, 12, 16], [*plane, 12, 6]]
    ellipse = [[*plane, 20, 10], [*plane, 20, 30], [*plane, 30, 30], [*plane, 30, 10]]
    line = [[1, 4, 1.5, 2.5], [1, 4, 8, 9]]
    path = [[0, 0, 1, 1], [0, 0, 5, 2], [0, 0, 9, 7]]
    polygon = [[0, 5, 30, 40], [0, 5, 35, 45], [0, 5, 25, 48]]
    shapes = [np.asarray(s, dtype=float) for s in (rect, ellipse, line, path, polygon)]
    return shapes, ["rectangle", "ellipse", "line", "path", "polygon"]


@pytest.mark.parametrize("kind", GENERATIONS)
def test_every_shape_kind_round_trips_in_pixels(servers, mikro_clean, targets, kind) -> None:
    server = servers[kind]
    ref = _ref(kind, targets)
    shapes, types = _every_kind()
    # The layer's data coordinates are pixel indices; its scale makes them micrometres.
    report = server.upload_rois(ref, _shapes_layer(shapes, types))
    assert len(report.created) == 5 and report.ids == report.created
    assert not report.updated and not report.deleted
    listing = server.rois(ref)
    assert not listing.skipped
    found = {r.id: r for r in listing.rois}
    for roi_id, shape, shape_type in zip(report.ids, shapes, types, strict=True):
        roi = found[roi_id]
        assert roi.kind == shape_type
        expected = np.zeros((len(shape), 5))
        expected[:, 1:] = shape
        np.testing.assert_allclose(roi.vertices, expected)
    for roi_id in report.ids:
        server._roi_target(ref)[0].delete(roi_id)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_world_coordinates_become_pixel_indices(servers, targets, kind) -> None:
    server = servers[kind]
    ref = _ref(kind, targets)
    # A 2-D layer in micrometres (unit scale) shifted by a translate, and points in 3-D.
    shapes = [np.asarray([[2.5, 1.0], [5.0, 3.0]])]  # y, x in um
    layer = (shapes, {"shape_type": ["line"], "translate": (0.5, 1.0)}, "shapes")
    points = (np.asarray([[1.0, 2.5, 4.0]]), {"scale": (0.5, 0.25, 0.2)}, "points")
    report = server.upload_rois(ref, [layer, points])
    found = {r.id: r for r in server.rois(ref).rois}
    line, point = found[report.ids[0]], found[report.ids[1]]
    # y: (2.5 + 0.5) / 0.25 = 12, x: (1 + 1) / 0.2 = 10; z = 0 on a 2-D layer
    np.testing.assert_allclose(line.vertices[:, 3:], [[12, 10], [22, 20]])
    np.testing.assert_allclose(line.vertices[:, :3], 0)
    assert point.kind == "point"
    np.testing.assert_allclose(point.vertices, [[0, 0, 1.0, 2.5, 4.0]])
    for roi_id in report.ids:
        server._roi_target(ref)[0].delete(roi_id)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_edits_update_and_deletes_delete(servers, mikro_clean, targets, kind) -> None:
    server = servers[kind]
    ref = _ref(kind, targets)
    shapes, types = _every_kind()
    first = server.upload_rois(ref, _shapes_layer(shapes[:3], types[:3]))
    # The layer as the reader would make it: ids per shape, the ids it showed in metadata.
    moved = [s.copy() for s in shapes[:2]]
    moved[0][:, 2:] += 1.0
    meta = {
        "features": {"roi_id": first.ids[:2]},
        "metadata": {"lablink": {"rois": {"image": ref, "ids": first.ids}}},
    }
    mikro_clean.reset_operations()
    second = server.upload_rois(ref, _shapes_layer(moved, types[:2], **meta))
    assert second.deleted == [first.ids[2]]
    assert not second.created
    if kind == "image":
        assert second.updated == [first.ids[0]] and second.ids == first.ids[:2]
        assert len(mikro_clean.calls("updateRoi")) == 1
    else:  # no update on generation 1: the moved ROI is made anew, the old one deleted
        assert len(second.updated) == 1 and second.updated[0] not in first.ids
        assert second.ids == [second.updated[0], first.ids[1]]
    found = {r.id: r for r in server.rois(ref).rois}
    assert set(found) >= set(second.ids) and first.ids[2] not in found
    np.testing.assert_allclose(found[second.ids[0]].vertices[:, 3:], moved[0][:, 2:])
    # Saving again changes nothing and duplicates nothing.
    meta["features"] = {"roi_id": second.ids}
    meta["metadata"]["lablink"]["rois"]["ids"] = second.ids
    third = server.upload_rois(ref, _shapes_layer(moved, types[:2], **meta))
    assert third.ids == second.ids and not (third.created or third.updated or third.deleted)
    for roi_id in second.ids:
        server._roi_target(ref)[0].delete(roi_id)


def test_generation1_keeps_labels_generation2_says_it_does_not(servers, targets) -> None:
    shapes = [np.asarray([[0, 0, 1, 1], [0, 0, 4, 4]], dtype=float)]
    meta = {"features": {"label": ["nucleus"], "tags": ["cell, bright"]}}
    rep, image = _ref("representation", targets), _ref("image", targets)
    gen1 = servers["representation"].upload_rois(rep, _shapes_layer(shapes, ["line"], **meta))
    assert not gen1.warnings
    roi = next(r for r in servers["representation"].rois(rep).rois if r.id == gen1.ids[0])
    assert roi.label == "nucleus" and roi.tags == ("cell", "bright")
    gen2 = servers["image"].upload_rois(image, _shapes_layer(shapes, ["line"], **meta))
    assert gen2.warnings == [
        "mikro generation 2 keeps no labels or tags with ROIs: 2 label(s)/tag(s) were not saved"
    ]
    servers["representation"]._roi_target(rep)[0].delete(gen1.ids[0])
    servers["image"]._roi_target(image)[0].delete(gen2.ids[0])


def test_colours_are_read_and_their_loss_on_saving_is_said(servers, mikro_clean, targets) -> None:
    rep, image = _ref("representation", targets), _ref("image", targets)
    # Another client set colours in the forms generation 1 has been seen to keep.
    for colour in ("rgb(255, 0, 0)", "#0F0", "rgba(0, 0, 255, 0.5)", "no colour"):
        made = servers["representation"].upload_rois(
            rep, [Roi("point", np.asarray([[0, 0, 1, 2, 3]], dtype=float))]
        )
        mikro_clean.rois.get("gen1", made.ids[0]).color = colour
    read = [r.color for r in servers["representation"].rois(rep).rois]
    assert read == ["#ff0000", "#00ff00", "#0000ff80", None]
    shapes = [np.asarray([[0, 0, 1, 1], [0, 0, 4, 4]], dtype=float)] * 2
    red_and_default = {"edge_color": np.asarray([[1.0, 0, 0, 1], [0.4667, 0.4667, 0.4667, 1]])}
    gen1 = servers["representation"].upload_rois(
        rep, _shapes_layer(shapes, ["line", "line"], **red_and_default)
    )
    assert gen1.warnings == [
        "mikro generation 1 shows a ROI's colour but its API cannot set one: "
        "1 colour(s) were not saved"
    ]
    gen2 = servers["image"].upload_rois(
        image, _shapes_layer(shapes, ["line", "line"], **red_and_default)
    )
    assert gen2.warnings == [
        "mikro generation 2 keeps no colours with ROIs: 1 colour(s) were not saved"
    ]
    # Default colours were never chosen: nothing to say.
    plain = servers["image"].upload_rois(image, _shapes_layer(shapes[:1], ["line"]))
    assert plain.warnings == []
    for kind, ref in (("representation", rep), ("image", image)):  # the next tests start empty
        wire = servers[kind]._roi_target(ref)[0]
        for roi in servers[kind].rois(ref).rois:
            wire.delete(roi.id)


def test_rotated_shapes_say_what_they_became() -> None:
    corners = np.zeros((4, 5))
    corners[:, 3:] = [[0, 5], [5, 10], [10, 5], [5, 0]]  # a diamond
    kind, vertices, note = to_wire(Roi("rectangle", corners))
    assert kind == "POLYGON" and len(vertices) == 4 and "polygon" in note
    kind, vertices, note = to_wire(Roi("ellipse", corners))
    assert kind == "ELLIPSIS" and "rotation" in note
    np.testing.assert_allclose(vertices[:, 3:], [[5, 5], [5, 5]])  # centre, radii


def test_ellipses_in_every_encoding_seen() -> None:
    def v(*yx: tuple[float, float]) -> list[list[float]]:
        return [[0, 0, 0, y, x] for y, x in yx]

    box = box_corners(np.asarray([0, 0, 0, 2, 4.0]), np.asarray([0, 0, 0, 8, 10.0]))
    ours = from_wire("ELLIPSIS", v((5, 7), (3, 3)))  # centre, radii
    napari_corners = from_wire("ELLIPSE", box.tolist())  # the old mikro-napari
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    outline = from_wire(
        "ELLIPSIS", v(*zip(5 + 3 * np.sin(angles), 7 + 3 * np.cos(angles), strict=True))
    )
    for roi in (ours, napari_corners, outline):
        assert roi.kind == "ellipse"
        np.testing.assert_allclose(roi.vertices, box, atol=1e-9)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_rois_made_by_another_client_open_in_place(servers, mikro_clean, targets, kind) -> None:
    server = servers[kind]
    from tests.testing.helpers import data_of, graphql

    ref = _ref(kind, targets)
    if kind == "image":
        url = mikro_clean.gen2_graphql_url
        variables = {
            "input": {
                "image": targets[kind],
                "kind": "RECTANGLE",
                "vectors": [[1, 2, 3, 10, 20], [1, 2, 3, 15, 30]],
            }
        }
        made = data_of(graphql(url, GEN2_CREATE, variables, mikro_clean.token))["createRoi"]
    else:
        url = mikro_clean.gen1_graphql_url
        variables = {
            "representation": targets[kind],
            "type": "RECTANGLE",
            "label": "x",
            "vectors": [
                {"c": 1, "t": 2, "z": 3, "y": 10, "x": 20},
                {"c": 1, "t": 2, "z": 3, "y": 15, "x": 30},
            ],
        }
        made = data_of(graphql(url, GEN1_CREATE, variables, mikro_clean.token))["createROI"]
    roi = next(r for r in server.rois(ref).rois if r.id == str(made["id"]))
    assert roi.kind == "rectangle"
    np.testing.assert_allclose(
        roi.vertices, [[1, 2, 3, 10, 20], [1, 2, 3, 10, 30], [1, 2, 3, 15, 30], [1, 2, 3, 15, 20]]
    )
    server._roi_target(ref)[0].delete(roi.id)


def test_unknown_kinds_are_skipped_with_a_message(servers, mikro_clean, targets) -> None:
    server = servers["image"]
    from tests.testing.helpers import data_of, graphql

    variables = {
        "input": {
            "image": targets["image"],
            "kind": "HYPERCUBE",
            "vectors": [[0, 0, 0, 1, 1], [1, 1, 1, 2, 2]],
        }
    }
    made = data_of(graphql(mikro_clean.gen2_graphql_url, GEN2_CREATE, variables, mikro_clean.token))
    listing = server.rois(_ref("image", targets))
    roi_id = made["createRoi"]["id"]
    assert roi_id not in [r.id for r in listing.rois]
    assert f"ROI {roi_id}: napari cannot draw a HYPERCUBE ROI" in listing.skipped
    server._roi_target(_ref("image", targets))[0].delete(roi_id)


def test_bad_layers_get_clear_messages(servers, targets) -> None:
    server = servers["image"]
    ref = _ref("image", targets)
    outside = [np.asarray([[0, 0, 1, 1], [0, 0, 41, 5]], dtype=float)]
    with pytest.raises(ConfigurationError, match=r"reaches y = 41 pixels, outside the image"):
        server.upload_rois(ref, _shapes_layer(outside, ["line"]))
    other = {"metadata": {"lablink": {"rois": {"image": "mikro+http://elsewhere:1/image/3"}}}}
    with pytest.raises(ConfigurationError, match=r"holds the ROIs of mikro\+http://elsewhere"):
        server.upload_rois(ref, _shapes_layer(outside, ["line"], **other))
    with pytest.raises(ConfigurationError, match="A image layer holds no ROIs"):
        server.upload_rois(ref, (np.zeros((4, 4)), {}, "image"))
    with pytest.raises(ConfigurationError, match="names no image to hold ROIs"):
        server.upload_rois("image", [])
    assert not server.rois(ref).rois  # nothing half-saved


# -- live --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", GENERATIONS)
def test_live_events_and_reconnect(servers, mikro_clean, targets, kind) -> None:
    server = servers[kind]
    ref = _ref(kind, targets)
    events: queue.Queue[RoiEvent] = queue.Queue()
    errors: list[Exception] = []
    watch = server.watch_rois(ref, events.put, on_error=errors.append)
    try:
        assert watch.wait_connected(10)
        _wait_for_subscriber(mikro_clean)
        point = (np.asarray([[0.0, 0.0, 10.0, 12.0]]), {"scale": SCALE}, "points")
        made = server.upload_rois(ref, point)
        event = events.get(timeout=10)
        assert event.type == "create" and event.roi_id == made.ids[0]
        np.testing.assert_allclose(event.roi.vertices, [[0, 0, 0, 10, 12]])
        server._roi_target(ref)[0].delete(made.ids[0])
        assert events.get(timeout=10) == RoiEvent("delete", roi_id=made.ids[0])
        # The connection drops; while it is down someone adds a ROI; the watch comes back.
        assert mikro_clean.drop_websockets() >= 1
        again = server.upload_rois(ref, point)
        resync = events.get(timeout=20)
        while resync.type != "resync":
            resync = events.get(timeout=20)
        assert again.ids[0] in [r.id for r in resync.rois]
        assert watch.reconnects >= 1
        _wait_for_subscriber(mikro_clean)
        server._roi_target(ref)[0].delete(again.ids[0])
        assert events.get(timeout=10) == RoiEvent("delete", roi_id=again.ids[0])
    finally:
        watch.stop()
    assert not errors


def _wait_for_subscriber(mikro: MikroStandIn) -> None:
    for _ in range(200):
        if mikro.rois.subscriber_count():
            return
        time.sleep(0.05)
    raise AssertionError("the subscription never reached the server")


def test_live_updates_with_a_wrong_token_stop_with_an_error(mikro_clean, targets) -> None:
    url = f"mikro+http://{mikro_clean.uri_authority}/mikro"
    with napari_lablink.connect(url, token="wrong") as server:
        errors: queue.Queue[Exception] = queue.Queue()
        watch = server.watch_rois(_ref("image", targets), print, on_error=errors.put)
        error = errors.get(timeout=10)
        watch.stop()
    assert isinstance(error, AuthenticationError)
    assert "refused the token for live updates" in str(error)
