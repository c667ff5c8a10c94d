"""The remote reader with MIBItracker URIs, its layers added to a real napari viewer (under Xvfb).

The manifest does not list the ``mibi`` patterns yet, so the reader function is called directly
and its layer data added the way napari adds a reader's results.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from napari_lablink._napari.readers import get_reader, read_remote, read_remote_now
from napari_lablink.testing.tracker.server import TrackerStandIn

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(5)
SIZE = 48
CHANNELS = {
    "CD45": (150, RNG.integers(0, 60, size=(SIZE, SIZE), dtype=np.uint16)),
    "dsDNA": (89, RNG.integers(0, 300, size=(SIZE, SIZE), dtype=np.uint16)),
    "overlay": (None, RNG.integers(0, 2, size=(SIZE, SIZE), dtype=np.uint16)),
}
SETTINGS = {
    "CD45": {"color": "Cyan", "hex": "#00FFFF", "intensity_lower": 2, "intensity_higher": 40},
    "dsDNA": {"color": "Red", "hex": "#FF0000", "intensity_lower": 0, "intensity_higher": 250},
    "overlay": {"color": "Yellow", "hex": "#FFFF00", "intensity_lower": 0, "intensity_higher": 1},
}


@pytest.fixture
def tracker(monkeypatch) -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("20240115-A", "tonsil run")
        stand_in.image_id = stand_in.add_image(  # type: ignore[attr-defined]
            run, "FOV2", CHANNELS, 200.0, description="Tonsil_R1C2", settings=SETTINGS
        )
        monkeypatch.setenv("LABLINK_MIBI_EMAIL", stand_in.email)
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", stand_in.password)
        yield stand_in


def add_to(viewer, layer_data: list) -> list:
    """What napari does with a reader's answer."""
    layers = []
    for data, kwargs, kind in layer_data:
        added = getattr(viewer, f"add_{kind}")(data, **kwargs)
        layers.extend(added if isinstance(added, list) else [added])
    return layers


def test_reader_claims_tracker_uris() -> None:
    assert get_reader("mibi+http://127.0.0.1:8000/images/3") is read_remote
    assert get_reader("mibi://tracker.example.org/runs/RUN/FOV1") is read_remote


@pytest.mark.parametrize("path", ["images/{id}", "runs/20240115-A/FOV2"])
def test_tracker_image_opens_as_one_layer_per_channel(
    make_napari_viewer, tracker: TrackerStandIn, path: str
) -> None:
    viewer = make_napari_viewer()
    uri = f"mibi+http://127.0.0.1:{tracker.port}/" + path.format(id=tracker.image_id)
    layers = add_to(viewer, read_remote_now(uri))
    assert [layer.name for layer in layers] == ["CD45 (150)", "dsDNA (89)", "overlay"]
    for layer, name in zip(layers, ["CD45", "dsDNA", "overlay"], strict=True):
        assert layer.data.shape == (SIZE, SIZE)
        np.testing.assert_allclose(layer.scale, (200.0 / SIZE, 200.0 / SIZE))
        assert layer.blending == "additive"
        low, high = SETTINGS[name]["intensity_lower"], SETTINGS[name]["intensity_higher"]
        assert tuple(layer.contrast_limits) == (low, high)
        np.testing.assert_array_equal(np.asarray(layer.data), CHANNELS[name][1])
    np.testing.assert_allclose(layers[0].colormap.colors[-1], [0, 1, 1, 1])
    np.testing.assert_allclose(layers[1].colormap.colors[-1], [1, 0, 0, 1])
    metadata = layers[0].metadata["lablink"]
    assert metadata["uri"] == uri
    assert metadata["server_metadata"]["image_id"] == tracker.image_id
    assert tracker.password not in repr(layers[0].metadata)
    fetched = sorted(r.path.rsplit("/", 1)[1] for r in tracker.requests if r.signed)
    assert fetched == ["CD45.png", "dsDNA.png", "overlay.png"]  # each channel once


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("images/4242", "Not found"),
        ("runs/20240115-A/FOV9", "No image matches"),
    ],
)
def test_missing_images_notify_and_add_nothing(
    make_napari_viewer, tracker: TrackerStandIn, notifications, path: str, words: str
) -> None:
    viewer = make_napari_viewer()
    existing = viewer.add_image(np.ones((4, 4)), name="mine")
    assert read_remote_now(f"mibi+http://127.0.0.1:{tracker.port}/{path}") == [(None,)]
    assert any(words in n for n in notifications), notifications
    assert list(viewer.layers) == [existing]


def test_bad_password_notifies_without_the_password(
    make_napari_viewer, tracker: TrackerStandIn, notifications, monkeypatch
) -> None:
    monkeypatch.setenv("LABLINK_MIBI_PASSWORD", "not-my-password")
    viewer = make_napari_viewer()
    uri = f"mibi+http://127.0.0.1:{tracker.port}/images/{tracker.image_id}"
    assert read_remote_now(uri) == [(None,)]
    assert len(viewer.layers) == 0
    assert any("Unable to log in with provided credentials." in n for n in notifications)
    assert not any("not-my-password" in n for n in notifications)
