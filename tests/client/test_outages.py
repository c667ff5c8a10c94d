"""A server that stops answering while its images are open: chunk reads answer zeros at once,
the outage is reported once, and reads try the network again after a cool-down or a reopen."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from napari_lablink.client import outages
from napari_lablink.client.errors import NotFoundError, ServerUnavailableError
from napari_lablink.client.lazy import chunked_array
from napari_lablink.client.transport import Transport


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlakyServer:
    """Chunk reads that fail while ``down`` and count how often they were tried."""

    def __init__(self) -> None:
        self.down = False
        self.error: Exception = ServerUnavailableError("The server could not be reached")
        self.reads = 0

    def __call__(self, index: tuple[int, ...]) -> np.ndarray:
        self.reads += 1
        if self.down:
            raise self.error
        return np.full((1, 4, 4), index[0] + 1, np.uint16)


@pytest.fixture
def heard() -> Iterator[list[outages.Outage]]:
    seen: list[outages.Outage] = []
    stop = outages.listen(seen.append)
    yield seen
    stop()


def stack(server: FlakyServer, source: outages.Source):
    return chunked_array(
        "flaky", ((1,) * 3, (4,), (4,)), np.uint16, server, source=source, image="cells"
    )


def test_an_outage_answers_zeros_reports_once_and_stops_asking(heard) -> None:
    clock = Clock()
    source = outages.Source("mikro+http://lab:8080", cool_down=10, clock=clock)
    server = FlakyServer()
    array = stack(server, source)
    assert array[1].compute().max() == 2
    server.down = True
    assert not np.asarray(array).any()
    found = server.reads  # the chunks of the compute that found the outage, read together
    assert found <= 1 + 3
    for _ in range(5):
        assert not np.asarray(array).any()
    assert server.reads == found  # none since: no waiting on the network
    assert not source.available and source.skipped >= 14
    assert len(heard) == 1 and not heard[0].over
    text = heard[0].message
    assert text.startswith("Lost the connection to the server")
    assert "[server mikro+http://lab:8080, image cells: The server could not be reached" in text


def test_a_whole_read_is_guarded_too(heard) -> None:
    """An array that computes itself in one read (mikro's whole level) answers zeros of its
    whole shape in an outage, like its chunks do."""
    source = outages.Source("mikro+http://lab:8080", cool_down=10, clock=Clock())
    server = FlakyServer()
    whole_reads = []

    def read_whole() -> np.ndarray:
        whole_reads.append(1)
        if server.down:
            raise server.error
        return np.ones((3, 4, 4), np.uint16)

    array = chunked_array(
        "whole",
        ((1,) * 3, (4,), (4,)),
        np.uint16,
        server,
        source=source,
        image="cells",
        read_whole=read_whole,
    )
    assert array.compute().sum() == 48 and len(whole_reads) == 1
    server.down = True
    empty = array.compute()
    assert empty.shape == (3, 4, 4) and not empty.any()
    assert len(heard) == 1 and not source.available
    assert not array.compute().any() and len(whole_reads) == 2  # the outage asks no more


def test_after_the_cool_down_one_read_tries_again_and_the_return_is_heard(heard) -> None:
    clock = Clock()
    source = outages.Source("pims+http://lab", cool_down=10, clock=clock)
    server = FlakyServer()
    array = stack(server, source)
    server.down = True
    np.asarray(array[0])
    clock.now = 11
    np.asarray(array)  # one probe, still down: another cool-down, no second report
    assert server.reads == 2 and len(heard) == 1
    np.asarray(array)
    assert server.reads == 2
    server.down = False
    clock.now = 30
    assert np.asarray(array[2]).max() == 3  # the probe finds the server back
    assert source.available and [o.over for o in heard] == [False, True]
    assert np.asarray(array).max() == 3


def test_a_reopen_makes_the_source_available_at_once(heard) -> None:
    source = outages.Source("mibi+http://lab", cool_down=3600)
    server = FlakyServer()
    array = stack(server, source)
    server.down = True
    np.asarray(array)
    server.down = False
    source.reset()
    assert np.asarray(array).max() == 3


def test_an_answer_that_is_no_outage_still_raises(heard) -> None:
    source = outages.Source("mikro+http://lab:8081")
    server = FlakyServer()
    server.down = True
    server.error = NotFoundError("Not found", server="mikro+http://lab:8081")
    with pytest.raises(NotFoundError):
        np.asarray(stack(server, source))
    assert source.available and not heard


def test_sources_are_one_per_server_and_pickle_as_that_one() -> None:
    import pickle

    first = outages.source("mikro+http://lab:9999")
    assert outages.source("mikro+http://lab:9999") is first
    assert pickle.loads(pickle.dumps(first)) is first


def test_a_refused_connection_is_tried_twice_at_most() -> None:
    """Nobody listens: two quick attempts, not a backoff of seconds (no timing asserted)."""
    attempts = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Transport(f"http://127.0.0.1:{port}", label="test") as transport:
        send = transport._send

        def counted(*args, **kwargs):
            attempts.append(1)
            return send(*args, **kwargs)

        transport._send = counted  # type: ignore[method-assign]
        with pytest.raises(ServerUnavailableError):
            transport.request("GET", "chunk")
    assert len(attempts) == 2
