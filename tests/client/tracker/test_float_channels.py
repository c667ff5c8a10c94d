"""Float channels reach the tracker as float32 (what it stores) or are refused with a message,
never rounded unseen. Over HTTP to the stand-in tracker."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink.client.errors import ChannelDataError
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.testing.tracker.server import TrackerStandIn

SIZE = 16


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-A", "tonsil run")
        plane = np.ones((SIZE, SIZE), np.uint16)
        stand_in.image_id = stand_in.add_image(  # type: ignore[attr-defined]
            run, "FOV1", {"dsDNA": (89, plane)}, 400.0
        )
        yield stand_in


@pytest.fixture
def server(tracker: TrackerStandIn) -> Iterator[TrackerServer]:
    url = f"mibi+http://127.0.0.1:{tracker.port}"
    with napari_lablink.connect(url, email=tracker.email, password=tracker.password) as connection:
        assert isinstance(connection, TrackerServer)
        yield connection


def test_float64_that_float32_cannot_hold_is_refused(tracker, server: TrackerServer) -> None:
    density = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE)  # float64, most values inexact
    assert not np.array_equal(density.astype(np.float32), density)
    with pytest.raises(ChannelDataError) as caught:
        server.upload_channel(tracker.image_id, density, "density")
    message = str(caught.value)
    assert "'density' is float64 and the tracker stores float32" in message
    assert f"of {SIZE * SIZE} values would change" in message
    assert "data.astype('float32')" in message
    assert not any("upload_channel" in r.path for r in tracker.requests)  # nothing was sent


def test_float64_that_float32_holds_exactly_goes_through(tracker, server) -> None:
    halves = np.arange(SIZE * SIZE, dtype=np.float64).reshape(SIZE, SIZE) / 2
    halves[0, 0] = np.nan  # a NaN stays a NaN
    server.upload_channel(tracker.image_id, halves, "halves")
    stored = tracker.image_channels(tracker.image_id)["halves"]
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, halves.astype(np.float32))


def test_float32_after_an_explicit_conversion_goes_through(tracker, server) -> None:
    density = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.float32)
    server.upload_channel(tracker.image_id, density, "density")
    np.testing.assert_array_equal(tracker.image_channels(tracker.image_id)["density"], density)
