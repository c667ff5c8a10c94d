"""Opened tracker images compute on a real dask.distributed cluster of worker processes.

Every channel is read in a worker that got the array by pickle: it starts its own tracker
session from the pickled login and logs in again by itself when the tracker stops taking the
token it was sent.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.testing.tracker.server import TrackerStandIn

RNG = np.random.default_rng(16)
SIZE = 48
CHANNELS = {f"M{i}": (100 + i, RNG.integers(0, 4000, (SIZE, SIZE), np.uint16)) for i in range(6)}
EXPECTED = np.stack([plane for _, plane in CHANNELS.values()])


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-D", "distributed run")
        stand_in.fovs = [stand_in.add_image(run, f"FOV{i}", CHANNELS, 400.0) for i in (1, 2)]  # type: ignore[attr-defined]
        yield stand_in


@pytest.fixture
def server(tracker: TrackerStandIn) -> Iterator[TrackerServer]:
    with napari_lablink.connect(
        f"mibi+http://127.0.0.1:{tracker.port}", email=tracker.email, password=tracker.password
    ) as connection:
        assert isinstance(connection, TrackerServer)
        yield connection


def downloads(tracker: TrackerStandIn) -> list[str]:
    return [r.path for r in tracker.requests if "channel_url" in r.path]


def test_a_max_projection_computes_on_worker_processes(tracker, server, dask_client) -> None:
    stack = server.get(f"images/{tracker.fovs[0]}").levels[0]
    tracker.clear_requests()
    np.testing.assert_array_equal(stack.max(axis=0).compute(), EXPECTED.max(axis=0))
    # Every channel read once, by the workers: the test's process read and kept none.
    assert len(downloads(tracker)) == len(CHANNELS)
    assert server.channels.nbytes == 0


def test_workers_log_in_again_when_the_token_expires(tracker, server, dask_client) -> None:
    first, second = (server.get(f"images/{fov}").levels[0] for fov in tracker.fovs)
    assert int(first.sum().compute()) == int(EXPECTED.sum())
    tracker.advance_clock(48 * 3600)  # every token issued so far has expired
    tracker.clear_requests()
    np.testing.assert_array_equal(second.compute(), EXPECTED)
    logins = [r for r in tracker.requests if r.path.endswith("api-token-auth/")]
    assert 1 <= len(logins) <= 2  # each worker that read logged in again, by itself
    assert len(downloads(tracker)) >= len(CHANNELS)


def test_secrets_travel_only_inside_pickles_never_into_reprs_or_logs(
    tracker, server, dask_client
) -> None:
    stack = server.get(f"images/{tracker.fovs[0]}").levels[0]
    secrets = [tracker.password, server.session.token]
    payload = pickle.dumps(stack)
    assert all(s.encode() in payload for s in secrets)  # the workers need them
    described = [repr(stack), repr(stack.dask), repr(pickle.loads(payload).dask.layers)]
    plane = stack[0]
    described += [
        repr(task)
        for task in dict(plane.__dask_optimize__(plane.dask, plane.__dask_keys__())).values()
    ]
    stack.max().compute()
    logs = [dask_client.get_worker_logs(), dask_client.get_scheduler_logs()]
    for text in [*described, repr(logs)]:
        assert not any(s in text for s in secrets)
