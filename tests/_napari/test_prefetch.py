"""Reading ahead along a slider (under Xvfb, against the mikro stand-in): after a step the planes
beside it are in napari's dask cache, so the next step reads nothing from the server on the Qt
thread; with napari's cache off nothing is read ahead; only visible layers napari-lablink opened
are read, and only in a 2-D view."""

from __future__ import annotations

from collections.abc import Iterator

import dask.array as da
import numpy as np
import pytest
from napari.utils import resize_dask_cache

from napari_lablink import open_and_wait
from napari_lablink._napari.prefetch import pending_prefetch, planes_beside

pytestmark = pytest.mark.viewer

WAIT_MS = 20_000
RNG = np.random.default_rng(21)
STACK = RNG.integers(0, 4000, size=(2, 1, 16, 64, 64), dtype=np.uint16)


@pytest.fixture(scope="module")
def stack_uri(mikro) -> str:
    return mikro.image_uri(mikro.add_image(STACK, "z-stack", chunks=(1, 1, 1, 32, 32)))


@pytest.fixture(autouse=True)
def token_env(mikro, monkeypatch) -> None:
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)


@pytest.fixture
def viewer_without_cache(make_napari_viewer) -> Iterator[object]:
    viewer = make_napari_viewer()  # napari sizes its cache from the settings when a viewer starts
    size = resize_dask_cache().cache.available_bytes
    resize_dask_cache(0)
    yield viewer
    resize_dask_cache(size)


def planes_fetched(mikro, z: int) -> int:
    """Chunk GETs of plane ``z`` (any channel) the S3 stand-in has seen."""
    return sum(
        1
        for request in mikro.s3.requests
        if request.method == "GET" and "/c/" in request.path and f"/0/{z}/" in request.path
    )


def step_to(viewer, qtbot, z: int) -> None:
    viewer.dims.set_current_step(0, z)  # napari slices here, on this (the Qt) thread
    qtbot.waitUntil(lambda: not pending_prefetch(), timeout=WAIT_MS)


def test_the_next_step_finds_its_plane_read_ahead(make_napari_viewer, qtbot, mikro, stack_uri):
    viewer = make_napari_viewer()
    layers = open_and_wait(viewer, stack_uri)  # at the middle plane, 7
    step_to(viewer, qtbot, 11)  # a jump, read when shown; then 12 and 10 are read ahead
    mikro.s3.reset_requests()
    viewer.dims.set_current_step(0, 12)
    assert planes_fetched(mikro, 12) == 0  # napari found plane 12 in its cache
    for channel, layer in enumerate(layers):
        np.testing.assert_array_equal(layer._slice.image.view, STACK[channel, 0, 12])
    qtbot.waitUntil(lambda: not pending_prefetch(), timeout=WAIT_MS)
    assert planes_fetched(mikro, 13) == 8  # the next one (2 channels x 4 chunks), in the background
    assert planes_fetched(mikro, 11) == 0  # the one behind was still in the cache


def test_with_naparis_cache_off_nothing_is_read_ahead(
    viewer_without_cache, qtbot, mikro, stack_uri
):
    viewer = viewer_without_cache
    open_and_wait(viewer, stack_uri)
    step_to(viewer, qtbot, 10)
    mikro.s3.reset_requests()
    step_to(viewer, qtbot, 11)
    assert planes_fetched(mikro, 11) == 8  # read when shown, as without the plugin
    assert planes_fetched(mikro, 12) == 0 and planes_fetched(mikro, 10) == 0


def test_only_visible_layers_opened_by_lablink_are_read_ahead(
    make_napari_viewer, qtbot, stack_uri
) -> None:
    viewer = make_napari_viewer()
    _, second = open_and_wait(viewer, stack_uri)
    viewer.add_image(np.zeros((16, 64, 64), np.uint16), name="local")
    second.visible = False
    viewer.dims.set_current_step(0, 4)
    regions = planes_beside(viewer, direction=1)
    assert [r.shape for r in regions] == [(64, 64), (64, 64)]  # planes 5 and 3 of the first
    np.testing.assert_array_equal(regions[0].compute(), STACK[0, 0, 5])
    np.testing.assert_array_equal(regions[1].compute(), STACK[0, 0, 3])
    viewer.dims.set_current_step(0, 15)  # the last plane has one neighbour
    (only,) = planes_beside(viewer, direction=1)
    np.testing.assert_array_equal(only.compute(), STACK[0, 0, 14])


def test_nothing_is_read_ahead_in_a_3d_view(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    volumes = da.zeros((5, 4, 8, 8), dtype=np.uint16)  # t, z, y, x
    viewer.add_image(volumes, metadata={"lablink": {"uri": "mikro+http://h/image/1"}})
    viewer.dims.set_current_step(0, 2)
    assert [r.shape for r in planes_beside(viewer)] == [(8, 8), (8, 8)]  # t=3 and t=1 at z=2
    viewer.dims.ndisplay = 3
    viewer.dims.set_current_step(0, 3)
    assert planes_beside(viewer) == []  # each neighbour would be a whole volume
