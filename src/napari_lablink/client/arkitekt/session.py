"""Logging in to a deployment: from an address to a granted configuration and fresh tokens.

Where the client token comes from, in order: the ``client_token`` argument, ``LABLINK_FAKTS_TOKEN``,
the grant store, a redeem token, and finally the browser approval (only if ``prompt`` is given).
A stored registration that the deployment no longer knows is dropped and, where the user can be
asked, replaced by a new one; the same happens when the token endpoint stops accepting the app's
credentials mid-session.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from napari_lablink.client.arkitekt._http import new_client
from napari_lablink.client.arkitekt.discovery import FaktsEndpoint, discover
from napari_lablink.client.arkitekt.errors import (
    ClientRevokedError,
    LoginRequiredError,
    ServiceNotGrantedError,
)
from napari_lablink.client.arkitekt.granted import (
    GrantedConfiguration,
    HealthCheck,
    http_health_check,
    parse_configuration,
)
from napari_lablink.client.arkitekt.manifest import LABLINK_APP, AppManifest
from napari_lablink.client.arkitekt.registration import (
    ApprovalPrompt,
    claim,
    redeem,
    request_approval,
)
from napari_lablink.client.arkitekt.storage import GrantStore, MemoryGrantStore, StoredGrant
from napari_lablink.client.arkitekt.tokens import BearerAuth, TokenProvider
from napari_lablink.client.arkitekt.workers import WorkerTokens

__all__ = ["FAKTS_TOKEN_VARIABLE", "ArkitektSession", "login", "logout"]

log = logging.getLogger(__name__)

FAKTS_TOKEN_VARIABLE = "LABLINK_FAKTS_TOKEN"


class ArkitektSession:
    """A logged-in deployment: its granted endpoints and a source of access tokens."""

    def __init__(
        self,
        endpoint: FaktsEndpoint,
        tokens: TokenProvider,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.tokens = tokens
        self._on_close = on_close

    def __repr__(self) -> str:
        return f"ArkitektSession({self.endpoint.label}, {self.configuration.deployment_name!r})"

    @property
    def configuration(self) -> GrantedConfiguration:
        return self.tokens.configuration

    @property
    def mikro_graphql_url(self) -> str | None:
        return self.configuration.mikro_graphql_url

    @property
    def s3_endpoint(self) -> str | None:
        return self.configuration.s3_endpoint

    @property
    def closed(self) -> bool:
        """Whether it was closed (logged out): connections using it must log in again."""
        return self.tokens.closed

    def access_token(self) -> str:
        return self.tokens.token()

    def auth_for(self, url: str) -> BearerAuth:
        """httpx auth sending the access token to ``url``'s origin only."""
        return BearerAuth(self.tokens, url)

    def worker_tokens(self) -> WorkerTokens:
        """What a ``dask.distributed`` worker gets its own access tokens with."""
        return WorkerTokens.of(self.configuration)

    def close(self) -> None:
        self.tokens.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> ArkitektSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Login:
    """One login's state: which token, where it came from, how to re-register."""

    def __init__(
        self,
        endpoint: FaktsEndpoint,
        app: AppManifest,
        store: GrantStore,
        prompt: Callable[[ApprovalPrompt], None] | None,
        cancel: threading.Event | None,
        redeem_token: str | None,
        health: HealthCheck | None,
        poll_interval: float,
        approval_seconds: int,
        http: httpx.Client,
    ) -> None:
        self.endpoint, self.app, self.store = endpoint, app, store
        self.prompt, self.cancel, self.redeem_token = prompt, cancel, redeem_token
        self.health, self.poll_interval, self.approval_seconds = (
            health,
            poll_interval,
            approval_seconds,
        )
        self.http = http
        self.lock = threading.Lock()
        self.client_token: str | None = None
        self.stored = False  # whether client_token is ours to keep (and to drop)

    def parse(self, raw: Mapping[str, Any]) -> GrantedConfiguration:
        return parse_configuration(raw, self.endpoint, self.app, health=self.health)

    def register(self) -> GrantedConfiguration:
        """A new client token (redeem or approval), claimed, parsed and stored."""
        if self.redeem_token is not None:
            token = redeem(self.http, self.endpoint, self.app, self.redeem_token)
        elif self.prompt is not None:
            token = request_approval(
                self.http,
                self.endpoint,
                self.app,
                self.prompt,
                expires_in=self.approval_seconds,
                interval=self.poll_interval,
                cancel=self.cancel,
            )
        else:
            raise LoginRequiredError(
                "napari-lablink is not registered with this deployment", server=self.endpoint.label
            )
        return self.adopt(token, keep=True)

    def adopt(self, token: str, *, keep: bool) -> GrantedConfiguration:
        raw = claim(self.http, self.endpoint, token)
        configuration = self.parse(raw)
        self.client_token, self.stored = token, keep
        if keep:
            self.store.save(
                StoredGrant(
                    self.endpoint.base_url,
                    self.app.identifier,
                    token,
                    raw,
                    fakts=dataclasses.asdict(self.endpoint),
                )
            )
        return configuration

    def forget(self) -> None:
        if self.stored:
            self.store.delete(self.endpoint.base_url, self.app.identifier)
        self.client_token, self.stored = None, False

    def renew(self) -> GrantedConfiguration:
        """Called when the token endpoint refuses the client: claim again, else re-register."""
        with self.lock:
            if self.client_token is not None:
                try:
                    return self.adopt(self.client_token, keep=self.stored)
                except ClientRevokedError:
                    if not self.stored:
                        raise
                    log.info("the stored registration was revoked; registering again")
                    self.forget()
            return self.register()

    def first(self, client_token: str | None) -> GrantedConfiguration:
        if client_token:
            return self.adopt(client_token, keep=False)
        stored = self.store.load(self.endpoint.base_url, self.app.identifier)
        if stored is not None:
            self.client_token, self.stored = stored.client_token, True
            if stored.configuration:  # a store that keeps only the token claims it anew
                try:
                    return self.parse(stored.configuration)
                except ServiceNotGrantedError:
                    log.info("the stored configuration no longer works; claiming it again")
            try:
                return self.adopt(stored.client_token, keep=True)
            except ClientRevokedError:
                log.info("the stored registration was revoked; registering again")
                self.forget()
        return self.register()


