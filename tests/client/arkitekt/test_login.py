"""Logging in: approval in the browser, denial, expiry, cancel, stored grants, headless tokens,
and the configuration each shape grants."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from napari_lablink.client.arkitekt import (
    LABLINK_APP,
    ApprovalCancelledError,
    ApprovalDeniedError,
    ApprovalExpiredError,
    ApprovalPrompt,
    FileGrantStore,
    LoginRequiredError,
    MemoryGrantStore,
    RegistrationError,
    ServiceNotGrantedError,
    discover,
    login,
    logout,
    parse_configuration,
)
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import Alias, ArkitektStandIn, Instance

from .conftest import Clock, approver

FAST = {"poll_interval": 0.02}


def graphql(url: str, token: str, query: str) -> httpx.Response:
    return httpx.post(
        url, json={"query": query}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@pytest.mark.parametrize("deployment", ["G1", "G2a", "G2b"], indirect=True)
def test_approval_grants_endpoints_and_working_tokens(
    deployment: ArkitektStandIn, mikro: MikroStandIn, tmp_path: Path
) -> None:
    prompt, seen = approver(deployment)
    store = FileGrantStore(tmp_path)
    with login(deployment.url, prompt=prompt, store=store, environ={}, **FAST) as session:
        (shown,) = seen
        assert len(shown.code) == (6 if deployment.shape == "G1" else 8)
        assert shown.url == deployment.approval_url(shown.code)
        config = session.configuration
        assert config.shape == deployment.shape
        assert config.s3_endpoint == mikro.s3_endpoint
        gen1 = deployment.shape == "G1"
        expected = mikro.gen1_graphql_url if gen1 else mikro.gen2_graphql_url
        assert session.mikro_graphql_url == expected
        assert config.token_url == deployment.token_url
        query = "{ representations { id } }" if gen1 else "{ images { id } }"
        answer = graphql(expected, session.access_token(), query)
        assert answer.status_code == 200 and "errors" not in answer.json()
    # The next run uses the stored grant: no new registration.
    deployment.reset_requests()
    with login(deployment.url, store=store, environ={}) as again:
        assert again.configuration.client_id == config.client_id
        assert graphql(expected, again.access_token(), query).status_code == 200
    assert not [r for r in deployment.requests if r.path.endswith(("/start/", "/claim/"))]
    assert logout(deployment.url, store=store) is True
    with pytest.raises(LoginRequiredError, match="not registered"):
        login(deployment.url, store=store, environ={})


def test_denied(deployment: ArkitektStandIn) -> None:
    prompt, _ = approver(deployment, "deny")
    with pytest.raises(ApprovalDeniedError) as caught:
        login(deployment.url, prompt=prompt, environ={}, **FAST)
    assert "denied" in str(caught.value) and deployment.url in str(caught.value)


def test_expired(deployment: ArkitektStandIn, clock: Clock) -> None:
    def walk_away(prompt: ApprovalPrompt) -> None:
        clock.now += 301

    with pytest.raises(ApprovalExpiredError, match="Nobody approved the app in time"):
        login(deployment.url, prompt=walk_away, environ={}, **FAST)


def test_approval_that_fails_server_side_ends_as_expired(mikro: MikroStandIn, clock: Clock) -> None:
    """lok cannot approve an app whose required service it lacks: the code stays pending."""
    with ArkitektStandIn(mikro_url=mikro.base_url + "/mikro", clock=clock) as lok:
        prompt, _ = approver(lok)
        with pytest.raises(ApprovalExpiredError):
            login(lok.url, prompt=prompt, environ={}, approval_seconds=1, **FAST)


def test_cancel_while_waiting(deployment: ArkitektStandIn) -> None:
    cancel = threading.Event()
    with pytest.raises(ApprovalCancelledError, match="cancelled"):
        login(deployment.url, prompt=lambda p: cancel.set(), cancel=cancel, environ={}, **FAST)
    assert len(deployment.pending_codes()) == 1


def test_redeem_token_and_known_client_token(deployment: ArkitektStandIn) -> None:
    store = MemoryGrantStore()
    redeem_token = deployment.add_redeem_token()
    with login(deployment.url, redeem_token=redeem_token, store=store, environ={}) as session:
        assert session.access_token()
    stored = store.load(deployment.base_url, LABLINK_APP.identifier)
    assert stored is not None
    # A known client token (arkitekt's FAKTS_TOKEN) goes straight to claim and is not stored.
    other = MemoryGrantStore()
    environ = {"LABLINK_FAKTS_TOKEN": stored.client_token}
    with login(deployment.url, store=other, environ=environ) as session:
        assert session.configuration.client_id == deployment.clients()[0].client_id
    assert other.load(deployment.base_url, LABLINK_APP.identifier) is None
    with pytest.raises(RegistrationError, match="Invalid redeem token"):
        login(deployment.url, redeem_token="not-a-token", environ={})


def test_declined_service_is_not_granted(deployment: ArkitektStandIn) -> None:
    prompt, _ = approver(deployment, declined=["s3"])
    with pytest.raises(ServiceNotGrantedError) as caught:
        login(deployment.url, prompt=prompt, environ={}, **FAST)
    assert "s3 (denied)" in str(caught.value)


def test_first_healthy_alias_wins_and_no_healthy_alias_is_an_error(
    mikro: MikroStandIn, clock: Clock
) -> None:
    dead = Alias("127.0.0.1", 9, "mikro", id="dead")
    alive = Alias("127.0.0.1", mikro.port, "mikro", id="alive")
    s3 = Instance("live.arkitekt.s3", [Alias("127.0.0.1", 9, None, "minio/health/live")])
    instances = {"live.arkitekt.mikro": Instance("live.arkitekt.mikro", [dead, alive])}
    with ArkitektStandIn(instances={**instances, "live.arkitekt.s3": s3}, clock=clock) as lok:
        prompt, _ = approver(lok)
        with pytest.raises(ServiceNotGrantedError, match=r"s3 \(unreachable\)"):
            login(lok.url, prompt=prompt, environ={}, **FAST)
        raw = lok.lok.configuration(lok.clients()[0], {**_urls(lok)})
        endpoint = discover(lok.url)
        config = parse_configuration(raw, endpoint, LABLINK_APP, health=_only(mikro.port))
        assert config.mikro_graphql_url == mikro.gen2_graphql_url
        assert config.s3_endpoint == "http://127.0.0.1:9"


def _urls(lok: ArkitektStandIn) -> dict[str, str]:
    return {"deployment_name": "x", "lok": lok.url + "/lok", "host": "127.0.0.1", "port": ""}


def _only(port: int) -> object:
    def health(url: str) -> bool:
        return f":{port}/" in url or "minio" in url

    return health


def test_group_configuration_without_s3_is_not_granted() -> None:
    endpoint = discover_like("http://127.0.0.1:8000/f/")
    raw = {
        "self": {"deployment_name": "lab"},
        "lok": {"base_url": "http://127.0.0.1:8000/o", "client_id": "i", "client_secret": "s"},
        "mikro": {"endpoint_url": "http://127.0.0.1:8080/graphql"},
    }
    with pytest.raises(ServiceNotGrantedError, match=r"s3 \(not granted\)"):
        parse_configuration(raw, endpoint, LABLINK_APP, health=None)
    raw["datalayer"] = {"endpoint_url": "http://127.0.0.1:9000"}
    config = parse_configuration(raw, endpoint, LABLINK_APP, health=None)
    assert (config.shape, config.token_url) == ("G2a", "http://127.0.0.1:8000/o/token/")


def discover_like(base_url: str):  # type: ignore[no-untyped-def]
    from napari_lablink.client.arkitekt import FaktsEndpoint

    return FaktsEndpoint(name="lab", base_url=base_url, version="0.0.1")
