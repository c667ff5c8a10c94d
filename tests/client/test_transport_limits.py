"""The transport against hostile servers: trickled answers, huge bodies, cross-origin redirects
of bodies, TLS spoken to a plain-HTTP port, secrets echoed cut or JSON-escaped."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from napari_lablink.client import deadline
from napari_lablink.client.errors import (
    LostAnswerError,
    ProtocolError,
    ServerError,
    ServerUnavailableError,
    cut,
    scrub,
)
from napari_lablink.client.transport import RetryPolicy, Transport

from .scripted_server import Reply, ScriptedServer

ONCE = RetryPolicy(attempts=1)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.stop()


@pytest.fixture
def other() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.stop()


class RawServer:
    """Accepts connections and answers each with ``reply(connection)`` in a thread."""

    def __init__(self, reply) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                self._reply(connection, self._stop)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def trickle(connection: socket.socket, stop: threading.Event) -> None:
    """Headers, then a body one byte every 0.2 s: every read succeeds, the answer never ends."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    connection.sendall(b"Content-Length: 100000\r\n\r\n")
    while not stop.wait(0.2):
        connection.sendall(b" ")


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline() -> None:
    raw = RawServer(trickle)
    try:
        with Transport(
            raw.url, label="slow", timeout=httpx.Timeout(5.0), retry=ONCE, deadline=1.0
        ) as t:
            start = time.monotonic()
            with pytest.raises(ServerUnavailableError, match="timed out"):
                t.request("GET", "thing")
            assert time.monotonic() - start < 4.0  # the read timeout alone would never end it
    finally:
        raw.close()


def test_trickled_headers_are_bounded_too() -> None:
    def headers_forever(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.2):
            connection.sendall(b"X: y\r\n")

    raw = RawServer(headers_forever)
    try:
        with Transport(raw.url, label="slow", retry=ONCE, deadline=1.0) as t:
            start = time.monotonic()
            with pytest.raises(ServerUnavailableError):
                t.request("GET", "thing")
            assert time.monotonic() - start < 4.0
    finally:
        raw.close()


def test_nested_deadlines_keep_the_earliest() -> None:
    with deadline.within(100.0):
        with deadline.within(1.0):
            left = deadline.remaining()
            assert left is not None and left <= 1.0
        left = deadline.remaining()
        assert left is not None and left > 50
    assert deadline.remaining() is None


def test_deadline_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLINK_DEADLINE", "7.5")
    assert deadline.configured_seconds() == 7.5
    monkeypatch.setenv("LABLINK_DEADLINE", "soon")
    assert deadline.configured_seconds() == deadline.DEFAULT_SECONDS


def test_huge_bodies_fail_fast_with_a_typed_error(server: ScriptedServer) -> None:
    server.script.append(Reply(200, b"x" * (3 * 2**20)))
    with Transport(server.url, label="big", retry=ONCE) as t:
        with pytest.raises(ProtocolError, match="larger than 1 MiB"):
            t.request("GET", "thing", max_bytes=2**20)
        server.script.append(Reply(200, b"x" * 1000))
        assert len(t.request("GET", "thing", max_bytes=2**20).content) == 1000


def test_a_huge_chunked_body_is_cut_off_while_streaming() -> None:
    def endless(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * 65536
        while not stop.is_set():
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    raw = RawServer(endless)
    try:
        with Transport(raw.url, label="endless", retry=ONCE) as t:
            with pytest.raises(ProtocolError, match="larger than 2 MiB"):
                t.request("GET", "thing", max_bytes=2 * 2**20)
    finally:
        raw.close()


def test_a_307_never_forwards_a_body_to_another_origin(server, other) -> None:
    server.script.append(Reply(307, b"", {"Location": f"{other.url}/api-token-auth/"}))
    with Transport(server.url, label="tracker", retry=ONCE) as t:
        with pytest.raises(ServerError, match="not sent there again"):
            t.request("POST", "api-token-auth/", json={"email": "a@b", "password": "hunter2!"})
    assert other.seen == []


def test_same_origin_redirects_are_followed(server) -> None:
    server.script.append(Reply(307, b"", {"Location": f"{server.url}/moved/"}))
    server.script.append(Reply(200, {"ok": True}))
    with Transport(server.url, label="tracker", retry=ONCE) as t:
        assert t.request("POST", "old/", json={"a": 1}).json() == {"ok": True}
    assert server.seen[1].path == "/moved/" and json.loads(server.seen[1].body) == {"a": 1}


def test_get_redirects_to_another_origin_are_followed(server, other) -> None:
    server.script.append(Reply(302, b"", {"Location": f"{other.url}/file"}))
    other.script.append(Reply(200, {"ok": 2}))
    with Transport(server.url, label="tracker", retry=ONCE) as t:
        assert t.request("GET", "thing").json() == {"ok": 2}


def test_tls_to_a_plain_http_port_suggests_plus_http(server: ScriptedServer) -> None:
    url = server.url.replace("http://", "https://")
    with Transport(url, label="mikro://127.0.0.1", retry=ONCE) as t:
        with pytest.raises(ServerUnavailableError) as caught:
            t.request("GET", "thing")
    assert "+http" in str(caught.value) and "TLS" in str(caught.value)


def test_a_lost_answer_to_a_creating_request_is_its_own_error(server: ScriptedServer) -> None:
    server.script.append("drop")
    with Transport(server.url, label="s", retry=ONCE) as t:
        with pytest.raises(LostAnswerError, match="hung up before answering"):
            t.request("POST", "create", json={})


def test_secrets_are_scrubbed_before_the_text_is_cut(server: ScriptedServer) -> None:
    token = "T0KEN-abcdefghijklmnopqrstu"
    said = "x " * 140 + token + " and more"
    server.script.append(Reply(400, {"detail": said}))
    with Transport(server.url, label="s", retry=ONCE, secrets=lambda: [token]) as t:
        with pytest.raises(ServerError) as caught:
            t.request("GET", "thing")
    text = str(caught.value)
    assert "T0KEN" not in text and "abcdefgh" not in text


def test_json_escaped_secrets_are_scrubbed() -> None:
    password = 'pa"ss\\word'
    echoed = json.dumps({"detail": f"bad password {password}"})
    assert scrub(echoed, [password]) == '{"detail": "bad password ***"}'
    assert scrub(json.dumps(json.dumps(password)), [password]).count("***") == 1


def test_cut_never_ends_mid_word() -> None:
    text = "alpha beta gamma " * 40
    short = cut(text, 50)
    assert short.endswith(" ...") and len(short) <= 54
    assert short[:-4].split()[-1] in {"alpha", "beta", "gamma"}
    assert cut("short", 50) == "short"
