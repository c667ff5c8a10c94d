"""lok's registration and token logic, without HTTP: device codes, clients, redeem tokens.

Answers are the JSON bodies the real server sends (status, messages, spelling mistakes
included). The clock is injectable so tests can let codes and tokens expire.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_lablink.testing.arkitekt.deployment import (
    Instance,
    Shape,
    instances_config,
    service_group_config,
)
from napari_lablink.testing.arkitekt.tokens import SigningKey, new_jti

__all__ = ["Client", "DeviceCode", "Lok"]

PENDING_MESSAGE = "User  has not verfied the challenge"
DENIED_MESSAGE = "The user has denied the request"
EXPIRED_MESSAGE = "The user has not given an answer in enough time"
NO_CHALLENGE = "Challenge does not exist"
NO_CLIENT = "No Client found for this token"
#: Scopes that exist in the approving organization by default (G2b).
KNOWN_SCOPES = frozenset({"openid", "profile", "email", "roles", "groups"})
#: The token endpoint keeps only these; a request without ``scope`` gets all three in the JWT.
GRANTABLE_SCOPES = ("openid", "email", "profile")


class Malformed(ValueError):
    """A request body lok refuses with ``Malformed request: ...``."""


@dataclass
class DeviceCode:
    code: str
    manifest: dict[str, Any]
    requirements: list[dict[str, Any]]
    kind: str
    role: str
    expires_at: float
    status: str = "pending"
    client_token: str | None = None


@dataclass
class Client:
    client_id: str
    client_secret: str = field(repr=False)
    client_token: str = field(repr=False)
    identifier: str
    version: str
    scopes: list[str]
    requirements: list[dict[str, Any]]
    declined: set[str]
    role: str


@dataclass
class _RedeemToken:
    expires_at: float
    manifest: dict[str, Any] | None = None
    client_token: str | None = None


def _requirements(shape: Shape, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = manifest.get("requirements")
    if raw is None:
        return []
    if shape == "G2b":
        if not isinstance(raw, list):
            raise Malformed("requirements must be a list")
        items = raw
    elif shape == "G2a":
        if not isinstance(raw, dict):
            raise Malformed("requirements must be a mapping")
        items = [{"key": key, **value} for key, value in raw.items()]
    else:  # G1 lok knew no requirements; tolerate either form
        items = raw if isinstance(raw, list) else [{"key": k, **v} for k, v in raw.items()]
    result = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise Malformed("each requirement needs a key")
        if not isinstance(item.get("service"), str):
            raise Malformed(f"requirement {item['key']} needs a service")
        result.append({"optional": False, "description": None, **item})
    return result


def _check_manifest(shape: Shape, manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise Malformed("manifest is required")
    identifier = manifest.get("identifier")
    if not isinstance(identifier, str) or not identifier or "/" in identifier:
        raise Malformed("manifest.identifier must be a non-empty string without '/'")
    if not isinstance(manifest.get("version"), str):
        raise Malformed("manifest.version must be a string")
    scopes = manifest.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Malformed("manifest.scopes must be a list of strings")
    if shape == "G1" and not scopes:
        raise Malformed("manifest.scopes must not be empty")
    if manifest.get("logo"):
        raise Malformed("Error downloading logo")
    return manifest


class Lok:
    """Device codes, clients and tokens of one deployment."""

    def __init__(
        self,
        *,
        shape: Shape,
        instances: Mapping[str, Instance],
        signing_key: SigningKey,
        token_lifetime: float,
        clock: Callable[[], float] = time.time,
        issuer: str = "http://lok",
        user: str = "1",
        username: str = "demo",
        organization: str = "demo-lab",
    ) -> None:
        self.shape = shape
        self.instances = dict(instances)
        self.signing_key = signing_key
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.issuer = issuer
        self.user, self.username, self.organization = user, username, organization
        self.auto_approve = False
        self._lock = threading.RLock()
        self._codes: dict[str, DeviceCode] = {}
        self._clients: dict[str, Client] = {}
        self._redeem: dict[str, _RedeemToken] = {}
        self.issued_tokens = 0

    # -- registration ---------------------------------------------------------------------------

    def start(self, body: Any) -> dict[str, Any]:
        try:
            if not isinstance(body, dict):
                raise Malformed("expected a JSON object")
            manifest = _check_manifest(self.shape, body.get("manifest"))
            requirements = _requirements(self.shape, manifest)
            lifetime = body.get("expiration_time_seconds", 300)
            if not isinstance(lifetime, int | float) or lifetime <= 0:
                raise Malformed("expiration_time_seconds must be a positive number")
        except Malformed as error:
            message = str(error)
            if message == "Error downloading logo":
                return {"status": "error", "error": message}
            return {"status": "error", "error": f"Malformed request: {message}"}
        length = 3 if self.shape == "G1" else 4
        with self._lock:
            code = secrets.token_hex(length)
            while code in self._codes:
                code = secrets.token_hex(length)
            self._codes[code] = DeviceCode(
                code=code,
                manifest=manifest,
                requirements=requirements,
                kind=str(body.get("requested_client_kind", "development")),
                role=str(body.get("requested_client_role", "interface")),
                expires_at=self.clock() + float(lifetime),
            )
            if self.auto_approve:
                self.decide(code, "approve")
        return {"status": "granted", "code": code}

    def decide(
        self, code: str, action: str, declined: set[str] | frozenset[str] = frozenset()
    ) -> tuple[int, dict[str, Any]]:
        """The user's answer in lok's frontend (test route). Approval can fail server-side, as
        in the real lok, leaving the code pending until it expires."""
        with self._lock:
            device = self._codes.get(code)
            if device is None or device.status != "pending":
                return 404, {"status": "error", "error": NO_CHALLENGE}
            if action == "deny":
                device.status = "denied"
                return 200, {"status": "denied"}
            if action != "approve":
                return 400, {"status": "error", "error": f"unknown action {action!r}"}
            problem = self._approval_problem(device, declined)
            if problem:
                return 409, {"status": "error", "error": problem}
            device.client_token = self._register(device, set(declined))
            device.status = "granted"
            return 200, {"status": "granted"}

    def _approval_problem(self, device: DeviceCode, declined: set[str] | frozenset[str]) -> str:
        if device.kind != "development":
            return f"Client kind {device.kind} cannot be approved"
        if self.shape == "G2b":
            unknown = [s for s in device.manifest.get("scopes", []) if s not in KNOWN_SCOPES]
            if unknown:
                return f"Unknown scopes: {', '.join(unknown)}"
        for requirement in device.requirements:
            if requirement["optional"] or requirement["key"] in declined:
                continue
            if requirement["service"] not in self.instances:
                return f"No instance for required requirement {requirement['key']}"
        return ""

    def _register(self, device: DeviceCode, declined: set[str]) -> str:
        identifier = device.manifest["identifier"]
        version = device.manifest["version"]
        token = secrets.token_urlsafe(32)
        for client in self._clients.values():
            if (client.identifier, client.version) == (identifier, version):
                # Re-approving the same app rotates its client token; id and secret stay.
                client.client_token = token
                client.requirements = device.requirements
                client.declined = declined
                return token
        client_id = secrets.token_urlsafe(16)
        self._clients[client_id] = Client(
            client_id=client_id,
            client_secret=secrets.token_urlsafe(32),
            client_token=token,
            identifier=identifier,
            version=version,
            scopes=list(device.manifest.get("scopes", [])),
            requirements=device.requirements,
            declined=declined,
            role=device.role,
        )
        return token

    def challenge(self, body: Any) -> dict[str, Any]:
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str):
            return {"status": "error", "error": "Malformed request: code is required"}
        with self._lock:
            device = self._codes.get(code)
            if device is None:
                return {"status": "error", "error": NO_CHALLENGE}
            if self.clock() > device.expires_at:
                del self._codes[code]
                return {"status": "expired", "message": EXPIRED_MESSAGE}
            if device.status == "denied":
                del self._codes[code]
                return {"status": "denied", "message": DENIED_MESSAGE}
            if device.status == "granted":
                return {"status": "granted", "token": device.client_token}
            waiting = "waiting" if self.shape == "G1" else "pending"
            return {"status": waiting, "message": PENDING_MESSAGE}

    def add_redeem_token(self, lifetime: float = 3600.0) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._redeem[token] = _RedeemToken(expires_at=self.clock() + lifetime)
        return token

    def redeem(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            return {"status": "error", "message": "Malformed request: token is required"}
        with self._lock:
            entry = self._redeem.get(body["token"])
            if entry is None:
                return {"status": "error", "message": "Invalid redeem token"}
            if self.clock() > entry.expires_at:
                return {"status": "error", "message": "Redeem token expired"}
            try:
                manifest = _check_manifest(self.shape, body.get("manifest"))
                requirements = _requirements(self.shape, manifest)
            except Malformed as error:
                return {"status": "error", "message": f"Malformed request: {error}"}
            if entry.manifest is not None and entry.manifest != manifest:
                return {"status": "error", "message": "The manifest changed for this token"}
            if entry.client_token is None or not self._client_by_token(entry.client_token):
                device = DeviceCode("", manifest, requirements, "development", "interface", 0)
                entry.client_token = self._register(device, set())
                entry.manifest = manifest
            return {"status": "granted", "token": entry.client_token}

    # -- configuration --------------------------------------------------------------------------

    def _client_by_token(self, token: str) -> Client | None:
        for client in self._clients.values():
            if secrets.compare_digest(client.client_token, token):
                return client
        return None

    def claim(self, body: Any, urls: Mapping[str, str]) -> dict[str, Any]:
        """``urls``: ``base_url``, ``lok`` (where /o/ lives), ``host``, ``port`` of the request."""
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return {"status": "error", "message": "Malformed request: token is required"}
        with self._lock:
            client = self._client_by_token(token)
            if client is None:
                return {"status": "error", "message": NO_CLIENT}
            return {"status": "granted", "config": self.configuration(client, urls)}

    def configuration(self, client: Client, urls: Mapping[str, str]) -> dict[str, Any]:
        lok = urls["lok"]
        if self.shape == "G2b":
            instances, statuses = instances_config(
                self.instances, client.requirements, client.declined
            )
            port = urls.get("port")
            return {
                "self": {
                    "deployment_name": urls["deployment_name"],
                    "alias": {
                        "id": "self",
                        "ssl": True,
                        "host": urls["host"],
                        "port": int(port) if port else None,
                        "path": "lok",
                        "challenge": "ht",
                    },
                },
                "auth": {
                    "client_token": client.client_token,
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                    "scopes": client.scopes,
                    "token_url": urls.get("token_url", f"{lok}/o/token/"),
                    "report_url": f"{lok}/f/report/",
                    "ionscale_auth_key": None,
                },
                "instances": instances,
                "statuses": statuses,
            }
        return {
            "self": {"deployment_name": urls["deployment_name"]},
            "lok": {
                "base_url": f"{lok}/o",
                "token_url": urls.get("token_url", f"{lok}/o/token/"),
                "authorization_url": f"{lok}/o/authorize/",
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "client_type": "confidential",
                "grant_type": "client-credentials",
                "name": client.identifier,
                "scopes": client.scopes,
            },
            **service_group_config(self.shape, self.instances),
        }

    # -- clients --------------------------------------------------------------------------------

    def clients(self) -> list[Client]:
        with self._lock:
            return list(self._clients.values())

    def revoke_client(self, client_id: str | None = None) -> int:
        """Delete one client (or all): its token and credentials stop working."""
        with self._lock:
            ids = [client_id] if client_id is not None else list(self._clients)
            return sum(self._clients.pop(i, None) is not None for i in ids)

    # -- tokens ---------------------------------------------------------------------------------

    def token(
        self, form: Mapping[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip()).decode()
            except ValueError:
                return 400, {"error": "invalid_request"}
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            client = self._clients.get(client_id or "")
            if client is None:
                return 400, {"error": "invalid_client"}
            if not secrets.compare_digest(client.client_secret, client_secret or ""):
                return 401, {"error": "invalid_client"}
            asked = form.get("scope")
            scopes = (
                [s for s in asked.split() if s in GRANTABLE_SCOPES]
                if asked is not None
                else list(GRANTABLE_SCOPES)
            )
            self.issued_tokens += 1
            now = int(self.clock())
            lifetime = int(self.token_lifetime)
            access_token = self._jwt(client, " ".join(scopes), now, now + lifetime)
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": lifetime,
        }
        if asked is not None:
            answer["scope"] = " ".join(scopes)
        return 200, answer

    def _jwt(self, client: Client, scope: str, now: int, exp: int) -> str:
        if self.shape == "G2b":
            claims = {
                "iss": self.issuer,
                "exp": exp,
                "iat": now,
                "jti": new_jti(),
                "client_id": client.client_id,
                "sub": self.user,
                "aud": ["rekuest"],
                "scope": scope,
                "roles": ["admin"],
                "preferred_username": self.username,
                "nickname": self.username,
                "active_org": self.organization,
                "client_app": client.identifier,
                "client_release": client.version,
                "client_device": None,
                "client_role": client.role,
            }
            return self.signing_key.sign(claims)
        claims = {
            "iss": "herre",
            "type": "client",
            "sub": self.user,
            "preferred_username": self.username,
            "roles": ["admin"],
            "scope": scope,
            "client_id": client.client_id,
            "version": client.version,
            "identifier": client.identifier,
            "exp": exp,
        }
        if self.shape == "G2a":
            # lok-server-next before v1.0 signed for mikro-server-next, which needs a kid and iat.
            return self.signing_key.sign({**claims, "iat": now})
        return self.signing_key.sign(claims, with_kid=False)
