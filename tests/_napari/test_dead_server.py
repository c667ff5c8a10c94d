"""A server that dies while its layers are shown (under Xvfb): the z slider keeps moving without
an exception or a wait on the network, the user reads one notification, and after the server
is back a reopen redraws the layers with their pixels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from napari.utils import resize_dask_cache

from napari_lablink._napari.opening import open_in_viewer, wait_for_opens
from napari_lablink.client import outages
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.uri import parse_uri
from napari_lablink.testing import MikroStandIn, TrackerStandIn

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(5)
STACK = RNG.integers(1, 3000, size=(2, 1, 4, 24, 24), dtype=np.uint16)
MARKERS = [f"M{i}" for i in range(6)]


@pytest.fixture(autouse=True)
def _dask_cache_restored() -> Iterator[None]:
    """The tests turn napari's dask cache off and on; later tests get it as it was."""
    from napari.utils._dask_utils import _DASK_CACHE

    size = _DASK_CACHE.cache.available_bytes
    yield
    resize_dask_cache(size)


CACHE_ON = 2**27


@pytest.fixture
def dying_mikro(monkeypatch) -> Iterator[MikroStandIn]:
    with MikroStandIn() as stand_in:
        monkeypatch.setenv("LABLINK_TOKEN", stand_in.token)
        yield stand_in


def open_layers(viewer, uri: str) -> list:
    before = len(viewer.layers)
    open_in_viewer(viewer, uri)
    assert wait_for_opens(60)
    return list(viewer.layers)[before:]


def shown(layer) -> np.ndarray:
    return np.asarray(layer._slice.image.view)


@pytest.mark.parametrize("uri_of", ["representation_uri", "image_uri"])
def test_z_slider_over_a_dead_mikro_server_is_one_notification(
    make_napari_viewer, qtbot, dying_mikro, notifications, uri_of
) -> None:
    if uri_of == "representation_uri":
        object_id = dying_mikro.add_representation(STACK, "cells")
    else:
        object_id = dying_mikro.add_image(STACK, "cells", chunks=(1, 1, 1, 24, 24))
    uri = getattr(dying_mikro, uri_of)(object_id)
    source = outages.source(parse_uri(uri).server)
    viewer = make_napari_viewer()
    layers = open_layers(viewer, uri)
    assert [layer.data.shape for layer in layers] == [(4, 24, 24)] * 2
    assert np.array_equal(shown(layers[0]), STACK[0, 0, viewer.dims.current_step[0]])

    dying_mikro.suspend()
    try:
        opened = source.attempts
        resize_dask_cache(0)  # every step reads (napari's cache would keep what it read)
        for step in range(8):  # a connection kept alive may still serve a read or two
            viewer.dims.set_current_step(0, step % 4)  # no exception reaches napari
            if not source.available:
                break
        found = source.attempts
        assert not source.available and found - opened <= 8 * len(layers)
        resize_dask_cache(CACHE_ON)  # the cache again: it must not keep the empty planes
        for step in (3, 0, 1, 2, 1):
            viewer.dims.set_current_step(0, step)
        qtbot.wait(50)
        assert source.attempts == found  # these steps did not ask the network at all
        assert source.skipped > 0
        assert not shown(layers[0]).any()
        assert len(notifications) == 1
        text = notifications[0].removeprefix("WARNING: ")
        assert text.startswith("Lost the connection to the server; its images show empty planes")
        assert f"[server {parse_uri(uri).server}, image cells" in text
        assert "Traceback" not in text
    finally:
        dying_mikro.resume()

    open_layers(viewer, uri)  # the explicit reopen: the old layers are redrawn with pixels
    qtbot.waitUntil(lambda: shown(layers[0]).any(), timeout=10_000)
    assert np.array_equal(shown(layers[0]), STACK[0, 0, 1])  # no empty chunk kept by napari
    assert np.array_equal(shown(layers[1]), STACK[1, 0, 1])
    assert len(notifications) == 1


def test_showing_channels_of_a_dead_tracker_is_one_notification(
    make_napari_viewer, qtbot, monkeypatch, notifications
) -> None:
    with TrackerStandIn() as tracker:
        run = tracker.add_run("RUN-6", "six markers")
        planes = {
            name: (100 + i, RNG.integers(1, 50 + i, size=(16, 16), dtype=np.uint16))
            for i, name in enumerate(MARKERS)
        }
        image_id = tracker.add_image(run, "FOV1", planes, 100.0)
        monkeypatch.setenv("LABLINK_MIBI_EMAIL", tracker.email)
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", tracker.password)
        uri = f"mibi+{tracker.base_url}/images/{image_id}"
        source = outages.source(parse_uri(uri).server)
        viewer = make_napari_viewer()
        layers = open_layers(viewer, uri)
        hidden = [layer for layer in layers if not layer.visible]
        assert len(hidden) == 2

        tracker.suspend()
        shared_connection(uri).channels.forget()  # type: ignore[attr-defined]
        resize_dask_cache(0)  # nothing kept: showing a channel downloads it
        for layer in hidden:
            layer.visible = True
        found = source.attempts
        assert not source.available
        for layer in layers:
            layer.visible = False
            layer.visible = True
        resize_dask_cache(CACHE_ON)
        assert source.attempts == found and source.skipped > 0
        assert not shown(hidden[1]).any()
        assert len(notifications) == 1
        assert notifications[0].removeprefix("WARNING: ").startswith("Lost the connection")
        assert "image RUN-6 FOV1" in notifications[0]

        tracker.resume()
        open_layers(viewer, uri)
        qtbot.waitUntil(lambda: shown(hidden[1]).any(), timeout=10_000)
        assert np.array_equal(shown(hidden[1]), planes[MARKERS[-1]][1])
        assert len(notifications) == 1


def test_asynchronous_slicing_over_a_dead_server_is_one_notification(
    make_napari_viewer, qtbot, dying_mikro, notifications
) -> None:
    """With napari's asynchronous slicing the reads run in napari's slicing thread: the same
    single notification, and nothing raised there either."""
    from napari.settings import get_settings

    object_id = dying_mikro.add_image(STACK, "cells", chunks=(1, 1, 1, 24, 24))
    uri = dying_mikro.image_uri(object_id)
    source = outages.source(parse_uri(uri).server)
    settings = get_settings()
    was_async = settings.experimental.async_
    settings.experimental.async_ = True
    try:
        viewer = make_napari_viewer()
        layers = open_layers(viewer, uri)
        dying_mikro.suspend()
        resize_dask_cache(0)
        for step in (0, 1, 3, 0, 1, 3):
            viewer.dims.set_current_step(0, step)
            qtbot.wait(100)
        qtbot.waitUntil(lambda: not source.available and len(notifications) == 1, timeout=10_000)
        qtbot.waitUntil(lambda: not shown(layers[0]).any(), timeout=10_000)
        assert source.skipped > 0
        assert notifications[0].removeprefix("WARNING: ").startswith("Lost the connection")
    finally:
        settings.experimental.async_ = was_async
        dying_mikro.resume()
    assert len(notifications) == 1
