"""The tracker client under lost answers, hostile redirects, slow and malformed logins."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink import ServerError, ServerUnavailableError
from napari_lablink.client.errors import ChannelDataError, ConfigurationError, ProtocolError
from napari_lablink.testing.tracker.server import TrackerStandIn

from ..scripted_server import Reply, ScriptedServer

PLANE = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-H", "hardening run", fovs=["FOV1"])
        stand_in.image_id = stand_in.add_image(run, "FOV1", {"CD45": (150, PLANE)}, 400.0)  # type: ignore[attr-defined]
        yield stand_in


def connect(tracker: TrackerStandIn):
    return napari_lablink.connect(
        f"mibi+http://127.0.0.1:{tracker.port}", email=tracker.email, password=tracker.password
    )


def test_a_lost_create_imageset_answer_makes_no_duplicate(tracker: TrackerStandIn) -> None:
    with connect(tracker) as server:
        server.create_imageset([tracker.image_id], "twin", None, "older one")
        tracker.faults.fail_next(1, "lost", methods=["POST"], path_contains="/imagesets/")
        created = server.create_imageset([tracker.image_id], "twin", None, "new one")
    names = [s["name"] for s in tracker.state.imagesets.values()]
    assert names.count("twin") == 2  # the older one and exactly one new one
    assert created["description"] == "new one"


def test_every_answer_lost_still_makes_one_imageset(tracker: TrackerStandIn) -> None:
    with connect(tracker) as server:
        tracker.faults.fail_next(3, "lost", methods=["POST"], path_contains="/imagesets/")
        created = server.create_imageset([tracker.image_id], "once", None)
    assert [s["name"] for s in tracker.state.imagesets.values()] == ["once"]
    assert created["images"] == [tracker.image_id]
    posts = [r for r in tracker.requests if r.method == "POST" and r.path == "/imagesets/"]
    assert len(posts) == 1  # found by the look-up, never sent again


def test_an_imageset_the_tracker_makes_late_is_waited_for_not_resent(
    tracker: TrackerStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracker hangs up and creates the set 0.4 s later: the client finds it."""
    monkeypatch.setattr(tracker.faults, "slow_seconds", 0.4)
    with connect(tracker) as server:
        tracker.faults.fail_next(1, "late", methods=["POST"], path_contains="/imagesets/")
        created = server.create_imageset([tracker.image_id], "late", None)
    assert [s["name"] for s in tracker.state.imagesets.values()].count("late") == 1
    assert created["name"] == "late"
    posts = [r for r in tracker.requests if r.method == "POST" and r.path == "/imagesets/"]
    assert len(posts) == 1


def test_a_lost_copy_run_answer_makes_no_second_run(tracker: TrackerStandIn) -> None:
    with connect(tracker) as server:
        tracker.faults.fail_next(1, "lost", methods=["POST"], path_contains="/runs/")
        _old, new = server.copy_run("RUN-H", "RUN-H-COPY")
    assert new.label == "RUN-H-COPY"
    labels = [run.label for run in tracker.state.runs.values()]
    assert labels.count("RUN-H-COPY") == 1


def test_zero_size_channels_and_empty_files_are_refused(tracker: TrackerStandIn, tmp_path) -> None:
    empty = tmp_path / "empty.tiff"
    empty.write_bytes(b"")
    with connect(tracker) as server:
        with pytest.raises(ChannelDataError, match="no pixels"):
            server.upload_channel(tracker.image_id, np.zeros((0, 64), np.uint16), "CD3")
        with pytest.raises(ConfigurationError, match="empty file"):
            server.upload_mibitiff(empty, run_id=1)
        with pytest.raises(ConfigurationError, match="empty file"):
            server.upload_channel(tracker.image_id, b"", "CD3.png")


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.stop()


def test_a_307_on_login_never_sends_the_password_elsewhere(scripted: ScriptedServer) -> None:
    other = ScriptedServer()
    try:
        scripted.script.append(Reply(307, b"", {"Location": f"{other.url}/api-token-auth/"}))
        with pytest.raises(ServerError, match="not sent there again"):
            napari_lablink.connect(
                f"mibi+http://{scripted.url.removeprefix('http://')}",
                email="a@lab.org",
                password="secret-pw-123",
            )
        assert other.seen == []
    finally:
        other.stop()


@pytest.mark.parametrize("body", [[{"token": "x"}], {"token": 5}, "just text"])
def test_malformed_login_answers_are_protocol_errors(scripted: ScriptedServer, body) -> None:
    scripted.script.append(Reply(200, body))
    with pytest.raises(ProtocolError):
        napari_lablink.connect(
            f"mibi+http://{scripted.url.removeprefix('http://')}",
            email="a@lab.org",
            password="secret-pw-123",
        )


def test_a_trickling_login_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLINK_DEADLINE", "1.5")
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.3):
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(ServerUnavailableError, match="timed out"):
            napari_lablink.connect(
                f"mibi+http://127.0.0.1:{listener.getsockname()[1]}",
                email="a@lab.org",
                password="secret-pw-123",
            )
        assert time.monotonic() - start < 8
    finally:
        stop.set()
        listener.close()
