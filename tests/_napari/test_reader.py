"""The npe2 reader in a real napari viewer (under Xvfb), against the stand-in mikro server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from napari_lablink._napari.opening import wait_for_opens
from napari_lablink._napari.prefetch import pending_prefetch
from napari_lablink._napari.readers import get_reader

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(3)
STACK = RNG.integers(0, 3000, size=(3, 1, 6, 64, 96), dtype=np.uint16)


@pytest.fixture(scope="module")
def ids(mikro):
    channels = [
        {"name": "DAPI", "color": "#0000ff"},
        {"name": "GFP", "color": "#00ff00"},
        {"name": "mCherry", "color": "#ff0000"},
    ]
    rep = mikro.add_representation(
        STACK,
        "cells",
        physical_size={"x": 0.2, "y": 0.2, "z": 0.5},
        channels=channels,
        chunks=(1, 1, 1, 32, 48),
    )
    big = RNG.integers(0, 3000, size=(2, 1, 1, 512, 512), dtype=np.uint16)
    pyramid = mikro.add_image(
        big,
        "tissue",
        chunks=(1, 1, 1, 128, 128),
        pixel_size=(0.5, 0.5, 1.0),
        channels=[
            {"name": "a", "emissionWavelength": 460},
            {"name": "b", "emissionWavelength": 610},
        ],
        pyramid_levels=3,
    )
    labels = np.zeros((1, 1, 1, 64, 64), dtype=np.uint32)
    labels[0, 0, 0, 10:20, 10:30] = 7
    mask = mikro.add_representation(labels, "nuclei", variety="MASK")
    mask2 = mikro.add_image(labels, "nuclei gen2", labels=True)  # an image with mask views
    return {"rep": rep, "pyramid": pyramid, "mask": mask, "mask2": mask2}


@pytest.fixture
def token_env(mikro, monkeypatch):
    monkeypatch.setenv("LABLINK_TOKEN", mikro.token)


def open_and_wait(viewer, uri: str) -> list:
    """``viewer.open`` returns at once; the layers come when the background open is done."""
    assert viewer.open(uri, plugin="napari-lablink") == []
    assert wait_for_opens(60)
    return list(viewer.layers)


def test_declines_local_paths() -> None:
    assert get_reader("/data/cells.tif") is None
    assert get_reader(["mikro://h/image/1", "/data/x.tif"]) is None
    assert get_reader("mikro://h/image/1") is not None


def test_open_multichannel_stack(make_napari_viewer, mikro_clean, ids, token_env) -> None:
    viewer = make_napari_viewer()
    uri = mikro_clean.representation_uri(ids["rep"])
    layers = open_and_wait(viewer, uri)
    assert [layer.name for layer in layers] == ["DAPI", "GFP", "mCherry"]
    for layer, channel in zip(layers, range(3), strict=True):
        assert layer.data.shape == (6, 64, 96)  # t squeezed, c split off
        np.testing.assert_allclose(layer.scale, (0.5, 0.2, 0.2))
        assert layer.blending == "additive"
        assert layer.metadata["lablink"]["uri"] == uri.split("?")[0]
        np.testing.assert_array_equal(np.asarray(layer.data[2]), STACK[channel, 0, 2])
    np.testing.assert_allclose(layers[0].colormap.colors[-1], [0, 0, 1, 1])
    np.testing.assert_allclose(layers[2].colormap.colors[-1], [1, 0, 0, 1])
    assert mikro_clean.token not in json.dumps(layers[0].metadata, default=str)


def test_showing_a_plane_fetches_only_its_chunks(
    make_napari_viewer, qtbot, mikro_clean, ids, token_env
):
    viewer = make_napari_viewer()
    open_and_wait(viewer, mikro_clean.representation_uri(ids["rep"]))
    viewer.dims.set_point(0, 1.0)  # z = 2 (scale 0.5 um); planes 3 and 1 are read ahead
    qtbot.waitUntil(lambda: not pending_prefetch(), timeout=20_000)
    mikro_clean.s3.reset_requests()
    viewer.dims.set_point(0, 2.0)  # z = 4
    qtbot.waitUntil(lambda: not pending_prefetch(), timeout=20_000)
    gets = [r.path for r in mikro_clean.s3.requests.snapshot() if r.method == "GET"]
    planes = Counter(p.split("/data/")[1].split(".")[2] for p in gets)
    # 3 channels x (2 x 2 chunks of 32 x 48) of plane z=4, and of plane 5 read ahead (plane 3
    # was read ahead already), nothing else.
    assert planes == {"4": 12, "5": 12}


def test_open_pyramid_as_multiscale(make_napari_viewer, mikro_clean, ids, token_env) -> None:
    viewer = make_napari_viewer()
    layers = open_and_wait(viewer, mikro_clean.image_uri(ids["pyramid"]))
    assert len(layers) == 2
    assert all(layer.multiscale for layer in layers)
    assert [lvl.shape for lvl in layers[0].data] == [(512, 512), (256, 256), (128, 128)]
    np.testing.assert_allclose(layers[0].scale, (0.5, 0.5))


@pytest.mark.parametrize("generation", [1, 2])
def test_mask_opens_as_labels(make_napari_viewer, mikro_clean, ids, token_env, generation) -> None:
    viewer = make_napari_viewer()
    if generation == 1:
        uri = mikro_clean.representation_uri(ids["mask"])
    else:
        uri = mikro_clean.image_uri(ids["mask2"])
    (layer,) = open_and_wait(viewer, uri)
    assert layer._type_string == "labels"
    assert np.asarray(layer.data)[15, 15] == 7


@pytest.mark.parametrize(
    ("uri_of", "words"),
    [
        (lambda m: m.representation_uri("4242"), "Not found"),
        (lambda m: m.representation_uri("1", with_s3=False), "No S3 endpoint is configured"),
        (
            lambda m: "mikro+http://127.0.0.1:9/representation/1?s3=http://127.0.0.1:9",
            "could not be reached",
        ),
        (lambda m: f"mikro+http://{m.uri_authority}/nothing/1", "not a valid napari-lablink URI"),
    ],
)
def test_failures_notify_and_add_nothing(
    make_napari_viewer, mikro_clean, token_env, notifications, uri_of, words
) -> None:
    viewer = make_napari_viewer()
    existing = viewer.add_image(np.ones((4, 4)), name="mine")
    uri = uri_of(mikro_clean)
    try:
        open_and_wait(viewer, uri)
    except Exception as exc:  # a malformed URI is refused by the reader's parser: still no layer
        assert words in str(exc)
    else:
        assert any(words in n for n in notifications), notifications
    assert list(viewer.layers) == [existing]
    np.testing.assert_array_equal(existing.data, np.ones((4, 4)))


def test_wrong_token_notifies(make_napari_viewer, mikro_clean, ids, monkeypatch, notifications):
    monkeypatch.setenv("LABLINK_TOKEN", "not-the-token")
    viewer = make_napari_viewer()
    open_and_wait(viewer, mikro_clean.representation_uri(ids["rep"]))
    assert len(viewer.layers) == 0
    assert any("refused" in n for n in notifications)
    assert not any("not-the-token" in n for n in notifications)


def test_dropped_link_opens(make_napari_viewer, mikro_clean, ids, token_env, qtbot) -> None:
    """A real drop event carrying a text/uri-list, as a browser or file manager sends it."""
    from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
    from qtpy.QtGui import QDropEvent

    viewer = make_napari_viewer()
    uri = mikro_clean.representation_uri(ids["rep"])
    mime = QMimeData()
    mime.setUrls([QUrl(uri)])
    assert mime.hasFormat("text/uri-list")
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    viewer.window._qt_viewer.dropEvent(event)
    assert wait_for_opens(60)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "GFP", "mCherry"]


def test_command_line(mikro_clean, ids, tmp_path) -> None:
    """`napari <uri>`: napari's own argument handling up to the event loop, in a subprocess."""
    uri = mikro_clean.representation_uri(ids["rep"])
    script = (
        "import sys, json\n"
        "from napari.__main__ import _build_viewer\n"
        f"sys.argv = ['napari', {uri!r}]\n"
        "viewer = _build_viewer()\n"
        "from napari_lablink._napari.opening import wait_for_opens\n"
        "assert wait_for_opens(60)\n"
        "print(json.dumps([[l.name, list(l.data.shape)] for l in viewer.layers]))\n"
        "viewer.close()\n"
    )
    env = {**os.environ, "LABLINK_TOKEN": mikro_clean.token}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    layers = json.loads(result.stdout.strip().splitlines()[-1])
    assert layers == [["DAPI", [6, 64, 96]], ["GFP", [6, 64, 96]], ["mCherry", [6, 64, 96]]]
