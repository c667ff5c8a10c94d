"""mikro ROIs in a real napari viewer (under Xvfb): read, save, edit, live updates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from napari_lablink._napari.opening import wait_for_opens
from napari_lablink._napari.roi_live import live_layers
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.mikro.roi_wire import GEN1_CREATE, GEN2_CREATE, GEN2_DELETE
from tests.testing.helpers import data_of, graphql

pytestmark = pytest.mark.viewer

PIXELS = np.random.default_rng(9).integers(0, 200, (1, 1, 8, 48, 64), dtype=np.uint8)
GENERATIONS = ["image", "representation"]


@pytest.fixture
def token_env(mikro, monkeypatch):
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)
    monkeypatch.setenv("LABLINK_S3_ENDPOINT", mikro.s3_endpoint)


@pytest.fixture
def target(mikro) -> Any:
    made: dict[str, str] = {}

    def make(kind: str) -> str:
        if kind == "image":
            object_id = mikro.add_image(PIXELS, "roi stack", pixel_size=(0.2, 0.25, 0.5))
            return f"mikro+http://{mikro.uri_authority}/mikro/image/{object_id}"
        object_id = mikro.add_representation(
            PIXELS, "roi stack", physical_size={"x": 0.2, "y": 0.25, "z": 0.5}
        )
        made[kind] = object_id
        return f"mikro+http://{mikro.uri_authority}/representation/{object_id}"

    return make


def _raw_roi(mikro, uri: str, kind: str, vectors: list[list[float]]) -> str:
    object_id = uri.rsplit("/", 1)[-1]
    if "/image/" in uri:
        variables = {"input": {"image": object_id, "kind": kind, "vectors": vectors}}
        answer = graphql(mikro.gen2_graphql_url, GEN2_CREATE, variables, mikro.token)
        return data_of(answer)["createRoi"]["id"]
    vectors_1 = [dict(zip("ctzyx", v, strict=True)) for v in vectors]
    variables = {"representation": object_id, "type": kind, "vectors": vectors_1}
    answer = graphql(mikro.gen1_graphql_url, GEN1_CREATE, variables, mikro.token)
    return data_of(answer)["createROI"]["id"]


def _save(viewer, uri: str, layer) -> list[str]:
    viewer.layers.selection = {layer}
    return viewer.layers.save(uri, selected=True, plugin="napari-lablink")


def _layers(viewer, kind: str) -> list:
    return [layer for layer in viewer.layers if layer._type_string == kind]


@pytest.mark.parametrize("kind", GENERATIONS)
def test_rois_of_another_client_sit_on_their_pixels(
    make_napari_viewer, mikro_clean, token_env, target, kind
) -> None:
    uri = target(kind)
    _raw_roi(mikro_clean, uri, "RECTANGLE", [[0, 0, 3, 10, 20], [0, 0, 3, 20, 40]])
    _raw_roi(mikro_clean, uri, "POINT", [[0, 0, 5, 30.5, 12]])
    viewer = make_napari_viewer()
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    (image,) = _layers(viewer, "image")
    (shapes,) = _layers(viewer, "shapes")
    (points,) = _layers(viewer, "points")
    np.testing.assert_allclose(shapes.scale, image.scale)
    np.testing.assert_allclose(shapes.scale, (0.5, 0.25, 0.2))
    assert shapes.shape_type == ["rectangle"]
    np.testing.assert_allclose(shapes.data[0], [[3, 10, 20], [3, 10, 40], [3, 20, 40], [3, 20, 20]])
    # In world coordinates the corner is where the image's pixel (3, 10, 20) is.
    np.testing.assert_allclose(
        shapes.data_to_world(shapes.data[0][0]), image.data_to_world([3, 10, 20])
    )
    np.testing.assert_allclose(points.data, [[5, 30.5, 12]])
    np.testing.assert_allclose(points.data_to_world(points.data[0]), [2.5, 7.625, 2.4])


def test_generation1_colours_colour_the_edges(
    make_napari_viewer, mikro_clean, token_env, target
) -> None:
    uri = target("representation")
    red = _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 1, 1, 1], [0, 0, 1, 5, 5]])
    plain = _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 2, 1, 1], [0, 0, 2, 5, 5]])
    mikro_clean.rois.get("gen1", red).color = "rgb(255, 0, 0)"  # as another client keeps it
    viewer = make_napari_viewer()
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    (shapes,) = _layers(viewer, "shapes")
    assert list(shapes.features["roi_id"]) == [red, plain]
    np.testing.assert_allclose(shapes.edge_color, [[1, 0, 0, 1], [1, 0.843137, 0, 1]], atol=1e-5)


def test_rois_option_never_and_always(make_napari_viewer, mikro_clean, token_env, target) -> None:
    uri = target("image")
    viewer = make_napari_viewer()
    viewer.open(uri, plugin="napari-lablink")  # auto: the image has no ROIs, so no layers
    assert wait_for_opens(60)
    assert [layer._type_string for layer in viewer.layers] == ["image"]
    _raw_roi(mikro_clean, uri, "POINT", [[0, 0, 1, 1, 1]])
    viewer.open(uri + "?rois=0", plugin="napari-lablink")
    assert wait_for_opens(60)
    assert not _layers(viewer, "points")
    viewer.open(uri + "?rois=1", plugin="napari-lablink")
    assert wait_for_opens(60)
    assert len(_layers(viewer, "points")) == 1 and len(_layers(viewer, "shapes")) == 1


@pytest.mark.parametrize("kind", GENERATIONS)
def test_save_every_kind_and_open_it_back(
    make_napari_viewer, mikro_clean, token_env, target, kind
) -> None:
    uri = target(kind)
    viewer = make_napari_viewer()
    scale = (0.5, 0.25, 0.2)
    # World coordinates (micrometres) on a layer with unit scale: the writer converts them.
    shapes = viewer.add_shapes(
        [
            np.asarray([[1.0, 2.5, 4.0], [1.0, 2.5, 8.0], [1.0, 5.0, 8.0], [1.0, 5.0, 4.0]]),
            np.asarray([[1.5, 1.0, 1.0], [1.5, 1.0, 3.0], [1.5, 3.0, 3.0], [1.5, 3.0, 1.0]]),
            np.asarray([[0.5, 0.25, 0.2], [0.5, 2.5, 2.0]]),
            np.asarray([[0.0, 1.0, 1.0], [0.0, 2.0, 1.0], [0.0, 2.0, 2.0]]),
            np.asarray([[2.0, 3.0, 3.0], [2.0, 4.0, 5.0], [2.0, 3.0, 6.0]]),
        ],
        shape_type=["rectangle", "ellipse", "line", "path", "polygon"],
        name="drawn",
    )
    points = viewer.add_points(np.asarray([[1.0, 1.25, 1.0]]), name="beads")
    assert viewer.layers.save(uri, selected=False, plugin="napari-lablink") == [uri]
    assert len(shapes.features["roi_id"]) == 5 and all(shapes.features["roi_id"])
    assert points.features["roi_id"][0]
    viewer.layers.clear()
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    (read,) = _layers(viewer, "shapes")
    (read_points,) = _layers(viewer, "points")
    assert read.shape_type == ["rectangle", "ellipse", "line", "path", "polygon"]
    for drawn, back in zip(shapes.data, read.data, strict=True):
        np.testing.assert_allclose(back * np.asarray(scale), drawn, atol=1e-9)
    np.testing.assert_allclose(read_points.data * np.asarray(scale), points.data)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_moved_and_deleted_shapes_update_on_save(
    make_napari_viewer, mikro_clean, token_env, target, kind
) -> None:
    uri = target(kind)
    ids = [
        _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 1, 1, 1], [0, 0, 1, 5, 5]]),
        _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 2, 2, 2], [0, 0, 2, 6, 6]]),
        _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 3, 3, 3], [0, 0, 3, 7, 7]]),
    ]
    viewer = make_napari_viewer()
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(60)
    (shapes,) = _layers(viewer, "shapes")
    assert list(shapes.features["roi_id"]) == ids
    data = list(shapes.data)
    data[0] = data[0] + [0, 10, 10]
    shapes.data = data
    shapes.shape_type = ["line"] * 3
    shapes.selected_data = {2}
    shapes.remove_selected()
    shapes.add(np.asarray([[4, 20, 20], [4, 30, 30]]), shape_type="line")
    _save(viewer, uri, shapes)
    generation = "gen2" if kind == "image" else "gen1"
    on_server = {r.id: r for r in mikro_clean.rois.all(generation) if uri.endswith(r.target)}
    assert len(on_server) == 3 and ids[2] not in on_server and ids[1] in on_server
    now = list(shapes.features["roi_id"])
    assert set(now) == set(on_server)
    if kind == "image":
        assert now[0] == ids[0]
        assert on_server[ids[0]].vectors[0] == [0, 0, 1, 11, 11]
    # Saving again duplicates nothing.
    _save(viewer, uri, shapes)
    assert len([r for r in mikro_clean.rois.all(generation) if uri.endswith(r.target)]) == 3


def test_the_saved_layer_learns_its_ids_even_beside_a_namesake(
    make_napari_viewer, mikro_clean, token_env, target
) -> None:
    uri = target("image")
    drawing = make_napari_viewer()
    saved = drawing.add_points(np.asarray([[0.5, 1.0, 1.0]]), name="beads")
    other = make_napari_viewer()  # now the current viewer, with a layer of the same name
    namesake = other.add_points(np.asarray([[1.0, 2.0, 2.0]]), name="beads")
    _save(drawing, uri, saved)
    assert saved.features["roi_id"][0] and "roi_id" not in namesake.features
    assert "rois" not in namesake.metadata.get("lablink", {})


def test_saving_to_another_image_is_refused(
    make_napari_viewer, mikro_clean, token_env, target
) -> None:
    first, second = target("image"), target("image")
    _raw_roi(mikro_clean, first, "POINT", [[0, 0, 1, 1, 1]])
    viewer = make_napari_viewer()
    viewer.open(first, plugin="napari-lablink")
    assert wait_for_opens(60)
    (points,) = _layers(viewer, "points")
    with pytest.raises(ConfigurationError, match=r"holds the ROIs of .*not of"):
        _save(viewer, second, points)


def test_saving_outside_the_image_is_refused(
    make_napari_viewer, mikro_clean, token_env, target
) -> None:
    uri = target("image")
    viewer = make_napari_viewer()
    points = viewer.add_points(np.asarray([[0.0, 100.0, 1.0]]), name="far")
    with pytest.raises(ConfigurationError, match="reaches y = 400 pixels, outside the image"):
        _save(viewer, uri, points)


@pytest.mark.parametrize("kind", GENERATIONS)
def test_live_updates_reach_an_open_layer(
    make_napari_viewer, qtbot, mikro_clean, token_env, target, kind
) -> None:
    uri = target(kind)
    viewer = make_napari_viewer()
    before = mikro_clean.rois.subscriber_count()
    viewer.open(uri + "?rois=1", plugin="napari-lablink")
    assert wait_for_opens(60)
    (shapes,) = _layers(viewer, "shapes")
    live = live_layers()[id(shapes)]
    # The Shapes and the Points layer each watch the image.
    qtbot.waitUntil(
        lambda: (
            live.watch is not None
            and live.watch.connected
            and mikro_clean.rois.subscriber_count() == before + 2
        ),
        timeout=10000,
    )
    roi_id = _raw_roi(mikro_clean, uri, "RECTANGLE", [[0, 0, 2, 4, 5], [0, 0, 2, 9, 15]])
    qtbot.waitUntil(lambda: list(shapes.features["roi_id"]) == [roi_id], timeout=10000)
    np.testing.assert_allclose(shapes.data[0], [[2, 4, 5], [2, 4, 15], [2, 9, 15], [2, 9, 5]])
    # A dropped connection comes back, and what happened meanwhile shows up.
    mikro_clean.drop_websockets()
    second = _raw_roi(mikro_clean, uri, "LINE", [[0, 0, 1, 1, 1], [0, 0, 1, 3, 3]])
    qtbot.waitUntil(lambda: second in list(shapes.features["roi_id"]), timeout=20000)
    if kind == "image":
        answer = graphql(
            mikro_clean.gen2_graphql_url, GEN2_DELETE, {"input": {"id": roi_id}}, mikro_clean.token
        )
        data_of(answer)
        qtbot.waitUntil(lambda: list(shapes.features["roi_id"]) == [second], timeout=10000)
    viewer.layers.remove(shapes)
    assert id(shapes) not in live_layers()
