"""Registering the app with a deployment: the device-code approval flow, redeem tokens, claim.

Every call answers HTTP 200 with a ``status``; errors carry ``error`` (start, challenge) or
``message`` (claim, redeem). The client token that approval yields stands for the whole grant,
so it is only ever sent to the deployment's own registration endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from napari_lablink.client.arkitekt._http import post_json
from napari_lablink.client.arkitekt.discovery import FaktsEndpoint
from napari_lablink.client.arkitekt.errors import (
    ApprovalCancelledError,
    ApprovalDeniedError,
    ApprovalExpiredError,
    ClientRevokedError,
    RegistrationError,
)
from napari_lablink.client.arkitekt.manifest import AppManifest
from napari_lablink.client.errors import ProtocolError, scrub

__all__ = ["ApprovalPrompt", "claim", "redeem", "request_approval", "start_approval", "wait"]

log = logging.getLogger(__name__)

NO_CLIENT = "No Client found for this token"


@dataclass(frozen=True)
class ApprovalPrompt:
    """What the user needs to approve the app: the code, where to enter it, until when."""

    deployment: str
    code: str
    url: str
    expires_at: float  # time.time() seconds


def _failure(answer: dict[str, Any]) -> str:
    return str(answer.get("error") or answer.get("message") or "no reason given")


def start_approval(
    client: httpx.Client,
    endpoint: FaktsEndpoint,
    manifest: AppManifest,
    *,
    expires_in: int = 300,
    clock: Callable[[], float] = time.time,
) -> ApprovalPrompt:
    body = {
        "manifest": manifest.as_json(modern=endpoint.modern),
        "expiration_time_seconds": expires_in,
        "redirect_uris": [],
        "requested_client_kind": "development",
        "requested_client_role": "interface",
        "request_public": False,
    }
    started = clock()
    answer = post_json(client, endpoint.base_url + "start/", body, obj="app registration")
    code = answer.get("code")
    if answer.get("status") != "granted" or not isinstance(code, str) or not code:
        raise RegistrationError(
            f"The deployment refused to register the app: {_failure(answer)}",
            server=endpoint.label,
            obj="app registration",
        )
    return ApprovalPrompt(endpoint.label, code, endpoint.approval_url(code), started + expires_in)


def wait(
    client: httpx.Client,
    endpoint: FaktsEndpoint,
    prompt: ApprovalPrompt,
    *,
    interval: float = 1.0,
    cancel: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Poll until the user decides; the client token on approval."""
    cancel = cancel or threading.Event()
    obj = "app approval"
    while True:
        if cancel.is_set():
            raise ApprovalCancelledError("The login was cancelled", server=endpoint.label, obj=obj)
        answer = post_json(client, endpoint.base_url + "challenge/", {"code": prompt.code}, obj=obj)
        status = answer.get("status")
        if status == "granted":
            token = answer.get("token")
            if not isinstance(token, str) or not token:
                raise ProtocolError("Approval granted without a token", server=endpoint.label)
            return token
        if status == "denied":
            raise ApprovalDeniedError(
                "The app was denied access in the browser", server=endpoint.label, obj=obj
            )
        if status == "expired" or (status == "error" and "does not exist" in _failure(answer)):
            raise ApprovalExpiredError(
                "Nobody approved the app in time", server=endpoint.label, obj=obj
            )
        if status not in ("pending", "waiting"):
            raise RegistrationError(
                f"The deployment failed while waiting for approval: {_failure(answer)}",
                server=endpoint.label,
                obj=obj,
            )
        remaining = prompt.expires_at - clock()
        if remaining <= 0:
            raise ApprovalExpiredError(
                "Nobody approved the app in time", server=endpoint.label, obj=obj
            )
        cancel.wait(min(interval, remaining))


def request_approval(
    client: httpx.Client,
    endpoint: FaktsEndpoint,
    manifest: AppManifest,
    on_prompt: Callable[[ApprovalPrompt], None],
    *,
    expires_in: int = 300,
    interval: float = 1.0,
    cancel: threading.Event | None = None,
) -> str:
    """Start, show the code through ``on_prompt`` and wait: the client token."""
    prompt = start_approval(client, endpoint, manifest, expires_in=expires_in)
    log.info("waiting for napari-lablink to be approved at %s", endpoint.label)
    on_prompt(prompt)
    return wait(client, endpoint, prompt, interval=interval, cancel=cancel)


def redeem(
    client: httpx.Client, endpoint: FaktsEndpoint, manifest: AppManifest, redeem_token: str
) -> str:
    """Exchange an administrator-issued redeem token for a client token (headless)."""
    body = {"token": redeem_token, "manifest": manifest.as_json(modern=endpoint.modern)}
    answer = post_json(
        client, endpoint.base_url + "redeem/", body, obj="redeem token", secrets=[redeem_token]
    )
    token = answer.get("token")
    if answer.get("status") != "granted" or not isinstance(token, str) or not token:
        raise RegistrationError(
            f"The deployment refused the redeem token: {scrub(_failure(answer), [redeem_token])}",
            server=endpoint.label,
            obj="redeem token",
            hint="Ask the deployment's administrator for a new redeem token",
        )
    return token


def claim(client: httpx.Client, endpoint: FaktsEndpoint, client_token: str) -> dict[str, Any]:
    """The configuration granted to the client token."""
    body = {"token": client_token, "secure": endpoint.secure}
    obj = "granted configuration"
    answer = post_json(client, endpoint.base_url + "claim/", body, obj=obj, secrets=[client_token])
    config = answer.get("config")
    if answer.get("status") == "granted" and isinstance(config, dict):
        return config
    if NO_CLIENT in _failure(answer):
        raise ClientRevokedError(
            "The deployment no longer knows this registration of napari-lablink",
            server=endpoint.label,
            obj=obj,
        )
    raise RegistrationError(
        f"The deployment refused the configuration: {scrub(_failure(answer), [client_token])}",
        server=endpoint.label,
        obj=obj,
    )
