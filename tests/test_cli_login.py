"""``napari-lablink login HOST`` / ``logout HOST`` in a subprocess against the lok stand-in: the
code is shown, approval (automatic, or through lok's frontend) stores the login, logout drops it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from napari_lablink.client.arkitekt import LABLINK_APP, default_grant_store
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn


@pytest.fixture
def deployment(mikro: MikroStandIn) -> Iterator[ArkitektStandIn]:
    with ArkitektStandIn(mikro_url=f"{mikro.base_url}/mikro", s3_url=mikro.s3_endpoint) as lok:
        yield lok


def _cli(*args: str, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LABLINK_CONFIG": str(config), "LABLINK_NO_BROWSER": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "napari_lablink.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stored(deployment: ArkitektStandIn) -> bool:
    return default_grant_store().load(deployment.base_url, LABLINK_APP.identifier) is not None


def test_login_auto_approved_then_logout(
    deployment: ArkitektStandIn, mikro: MikroStandIn, _isolated_config: Path
) -> None:
    deployment.auto_approve = True
    login = _cli("login", deployment.url, config=_isolated_config)
    out, err = login.communicate(timeout=120)
    assert login.returncode == 0, err
    assert "approve the code" in err and "/configure/" in err  # shown even when auto-approved
    assert f"Logged in to lablink-stand-in ({deployment.url})" in out
    assert f"mikro: {mikro.base_url}/mikro/graphql" in out
    assert f"s3: {mikro.s3_endpoint}" in out
    assert _stored(deployment)
    (client,) = deployment.clients()
    assert client.client_token not in out + err and client.client_secret not in out + err

    logout = _cli("logout", deployment.url, config=_isolated_config)
    out, err = logout.communicate(timeout=60)
    assert logout.returncode == 0, err
    assert out.strip() == f"Logged out of {deployment.url}."
    assert not _stored(deployment)
    again = _cli("logout", deployment.url, config=_isolated_config)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 1 and "no login is stored" in err


def test_login_approved_in_the_browser(deployment: ArkitektStandIn, _isolated_config: Path) -> None:
    login = _cli("login", deployment.url, "--no-browser", config=_isolated_config)
    try:
        assert login.stderr is not None
        lines = [login.stderr.readline() for _ in range(3)]
        code = lines[2].split("approve the code ")[1].rstrip(".\n")
        assert lines[1].strip() == f"Open {deployment.url}/configure/{code}"
        assert deployment.pending_codes() == [code]
        answer = httpx.post(deployment.approve_route.format(code=code), json={"action": "approve"})
        assert answer.status_code == 200
        out, err = login.communicate(timeout=60)
    finally:
        login.kill()
    assert login.returncode == 0, err
    assert "Logged in to lablink-stand-in" in out
    assert _stored(deployment)


def test_login_denied_says_so(deployment: ArkitektStandIn, _isolated_config: Path) -> None:
    login = _cli("login", deployment.url, config=_isolated_config)
    try:
        assert login.stderr is not None
        lines = [login.stderr.readline() for _ in range(3)]
        code = lines[2].split("approve the code ")[1].rstrip(".\n")
        deployment.deny(code)
        _, err = login.communicate(timeout=60)
    finally:
        login.kill()
    assert login.returncode == 1
    assert "denied access in the browser" in err
    assert not _stored(deployment)


def test_login_to_something_that_is_no_deployment(
    mikro: MikroStandIn, _isolated_config: Path
) -> None:
    login = _cli("login", mikro.base_url, config=_isolated_config)
    _, err = login.communicate(timeout=60)
    assert login.returncode == 1
    assert "answered HTTP 404 for the discovery document" in err