def login(
    target: str | FaktsEndpoint,
    *,
    app: AppManifest = LABLINK_APP,
    store: GrantStore | None = None,
    prompt: Callable[[ApprovalPrompt], None] | None = None,
    cancel: threading.Event | None = None,
    client_token: str | None = None,
    redeem_token: str | None = None,
    environ: Mapping[str, str] = os.environ,
    health: HealthCheck | None = http_health_check,
    poll_interval: float = 1.0,
    approval_seconds: int = 300,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> ArkitektSession:
    """Log in to the deployment at ``target`` (an address, or an already discovered endpoint).

    ``prompt`` is called with the code and approval URL when the user must approve the app in a
    browser (from the calling thread, and again from whichever thread needs a token should the
    registration be revoked mid-session); without it, only stored grants and headless tokens work.
    Setting ``cancel`` stops the wait for approval. ``clock`` measures token lifetimes.
    """
    endpoint = target if isinstance(target, FaktsEndpoint) else discover(target)
    http = new_client(timeout)
    state = _Login(
        endpoint,
        app,
        store if store is not None else MemoryGrantStore(),
        prompt,
        cancel,
        redeem_token,
        health,
        poll_interval,
        approval_seconds,
        http,
    )
    try:
        configuration = state.first(client_token or environ.get(FAKTS_TOKEN_VARIABLE) or None)
    except BaseException:
        http.close()
        raise
    return ArkitektSession(
        endpoint, TokenProvider(configuration, renew_grant=state.renew, clock=clock)
    )


def logout(
    target: str | FaktsEndpoint, *, store: GrantStore, app: AppManifest = LABLINK_APP
) -> bool:
    """Forget the stored grant for ``target``; whether there was one."""
    endpoint = target if isinstance(target, FaktsEndpoint) else discover(target)
    return store.delete(endpoint.base_url, app.identifier)
