"""The tracker's channel cache: one per connection, shared by every open, bounded in bytes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink.client.tracker import read
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.testing.tracker.server import TrackerStandIn

RNG = np.random.default_rng(5)
SIZE = 64
CHANNELS = {f"M{i}": (100 + i, RNG.integers(0, 4000, (SIZE, SIZE), np.uint16)) for i in range(8)}
PLANE = SIZE * SIZE * 2  # bytes of one decoded channel


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-C", "cache run")
        stand_in.image_id = stand_in.add_image(run, "FOV1", CHANNELS, 400.0)  # type: ignore[attr-defined]
        yield stand_in


@pytest.fixture
def server(tracker: TrackerStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackerServer]:
    with napari_lablink.connect(
        f"mibi+http://127.0.0.1:{tracker.port}", email=tracker.email, password=tracker.password
    ) as connection:
        download = read.channel_data
        connection.downloads = []  # type: ignore[attr-defined]

        def counted(session, image_id, name):
            connection.downloads.append(name)  # type: ignore[attr-defined]
            return download(session, image_id, name)

        # Counts the downloads that reads of opened images make (each still goes to the server).
        monkeypatch.setattr(read, "channel_data", counted)
        yield connection


def expected() -> np.ndarray:
    return np.stack([plane for _, plane in CHANNELS.values()])


def test_four_opens_share_one_cache_and_download_each_channel_once(tracker, server) -> None:
    stacks = [server.get(f"images/{tracker.image_id}").levels[0] for _ in range(4)]
    server.downloads.clear()
    for stack in stacks:
        np.testing.assert_array_equal(stack.compute(), expected())
    assert len(server.downloads) == len(CHANNELS)
    assert server.channels.nbytes == len(CHANNELS) * PLANE  # one FOV, not four


def test_the_cache_stays_within_its_bytes_and_still_reads_right(tracker, server) -> None:
    server.channels.max_bytes = 3 * PLANE
    stack = server.get(f"images/{tracker.image_id}").levels[0]
    server.downloads.clear()
    np.testing.assert_array_equal(stack.compute(), expected())
    assert len(server.downloads) == len(CHANNELS)  # bigger than the cache, still once each
    assert server.channels.nbytes <= 3 * PLANE
    for index in range(len(CHANNELS)):
        np.testing.assert_array_equal(stack[index].compute(), expected()[index])
    assert server.channels.nbytes <= 3 * PLANE
    server.downloads.clear()
    np.testing.assert_array_equal(stack[-1].compute(), expected()[-1])  # the most recent: kept
    assert len(server.downloads) == 0


def test_uploading_a_channel_drops_the_images_kept_channels(tracker, server) -> None:
    image = f"images/{tracker.image_id}"
    server.get(image).levels[0].compute()
    assert server.channels.nbytes == len(CHANNELS) * PLANE
    replaced = np.full((SIZE, SIZE), 7, np.uint16)
    server.upload_channel(tracker.image_id, replaced, filename="M0")
    assert server.channels.nbytes == 0
    np.testing.assert_array_equal(server.get(image).levels[0][0].compute(), replaced)
