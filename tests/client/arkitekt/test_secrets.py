"""Secrets (client token, client secret, access tokens, redeem tokens) never reach logs,
messages or reprs, and the file store is readable by its owner only."""

from __future__ import annotations

import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from napari_lablink.client.arkitekt import (
    LABLINK_APP,
    FileGrantStore,
    TokenError,
    TokenProvider,
    login,
)
from napari_lablink.client.errors import LablinkError
from napari_lablink.testing.arkitekt import ArkitektStandIn

from .conftest import approver


def test_no_secret_in_logs_messages_or_reprs(
    deployment: ArkitektStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = FileGrantStore(tmp_path)
    prompt, _ = approver(deployment)
    errors: list[str] = []
    with login(deployment.url, prompt=prompt, store=store, environ={}, poll_interval=0.02) as s:
        access = s.access_token()
        config = s.configuration
        stored = store.load(deployment.base_url, LABLINK_APP.identifier)
        assert stored is not None
        (client,) = deployment.clients()
        client_token, client_secret = client.client_token, client.client_secret
        # A refused secret, and a revoked client with no way to ask the user, give messages.
        wrong = TokenProvider(replace(config, client_secret=client_secret[::-1]))
        with pytest.raises(TokenError) as refused:
            wrong.token()
        errors.append(str(refused.value))
        wrong.close()
        deployment.revoke_client()
        with login(deployment.url, store=store, environ={}) as headless:
            headless.tokens.invalidate()
            with pytest.raises(LablinkError) as caught:
                headless.access_token()
            errors.append(str(caught.value))
        texts = [repr(s), repr(config), str(config), repr(stored), repr(s.tokens), *errors]
    redeem = deployment.add_redeem_token()
    with pytest.raises(LablinkError) as caught:
        login(deployment.url, redeem_token=redeem + "x", environ={})
    texts.append(str(caught.value))
    secrets = {
        "client token": client_token,
        "client secret": client_secret,
        "access token": access,
        "redeem token": redeem,
    }
    haystack = "\n".join([caplog.text, *texts, *(r.getMessage() for r in caplog.records)])
    for name, secret in secrets.items():
        assert secret not in haystack, name
    assert "refused the app's client credentials (invalid_client)" in errors[0]
    assert "not registered with this deployment" in errors[1]
    assert "client_secret=" not in repr(config)
    assert config.client_id in repr(config)  # the id is not secret


def test_the_grant_file_is_private(deployment: ArkitektStandIn, tmp_path: Path) -> None:
    store = FileGrantStore(tmp_path / "grants")
    prompt, _ = approver(deployment)
    login(deployment.url, prompt=prompt, store=store, environ={}, poll_interval=0.02).close()
    (path,) = (tmp_path / "grants").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "grants").stat().st_mode) == 0o700
    assert path == store.path(deployment.base_url, LABLINK_APP.identifier)
    # A corrupt file is a miss, not a crash.
    path.write_text("{not json")
    assert store.load(deployment.base_url, LABLINK_APP.identifier) is None
    assert store.delete(deployment.base_url, LABLINK_APP.identifier) is True
    assert store.delete(deployment.base_url, LABLINK_APP.identifier) is False
