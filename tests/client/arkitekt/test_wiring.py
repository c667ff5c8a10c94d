"""mikro URIs on an Arkitekt deployment's host open, upload and stay readable with nothing but a
login: the granted configuration names GraphQL and S3, lok's tokens authenticate and renew."""

from __future__ import annotations

import logging
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from napari_lablink import connect, open_image
from napari_lablink.client.arkitekt import (
    LABLINK_APP,
    ApprovalPolicy,
    ApprovalPrompt,
    LoginRequiredError,
    default_grant_store,
    deployments,
)
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.mikro.images import Images
from napari_lablink.client.mikro.server import MikroServer
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn

from .conftest import Clock


@pytest.fixture(scope="module")
def seeded(mikro: MikroStandIn) -> dict[str, str]:
    return mikro.seed_demo()


@pytest.fixture
def approving(deployment: ArkitektStandIn) -> Iterator[list[ApprovalPrompt]]:
    """Logins started by connections are approved in lok's frontend, as a user would."""
    seen: list[ApprovalPrompt] = []

    def prompt(p: ApprovalPrompt) -> None:
        seen.append(p)
        httpx.post(deployment.approve_route.format(code=p.code), json={"action": "approve"})

    before = deployments.policy
    deployments.policy = ApprovalPolicy(prompt=prompt)
    yield seen
    deployments.policy = before


def test_a_uri_on_the_deployment_opens_with_nothing_but_a_login(
    deployment: ArkitektStandIn,
    mikro: MikroStandIn,
    seeded: dict[str, str],
    approving: list[ApprovalPrompt],
    _isolated_config: Path,
) -> None:
    uri = f"mikro+{deployment.url}/image/{seeded['cells_gen2']}"
    image = open_image(uri)
    assert image.shape == (3, 1, 16, 256, 256)
    expected = mikro.read_image(seeded["cells_gen2"])
    assert np.array_equal(np.asarray(image.data[:, :, 3]), expected[:, :, 3])
    pyramid = open_image(f"mikro+{deployment.url}/image/{seeded['tissue_pyramid']}")
    assert len(pyramid.levels) == 3
    assert len(approving) == 1  # one login for the deployment, shared by both images
    server = shared_connection(uri)
    assert server.transport.base_url == f"{mikro.base_url}/mikro"  # the granted GraphQL
    # The grant is kept beside the config file, readable by the user only.
    grant = default_grant_store().load(deployment.base_url, LABLINK_APP.identifier)
    assert grant is not None and grant.fakts["base_url"] == deployment.base_url
    (path,) = (_isolated_config.parent / "arkitekt").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_stored_login_is_used_by_the_next_process(
    deployment: ArkitektStandIn, seeded: dict[str, str], approving: list[ApprovalPrompt]
) -> None:
    uri = f"mikro+{deployment.url}/image/{seeded['cells_gen2']}"
    open_image(uri)
    deployments.reset()  # as if napari-lablink started again
    deployment.reset_requests()
    deployment.auto_approve = False
    assert open_image(uri).shape == (3, 1, 16, 256, 256)
    assert len(approving) == 1  # not asked again
    paths = {r.path for r in deployment.requests}
    assert "/.well-known/fakts" not in paths  # found by the stored login, not rediscovered


def test_upload_round_trips_without_s3_setting(
    deployment: ArkitektStandIn, approving: list[ApprovalPrompt]
) -> None:
    data = np.arange(2 * 32 * 48, dtype=np.uint16).reshape(2, 32, 48)
    with connect(f"mikro+{deployment.url}") as server:
        uri = server.upload(data, name="wired", dims=("c", "y", "x"))
    assert uri.startswith(f"mikro+{deployment.url}/image/") and "?" not in uri
    back = open_image(uri)
    assert np.array_equal(np.asarray(back.data).reshape(data.shape), data)


def test_a_token_that_expires_mid_session_is_renewed_unnoticed(
    deployment: ArkitektStandIn,
    clock: Clock,
    seeded: dict[str, str],
    approving: list[ApprovalPrompt],
) -> None:
    first = open_image(f"mikro+{deployment.url}/image/{seeded['cells_gen2']}")
    session = deployments.session_for(deployment.url)
    assert session is not None and session.tokens.fetches == 1
    clock.now += 700  # lok's tokens last 600 s here; mikro now refuses the one in hand
    second = open_image(f"mikro+{deployment.url}/image/{seeded['tissue_pyramid']}")
    assert second.name == "Tissue pyramid"
    assert np.asarray(first.data[:, :, 0, :8, :8]).shape == (3, 1, 8, 8)
    assert session.tokens.fetches == 2


