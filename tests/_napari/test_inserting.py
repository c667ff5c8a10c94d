"""Adding many layers a few per event-loop turn (under Xvfb): order kept, the selection left to
the user after the first, a closed viewer stops the rest, other timers run between turns, and
layers built off the Qt thread arrive with their plane already sliced (the visible channels
read side by side) while hidden ones read nothing."""

from __future__ import annotations

import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
from napari.layers import Image

from napari_lablink._napari import inserting
from napari_lablink._napari.inserting import insert_layers, one_per_layer, pending_inserts
from napari_lablink._napari.opening import make_layers

pytestmark = pytest.mark.viewer

WAIT_MS = 20_000


@pytest.fixture
def one_per_turn(monkeypatch) -> None:
    monkeypatch.setattr(inserting, "TURN_BUDGET", 0.0)


def _layers(count: int) -> list[Image]:
    return [Image(np.full((4, 4), i, np.uint16), name=f"L{i}") for i in range(count)]


def test_layers_arrive_one_per_turn_in_order(make_napari_viewer, qtbot, one_per_turn) -> None:
    viewer = make_napari_viewer()
    heard: list[list] = []
    layers = _layers(5)
    insert_layers(viewer, layers, heard.append)
    assert [layer.name for layer in viewer.layers] == ["L0"]  # the rest waits for its turn
    assert pending_inserts() and heard == []
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == [f"L{i}" for i in range(5)]
    assert heard == [layers] and not pending_inserts()


def test_later_layers_leave_the_selection_alone(make_napari_viewer, qtbot, one_per_turn) -> None:
    viewer = make_napari_viewer()
    mine = viewer.add_image(np.zeros((4, 4)), name="mine")
    heard: list[list] = []
    insert_layers(viewer, _layers(3), heard.append)
    assert viewer.layers.selection.active.name == "L0"  # the first takes it, as napari does
    viewer.layers.selection.active = mine  # the user picks a layer meanwhile
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    assert viewer.layers.selection.active is mine and viewer.layers.selection == {mine}
    assert viewer.layers._activate_on_insert  # napari's switch is back


def test_a_closed_viewer_gets_no_more_layers(make_napari_viewer, qtbot, one_per_turn) -> None:
    viewer = make_napari_viewer()
    heard: list[list] = []
    layers = _layers(4)
    insert_layers(viewer, layers, heard.append)
    viewer.close()
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    assert heard == [layers[:1]] and not pending_inserts()


def test_built_off_the_qt_thread_visible_sliced_hidden_unread(qapp) -> None:
    reads: list[int] = []

    def channel(i: int) -> da.Array:
        def read() -> np.ndarray:
            reads.append(i)
            return np.full((8, 8), i + 1, np.uint16)

        return da.from_delayed(dask.delayed(read)(), (8, 8), np.uint16)

    stack = da.stack([channel(i) for i in range(3)])
    tuples = [
        (
            stack,
            {
                "channel_axis": 0,
                "name": ["a", "b", "c"],
                "visible": [True, False, False],
                "contrast_limits": [(0, 3)] * 3,
            },
            "image",
        )
    ]
    built: list = []
    worker = threading.Thread(target=lambda: built.extend(make_layers(tuples)))
    worker.start()
    worker.join(60)
    assert [layer.name for layer in built] == ["a", "b", "c"]
    assert [layer.visible for layer in built] == [True, False, False]
    assert reads == [0]  # only the visible channel was read, and in the worker
    np.testing.assert_array_equal(built[0]._slice.image.view, np.full((8, 8), 1))
    assert [tuple(layer.contrast_limits) for layer in built] == [(0, 3)] * 3


def test_one_per_layer_splits_channels_like_napari() -> None:
    data = da.zeros((2, 4, 4), dtype=np.uint16)
    kwargs = {"channel_axis": 0, "name": ["a", "b"], "colormap": ["blue", "red"], "scale": (1, 2)}
    split = one_per_layer([(data, kwargs, "image"), (np.zeros((1, 2)), {"name": "s"}, "shapes")])
    assert [(k["name"], k["colormap"], k["scale"], t) for _, k, t in split[:2]] == [
        ("a", "blue", (1, 2), "image"),
        ("b", "red", (1, 2), "image"),
    ]
    assert split[0][0].shape == (4, 4) and "channel_axis" not in split[0][1]
    assert split[2][2] == "shapes"


