"""Access tokens: renewed before expiry and after a refusal, shared between threads, re-registered
after a revoked client, and client credentials never sent to another host."""

from __future__ import annotations

import threading

import httpx
import pytest

from napari_lablink.client.arkitekt import (
    LABLINK_APP,
    ApprovalPrompt,
    ArkitektSession,
    ClientRevokedError,
    ForeignHostError,
    LoginRequiredError,
    MemoryGrantStore,
    TokenProvider,
    login,
)
from napari_lablink.client.errors import ProtocolError
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn

from ..scripted_server import Reply, ScriptedServer
from .conftest import Clock, approver

FAST = {"poll_interval": 0.02}
IMAGES = {"query": "{ images { id } }"}


def session_for(
    deployment: ArkitektStandIn, clock: Clock, store: MemoryGrantStore | None = None
) -> tuple[ArkitektSession, list[ApprovalPrompt]]:
    prompt, seen = approver(deployment)
    session = login(deployment.url, prompt=prompt, store=store, environ={}, clock=clock, **FAST)
    return session, seen


def test_renewed_shortly_before_expiry(deployment: ArkitektStandIn, clock: Clock) -> None:
    session, _ = session_for(deployment, clock)
    with session:
        first = session.access_token()
        assert session.access_token() == first  # reused while fresh
        clock.now += 600 - 31
        assert session.access_token() == first
        clock.now += 2  # inside the last 30 s
        second = session.access_token()
        assert second != first
        assert session.tokens.fetches == 2


def test_a_refused_token_is_replaced_once(
    deployment: ArkitektStandIn, mikro: MikroStandIn, clock: Clock
) -> None:
    session, _ = session_for(deployment, Clock())
    with session:
        stale = session.access_token()
        auth = session.auth_for(mikro.gen2_graphql_url)
        # The servers' clock runs ahead: mikro finds the token expired; ours does not know yet.
        clock.now += 601
        with httpx.Client(auth=auth, timeout=10) as http:
            answer = http.post(mikro.gen2_graphql_url, json=IMAGES)
        assert answer.status_code == 200 and answer.json()["data"] == {"images": []}
        assert session.access_token() != stale
        assert session.tokens.fetches == 2


def test_concurrent_callers_share_one_fetch(deployment: ArkitektStandIn, clock: Clock) -> None:
    session, _ = session_for(deployment, clock)
    with session:
        tokens: list[str] = []
        barrier = threading.Barrier(8)

        def use() -> None:
            barrier.wait()
            tokens.append(session.access_token())

        threads = [threading.Thread(target=use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(tokens)) == 1 and len(tokens) == 8
        assert session.tokens.fetches == 1


def test_revoked_client_registers_again(
    deployment: ArkitektStandIn, mikro: MikroStandIn, clock: Clock
) -> None:
    store = MemoryGrantStore()
    session, seen = session_for(deployment, clock, store)
    with session:
        old_id = session.configuration.client_id
        session.access_token()
        assert deployment.revoke_client() == 1
        session.tokens.invalidate()
        token = session.access_token()  # invalid_client -> claim fails -> approval again
        assert len(seen) == 2
        assert session.configuration.client_id != old_id
        stored = store.load(deployment.base_url, LABLINK_APP.identifier)
        assert stored is not None
        assert stored.configuration["auth"]["client_id"] == session.configuration.client_id
        answer = httpx.post(
            mikro.gen2_graphql_url,
            json=IMAGES,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200


def test_revoked_client_without_a_way_to_ask(deployment: ArkitektStandIn, clock: Clock) -> None:
    store = MemoryGrantStore()
    session_for(deployment, clock, store)[0].close()
    deployment.revoke_client()
    with login(deployment.url, store=store, environ={}) as session:  # the stored config
        session.tokens.invalidate()
        with pytest.raises(LoginRequiredError):
            session.access_token()
    assert store.load(deployment.base_url, LABLINK_APP.identifier) is None


def test_revoked_known_client_token(deployment: ArkitektStandIn, clock: Clock) -> None:
    session, _ = session_for(deployment, clock)
    session.close()
    token = deployment.clients()[0].client_token
    deployment.revoke_client()
    with pytest.raises(ClientRevokedError, match="no longer knows"):
        login(deployment.url, client_token=token, environ={})


def test_rotated_client_token_is_refused_and_replaced(
    deployment: ArkitektStandIn, clock: Clock
) -> None:
    store = MemoryGrantStore()
    first, _ = session_for(deployment, clock, store)
    first.close()
    stored = store.load(deployment.base_url, LABLINK_APP.identifier)
    assert stored is not None
    # The same app approved again elsewhere rotates the client token; id and secret stay.
    session_for(deployment, clock, MemoryGrantStore())[0].close()
    with pytest.raises(ClientRevokedError):
        login(deployment.url, client_token=stored.client_token, environ={})


def test_no_client_credentials_to_another_host(deployment: ArkitektStandIn) -> None:
    elsewhere = ScriptedServer()
    try:
        deployment.token_url_override = elsewhere.url.replace("127.0.0.1", "localhost") + "/token/"
        prompt, _ = approver(deployment)
        with pytest.raises(ForeignHostError) as caught:
            login(deployment.url, prompt=prompt, environ={}, **FAST)
        assert "http://localhost for the token endpoint" in str(caught.value)
        assert elsewhere.seen == []
    finally:
        elsewhere.stop()


def test_no_client_credentials_across_a_redirect(deployment: ArkitektStandIn) -> None:
    elsewhere = ScriptedServer()
    try:
        elsewhere.default = Reply(200, {"access_token": "x", "expires_in": 60})
        deployment.token_redirect = elsewhere.url + "/token/"
        prompt, _ = approver(deployment)
        with login(deployment.url, prompt=prompt, environ={}, **FAST) as session:
            with pytest.raises(ProtocolError, match="redirected"):
                session.access_token()
        assert elsewhere.seen == []
    finally:
        elsewhere.stop()


def test_bearer_goes_to_its_origin_only(deployment: ArkitektStandIn, clock: Clock) -> None:
    elsewhere = ScriptedServer()
    try:
        session, _ = session_for(deployment, clock)
        with session, httpx.Client(auth=session.auth_for(deployment.url), timeout=10) as http:
            http.get(elsewhere.url + "/anything")
            http.get(deployment.url + "/lok/ht")
        assert "authorization" not in elsewhere.seen[0].headers
        assert deployment.requests[-1].authorized
    finally:
        elsewhere.stop()


def test_token_provider_repr_names_only_the_endpoint(
    deployment: ArkitektStandIn, clock: Clock
) -> None:
    session, _ = session_for(deployment, clock)
    with session:
        assert repr(session.tokens) == f"TokenProvider({deployment.url})"
        assert isinstance(session.tokens, TokenProvider)