@pytest.mark.parametrize("deployment", ["G1"], indirect=True)
def test_generation_1_deployment(
    deployment: ArkitektStandIn,
    mikro: MikroStandIn,
    seeded: dict[str, str],
    approving: list[ApprovalPrompt],
) -> None:
    image = open_image(f"mikro+{deployment.url}/representation/{seeded['cells_gen1']}")
    assert image.shape == (3, 1, 16, 256, 256)
    with connect(f"mikro+{deployment.url}") as server:
        names = {e.name for e in server.browse()}
        assert "Cells 3D" in names
        assert all("?" not in e.uri for e in server.browse())


def test_a_static_token_and_endpoint_take_precedence(
    deployment: ArkitektStandIn, approving: list[ApprovalPrompt]
) -> None:
    deployment.reset_requests()
    with connect(f"mikro+{deployment.url}", token="static", s3="http://s3.example.org") as s:
        assert s.transport.base_url == deployment.url
    assert deployment.requests == [] and approving == []


def test_a_host_that_is_no_deployment_keeps_the_static_route(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    assert deployments.session_for(mikro.base_url) is None  # it answers 404 for fakts
    uri = mikro.representation_uri(seeded["cells_gen1"])
    assert open_image(uri).shape == (3, 1, 16, 256, 256)  # generation 1 reads anonymously


def test_a_short_wait_leaves_the_approval_running(
    deployment: ArkitektStandIn, seeded: dict[str, str]
) -> None:
    """As in napari: the caller blocks briefly, is told the code and URL, approval goes on."""
    seen: list[ApprovalPrompt] = []
    before, deployments.policy = deployments.policy, ApprovalPolicy(prompt=seen.append, wait=0.3)
    try:
        uri = f"mikro+{deployment.url}/image/{seeded['cells_gen2']}"
        with pytest.raises(LoginRequiredError) as waiting:
            open_image(uri)
        (prompt,) = seen
        assert prompt.code in str(waiting.value) and prompt.url in str(waiting.value)
        assert "napari-lablink login HOST" in str(waiting.value)
        deployment.approve(prompt.code)
        for _ in range(100):  # the background login finishes on its next poll
            try:
                image = open_image(uri)
                break
            except LoginRequiredError as still:
                assert prompt.code in str(still)  # the same approval, not a new one
        assert image.shape == (3, 1, 16, 256, 256) and len(seen) == 1
    finally:
        deployments.policy = before


def test_without_a_way_to_ask_the_user_login_comes_first(
    deployment: ArkitektStandIn, seeded: dict[str, str]
) -> None:
    before, deployments.policy = deployments.policy, ApprovalPolicy(prompt=None)
    try:
        with pytest.raises(LoginRequiredError, match="napari-lablink login HOST"):
            open_image(f"mikro+{deployment.url}/image/{seeded['cells_gen2']}")
        assert deployment.pending_codes() == []  # nothing was registered
    finally:
        deployments.policy = before


def test_no_secret_reaches_logs_messages_or_metadata(
    deployment: ArkitektStandIn,
    seeded: dict[str, str],
    approving: list[ApprovalPrompt],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = f"mikro+{deployment.url}/image/{seeded['cells_gen2']}"
    image = open_image(uri)
    session = deployments.session_for(deployment.url)
    assert session is not None
    access = session.access_token()
    (client,) = deployment.clients()
    texts = [repr(image), str(image.server_metadata), repr(shared_connection(uri))]
    texts.append(repr(session) + repr(session.configuration) + repr(deployments))
    try:
        open_image(f"mikro+{deployment.url}/image/999999")
    except Exception as error:
        texts.append(str(error))
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    for secret in (access, client.client_secret, client.client_token):
        assert all(secret not in text for text in texts)


def test_a_worker_reopens_a_deployments_connection_with_its_own_access_tokens(
    deployment: ArkitektStandIn,
    mikro: MikroStandIn,
    seeded: dict[str, str],
    approving: list[ApprovalPrompt],
) -> None:
    uri = f"mikro+{deployment.url}/image/{seeded['cells_gen2']}"
    open_image(uri)
    server = shared_connection(uri)
    assert isinstance(server, MikroServer)
    # What a dask.distributed worker gets: no login, the granted GraphQL and the grant's client
    # credentials, with which it fetches its own access tokens.
    worker = pickle.loads(pickle.dumps(server.session))
    assert worker is not server.session
    assert worker.transport.base_url == server.transport.base_url
    assert server._granted_s3 is not None
    image = Images(worker).open(seeded["cells_gen2"], server._granted_s3, uri)
    expected = mikro.read_image(seeded["cells_gen2"])
    assert np.array_equal(np.asarray(image.levels[0][:, :, 3]), expected[:, :, 3])
