"""Discovery: an address in, the deployment's fakts document out, or a message saying why not."""

from __future__ import annotations

import socket

import pytest

from napari_lablink.client.arkitekt import (
    DeploymentUnreachableError,
    NotFaktsError,
    discover,
)
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn

from ..scripted_server import Reply, ScriptedServer


@pytest.mark.parametrize("deployment", ["G1", "G2a", "G2b"], indirect=True)
def test_discovery_by_url_and_by_host(deployment: ArkitektStandIn) -> None:
    by_url = discover(deployment.url)
    assert by_url.base_url == deployment.base_url
    assert by_url.name == "lablink-stand-in"
    assert by_url.modern is (deployment.shape == "G2b")
    # No scheme: HTTPS is tried first (the stand-in speaks plain HTTP), then HTTP.
    assert discover(deployment.url.removeprefix("http://")) == by_url


def test_approval_urls_per_generation(deployment: ArkitektStandIn) -> None:
    endpoint = discover(deployment.url)
    assert endpoint.approval_url("abcd1234") == f"{deployment.url}/configure/abcd1234"


@pytest.mark.parametrize("deployment", ["G2a"], indirect=True)
def test_legacy_approval_url(deployment: ArkitektStandIn) -> None:
    assert discover(deployment.url).approval_url("abc") == (
        f"{deployment.url}/f/configure/?device_code=abc&grant=device_code"
    )


def test_unreachable_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DeploymentUnreachableError) as caught:
        discover(f"http://127.0.0.1:{port}", timeout=1)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "Check the address" in str(caught.value)


def test_a_mikro_server_is_not_a_deployment(mikro: MikroStandIn) -> None:
    with pytest.raises(NotFaktsError, match="HTTP 404 for the discovery document"):
        discover(mikro.base_url)


@pytest.mark.parametrize(
    "body",
    [b"<html>welcome</html>", {"version": "0.1.0"}, {"name": "x", "base_url": "/relative/"}],
)
def test_documents_that_are_not_fakts(body: object) -> None:
    server = ScriptedServer()
    try:
        server.default = Reply(200, body)
        with pytest.raises(NotFaktsError) as caught:
            discover(server.url)
        assert server.seen[0].path == "/.well-known/fakts"
        assert "/.well-known/fakts" in str(caught.value)
    finally:
        server.stop()