def test_a_pyramid_is_sliced_off_the_qt_thread_at_the_level_napari_shows(
    make_napari_viewer, qtbot
) -> None:
    viewer = make_napari_viewer()
    reads: list[int] = []

    def level(i: int, size: int) -> da.Array:
        def read() -> np.ndarray:
            reads.append(i)
            return np.full((size, size), i, np.uint16)

        return da.from_delayed(dask.delayed(read)(), (size, size), np.uint16)

    pyramid = [level(i, 4096 >> i) for i in range(5)]  # 4096 .. 256 pixels square
    tuples = [(pyramid, {"multiscale": True, "contrast_limits": (0, 4)}, "image")]
    qtbot.waitUntil(lambda: min(viewer.canvas.size) > 1, timeout=WAIT_MS)
    height, width = viewer.canvas.size
    built: list = []
    worker = threading.Thread(
        target=lambda: built.extend(make_layers(tuples, None, (height, width)))
    )
    worker.start()
    worker.join(60)
    (layer,) = built
    shown = layer.data_level
    # the level shown (neither the full nor the smallest) and the smallest for the thumbnail
    assert 0 < shown < 4 and sorted(reads) == [shown, 4]
    read_in_worker = len(reads)
    heard: list[list] = []
    insert_layers(viewer, built, heard.append)
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    for _ in range(20):
        qtbot.wait(10)  # napari draws and picks its level
    assert layer.data_level == shown and len(reads) == read_in_worker  # no read on the Qt thread


def test_a_stack_is_read_in_the_worker_at_the_plane_napari_goes_to(
    make_napari_viewer, qtbot
) -> None:
    viewer = make_napari_viewer()
    reads: list[tuple[int, int]] = []

    def plane(c: int, z: int) -> da.Array:
        def read() -> np.ndarray:
            reads.append((c, z))
            return np.full((16, 16), z, np.uint16)

        return da.from_delayed(dask.delayed(read)(), (16, 16), np.uint16)

    stack = da.stack([da.stack([plane(c, z) for z in range(9)]) for c in range(2)])
    kwargs = {"channel_axis": 0, "contrast_limits": [(0, 8)] * 2, "name": ["a", "b"]}
    height, width = viewer.canvas.size
    built: list = []
    worker = threading.Thread(
        target=lambda: built.extend(make_layers([(stack, kwargs, "image")], None, (height, width)))
    )
    worker.start()
    worker.join(60)
    assert sorted(reads) == [(0, 4), (1, 4)]  # the middle plane, read off the Qt thread
    heard: list[list] = []
    insert_layers(viewer, built, heard.append)
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    assert viewer.dims.current_step[0] == 4
    np.testing.assert_array_equal(built[1]._slice.image.view, np.full((16, 16), 4))


def test_timers_and_input_run_between_turns(make_napari_viewer, qtbot, one_per_turn) -> None:
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    seen: list[int] = []  # how many layers were in at each tick of another timer
    beat = QTimer()
    beat.setInterval(1)
    beat.timeout.connect(lambda: seen.append(len(viewer.layers)))
    beat.start()
    heard: list[list] = []
    insert_layers(viewer, _layers(4), heard.append)
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    beat.stop()
    assert {1, 2, 3} <= set(seen)  # the other timer ran between every two turns


def test_slow_work_before_the_layers_has_a_turn_of_its_own(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    order: list[str] = []

    def before() -> None:
        order.append(f"before, {len(viewer.layers)} layers")
        time.sleep(inserting.TURN_BUDGET * 2)

    heard: list[list] = []
    insert_layers(viewer, _layers(2), heard.append, before=before)
    assert order == ["before, 0 layers"] and len(viewer.layers) == 0
    qtbot.waitUntil(lambda: bool(heard), timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == ["L0", "L1"]


def test_visible_channels_read_their_planes_side_by_side(qapp) -> None:
    together = threading.Barrier(3, timeout=20)  # breaks unless all three reads overlap

    def channel(i: int) -> da.Array:
        def read() -> np.ndarray:
            together.wait()
            return np.full((8, 8), i, np.uint16)

        return da.from_delayed(dask.delayed(read)(), (8, 8), np.uint16)

    kwargs = {"channel_axis": 0, "name": ["a", "b", "c"], "contrast_limits": [(0, 3)] * 3}
    built = make_layers([(da.stack([channel(i) for i in range(3)]), kwargs, "image")])
    assert not together.broken
    for i, layer in enumerate(built):
        np.testing.assert_array_equal(layer._slice.image.view, np.full((8, 8), i))
