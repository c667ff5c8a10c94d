"""Opening in the background (under Xvfb): the reader returns before the server answers, layers
arrive when ready, a cancel adds nothing, channels can be picked, many channels start mostly
hidden, contrast is sampled, colours use napari's names and clashing names carry the image's."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink._napari.opening import open_in_viewer, pending_opens, wait_for_opens
from napari_lablink.testing.tracker.server import TrackerStandIn

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(13)
STACK = RNG.integers(100, 3000, size=(2, 1, 4, 32, 32), dtype=np.uint16)
MARKERS = [f"M{i}" for i in range(8)]


@pytest.fixture(scope="module")
def rep(mikro) -> str:
    channels = [{"name": "DAPI", "color": "#0000ff"}, {"name": "GFP", "color": "#ffa500"}]
    return mikro.add_representation(STACK, "cells", channels=channels)


@pytest.fixture
def token_env(mikro, monkeypatch) -> None:
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)


@pytest.fixture
def tracker(monkeypatch) -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-8", "eight markers")
        planes = {
            name: (100 + i, RNG.integers(0, 50 + i, size=(16, 16), dtype=np.uint16))
            for i, name in enumerate(MARKERS)
        }
        stand_in.image_id = stand_in.add_image(run, "FOV1", planes, 100.0)  # type: ignore[attr-defined]
        monkeypatch.setenv("LABLINK_MIBI_EMAIL", stand_in.email)
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", stand_in.password)
        yield stand_in


def test_reader_returns_before_the_server_answers(
    make_napari_viewer, mikro_clean, rep, token_env
) -> None:
    viewer = make_napari_viewer()
    mikro_clean.faults.slow_seconds = 1.0
    mikro_clean.faults.fail_next(1, "slow", methods=["POST"])
    try:
        assert viewer.open(mikro_clean.representation_uri(rep), plugin="napari-lablink") == []
        assert pending_opens() and len(viewer.layers) == 0
        assert wait_for_opens(60)
    finally:
        mikro_clean.faults.slow_seconds = 0.5
    assert [layer.name for layer in viewer.layers] == ["DAPI", "GFP"]


def test_cancel_adds_nothing_and_says_nothing(
    make_napari_viewer, mikro_clean, rep, token_env, notifications
) -> None:
    viewer = make_napari_viewer()
    mikro_clean.faults.fail_next(1, "slow", methods=["POST"])
    heard: list[list] = []
    task = open_in_viewer(viewer, mikro_clean.representation_uri(rep), done=heard.append)
    task.cancel()
    assert wait_for_opens(60)
    assert heard == [[]] and len(viewer.layers) == 0
    assert not any("Could not open" in n for n in notifications)


def test_dead_server_is_one_notification_with_a_headline(
    make_napari_viewer, notifications, token_env
) -> None:
    viewer = make_napari_viewer()
    dead = "mikro+http://127.0.0.1:9/representation/1?s3=http://127.0.0.1:9"
    viewer.open(dead, plugin="napari-lablink")
    assert wait_for_opens(120)
    failures = [n for n in notifications if "Could not open" in n]
    assert len(failures) == 1 and len(viewer.layers) == 0
    headline = failures[0].split("[", 1)[0]
    assert "could not be reached" in headline and "Check that the server is running" in headline
    assert "127.0.0.1:9" in failures[0].split("[", 1)[1]


def test_colours_contrast_and_clashing_names(
    make_napari_viewer, mikro_clean, rep, token_env
) -> None:
    viewer = make_napari_viewer()
    viewer.open(mikro_clean.representation_uri(rep), plugin="napari-lablink")
    assert wait_for_opens(60)
    dapi, gfp = viewer.layers
    assert dapi.colormap.name == "blue"  # napari's own, not "#0000ff"
    np.testing.assert_allclose(gfp.colormap.colors[-1][:3], (1.0, 0xA5 / 255, 0.0), atol=1e-3)
    middle = STACK[0, 0, 2]  # the middle plane; no pyramid, so the smallest level is full size
    assert dapi.contrast_limits == [float(middle.min()), float(middle.max())]
    assert dapi.contrast_limits[1] < 3000  # not the dtype's 0..65535

    viewer.open(mikro_clean.representation_uri(rep) + "&channels=GFP", plugin="napari-lablink")
    assert wait_for_opens(60)
    names = [layer.name for layer in viewer.layers]
    assert names == ["DAPI", "cells: GFP", "cells: GFP [1]"]


def test_channels_option_and_few_visible_at_first(make_napari_viewer, tracker) -> None:
    viewer = make_napari_viewer()
    base = f"mibi+http://127.0.0.1:{tracker.port}/images/{tracker.image_id}"
    viewer.open(base, plugin="napari-lablink")
    assert wait_for_opens(60)
    assert len(viewer.layers) == 8
    assert [layer.visible for layer in viewer.layers] == [True] * 4 + [False] * 4

    viewer.layers.clear()
    viewer.open(base + "?channels=M5", plugin="napari-lablink")
    assert wait_for_opens(60)
    (only,) = viewer.layers
    assert only.name == "M5 (105)" and only.visible
    assert only.data.shape == (16, 16)

    viewer.layers.clear()
    open_in_viewer(viewer, base, channels=["m7", "M2"])  # the browser's channel picker
    assert wait_for_opens(60)
    assert [layer.name for layer in viewer.layers] == ["M7 (107)", "M2 (102)"]


def test_open_and_wait_returns_the_layers(make_napari_viewer, mikro_clean, rep, token_env) -> None:
    viewer = make_napari_viewer()
    layers = napari_lablink.open_and_wait(viewer, mikro_clean.representation_uri(rep))
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    assert list(viewer.layers) == layers and not pending_opens()

    viewer.layers.clear()
    viewer.open(mikro_clean.representation_uri(rep), plugin="napari-lablink")
    assert napari_lablink.wait_for_opens()
    assert [layer.name for layer in viewer.layers] == ["DAPI", "GFP"]


def test_open_and_wait_raises_what_went_wrong(make_napari_viewer, token_env, notifications) -> None:
    viewer = make_napari_viewer()
    dead = "mikro+http://127.0.0.1:9/representation/1?s3=http://127.0.0.1:9"
    with pytest.raises(napari_lablink.ServerUnavailableError):
        napari_lablink.open_and_wait(viewer, dead)
    assert len(viewer.layers) == 0
    assert not any("Could not open" in n for n in notifications)  # raised, not also shown


def test_the_bar_made_after_the_worker_started_hears_what_came_before_it(make_napari_viewer):
    # Making a bar runs the event loop: a fast worker's progress, or its end, may come first.
    from napari.utils.progress import progress

    from napari_lablink._napari.opening import _LateBar

    make_napari_viewer()
    ended = _LateBar()
    ended.progress(2, 4)
    ended.close()
    ended.make("Opening ended", lambda: None)
    assert all(bar.desc != "Opening ended" for bar in progress._all_instances)

    cancelled: list[bool] = []
    running = _LateBar()
    running.progress(3, 4)
    running.make("Opening running", lambda: cancelled.append(True))
    (bar,) = [bar for bar in progress._all_instances if bar.desc == "Opening running"]
    assert bar.n == 3
    bar.cancel()
    assert cancelled == [True]
    running.close()
    assert bar not in progress._all_instances


def test_an_empty_viewer_gets_the_dims_the_worker_sliced_at_so_napari_slices_nothing_again():
    # Without them napari sliced the first layer at plane 0 (a read on the Qt thread) and then
    # at the middle plane, where the worker had already read it.
    import dask.array as da
    from napari.components import ViewerModel

    from napari_lablink._napari.opening import _start_where_built, make_layers

    levels = [
        da.from_array(
            np.arange(3 * n * n, dtype=np.uint16).reshape(1, 3, n, n), chunks=(1, 1, 64, 64)
        )
        for n in (256, 128, 64)
    ]
    kwargs = {"contrast_limits": (0, 100), "multiscale": True}
    layers = make_layers(
        [(levels, {**kwargs, "name": name}, "image") for name in ("a", "b")], None, (300, 400)
    )
    resliced: list[str] = []
    for layer in layers:
        layer.events.set_data.connect(lambda event, name=layer.name: resliced.append(name))
    viewer = ViewerModel()
    _start_where_built(viewer, layers[0])
    for layer in layers:
        viewer.layers.append(layer)
    assert viewer.dims.current_step[:2] == (0, 1)  # the middle plane of three
    assert resliced == []
    assert all(layer._slice.image.view.size for layer in layers)
    np.testing.assert_array_equal(
        np.asarray(layers[0]._slice.image.raw), np.asarray(levels[layers[0].data_level][0, 1])
    )
