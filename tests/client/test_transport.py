from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest

from napari_lablink.client.errors import (
    AuthenticationError,
    ClosedConnectionError,
    NotFoundError,
    ServerError,
    ServerUnavailableError,
)
from napari_lablink.client.transport import HeaderAuth, RetryPolicy, Transport

from .scripted_server import DROP, Reply, ScriptedServer

TOKEN = "tok-SECRET-4242"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05, total=5)


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.stop()


@pytest.fixture
def other():
    s = ScriptedServer()
    yield s
    s.stop()


def make(url: str, **kwargs) -> Transport:
    return Transport(
        url,
        label="test+http://server",
        auth=HeaderAuth(httpx.URL(url), "Bearer", lambda: TOKEN),
        secrets=lambda: [TOKEN],
        retry=kwargs.pop("retry", FAST),
        **kwargs,
    )


def test_retries_503_then_succeeds(server: ScriptedServer) -> None:
    server.script.extend([Reply(503), Reply(502), Reply(200, {"ok": 1})])
    with make(server.url) as t:
        assert t.request("GET", "thing").json() == {"ok": 1}
    assert len(server.seen) == 3


def test_honours_retry_after(server: ScriptedServer) -> None:
    server.script.extend([Reply(503, headers={"Retry-After": "0.3"}), Reply(200, {"ok": 1})])
    import time

    start = time.monotonic()
    with make(server.url) as t:
        t.request("GET", "thing")
    assert time.monotonic() - start >= 0.3


def test_gives_up_after_bounded_attempts(server: ScriptedServer) -> None:
    server.default = Reply(503, {"detail": "maintenance"})
    with make(server.url) as t, pytest.raises(ServerError) as info:
        t.request("GET", "thing", obj="image 7")
    assert len(server.seen) == FAST.attempts
    message = str(info.value)
    assert "HTTP 503: maintenance" in message and "image 7" in message
    assert "test+http://server" in message


def test_dropped_connection_is_retried_for_idempotent_requests(server: ScriptedServer) -> None:
    server.script.extend([DROP, Reply(200, {"ok": 2})])
    with make(server.url) as t:
        assert t.request("POST", "graphql", idempotent=True, json={}).json() == {"ok": 2}


def test_dropped_connection_is_not_retried_for_creating_requests(server: ScriptedServer) -> None:
    """A POST that may have reached the server is never sent twice: no duplicate objects."""
    server.script.extend([DROP, Reply(200, {"ok": 2})])
    with make(server.url) as t, pytest.raises(ServerUnavailableError):
        t.request("POST", "create", json={"name": "x"})
    assert len(server.seen) == 1


def test_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make(f"http://127.0.0.1:{port}") as t, pytest.raises(ServerUnavailableError) as info:
        t.request("POST", "create")
    assert "could not be reached after several attempts" in str(info.value)
    assert "Check that the server is running" in str(info.value)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, AuthenticationError, "refused the credentials"),
        (403, AuthenticationError, "refused the credentials"),
        (404, NotFoundError, "Not found"),
        (400, ServerError, "rejected the request"),
        (500, ServerError, "The server failed"),
    ],
)
def test_status_codes_become_typed_errors(server, status, error, words) -> None:
    server.default = Reply(status, {"detail": f"bad token {TOKEN}"})
    with make(server.url) as t, pytest.raises(error) as info:
        t.request("GET", "thing")
    assert words in str(info.value)
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_token_goes_to_own_origin_only(server: ScriptedServer, other: ScriptedServer) -> None:
    with make(server.url) as t:
        t.request("GET", "thing")
        t.request("GET", f"{other.url}/signed?X-Amz-Signature=abc")
    assert server.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in other.seen[0].headers


def test_redirect_to_another_host_drops_the_token(server: ScriptedServer, other) -> None:
    server.script.append(Reply(302, b"", {"Location": f"{other.url}/elsewhere"}))
    with make(server.url) as t:
        t.request("GET", "thing")
    assert other.seen[0].path == "/elsewhere"
    assert "authorization" not in other.seen[0].headers


def test_no_secret_in_logs(server: ScriptedServer, other, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.script.extend([Reply(503), Reply(200)])
    with make(server.url) as t:
        t.request("GET", "thing")
        t.request("GET", f"{other.url}/signed?Signature=SIGNEDSECRET")
    # Only the client's records: the scripted server logs its own request lines.
    text = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("napari_lablink.testing")
    )
    assert "retrying GET /thing" in text
    assert TOKEN not in text and "SIGNEDSECRET" not in text


def test_closed_transport_raises_clear_error(server: ScriptedServer) -> None:
    t = make(server.url)
    t.close()
    with pytest.raises(ClosedConnectionError, match="connection is closed"):
        t.request("GET", "thing")


def wait_until_seen(server: ScriptedServer) -> None:
    """Until the request is with the server (it answers after its reply's delay)."""
    end = time.monotonic() + 10
    while not server.seen and time.monotonic() < end:
        time.sleep(0.01)


def test_closing_during_a_call_lets_that_call_finish(server: ScriptedServer) -> None:
    """A widget dropping a connection its background job is using: the job's call ends with its
    answer (shutting its socket under it would hang the read), later calls are refused."""
    server.script.append(Reply(200, {"ok": 1}, delay=0.5))
    t = make(server.url)
    answers: list[object] = []
    call = threading.Thread(target=lambda: answers.append(t.request("GET", "slow").json()))
    call.start()
    wait_until_seen(server)
    t.close()
    with pytest.raises(ClosedConnectionError, match="connection is closed"):
        t.request("GET", "thing")
    call.join(10)
    assert answers == [{"ok": 1}] and t.closed
    assert [seen.path for seen in server.seen] == ["/slow"]


def test_a_call_closed_between_attempts_is_not_retried(server: ScriptedServer) -> None:
    server.script.extend([Reply(503, delay=0.4), Reply(200, {"ok": 1})])
    t = make(server.url)
    failures: list[Exception] = []

    def call() -> None:
        try:
            t.request("GET", "thing")
        except ClosedConnectionError as exc:
            failures.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    wait_until_seen(server)
    t.close()
    worker.join(10)
    assert len(failures) == 1 and len(server.seen) == 1  # the 503 was not followed by a retry


def test_timeouts_are_reported_as_unavailable(server: ScriptedServer) -> None:
    """A server that accepts but never answers: the read timeout ends the wait."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        t = make(url, timeout=httpx.Timeout(0.2), retry=RetryPolicy(attempts=2, backoff=0.01))
        with t, pytest.raises(ServerUnavailableError, match="timed out"):
            t.request("GET", "thing")
