"""The stand-in lok/fakts server: discovery, app registration, tokens, on loopback HTTP.

Routes (G2b; with ``shape="G1"``/``"G2a"`` drop the ``/lok`` prefix):

- ``GET /.well-known/fakts`` and ``GET /lok/.well-known/fakts``: the discovery document;
- ``POST /lok/f/start/``, ``challenge/``, ``claim/``, ``redeem/``: registration;
- ``POST /lok/o/token/`` (client credentials, form-encoded), ``GET /lok/o/jwks/``;
- ``GET /configure/<code>`` (G1/G2a: ``/f/configure/?device_code=<code>``): an approval page;
- ``POST /_test/device/<code>`` ``{"action": "approve"|"deny", "declined": [keys]}``: what the
  user answers in lok's frontend, for tests (the page's buttons post here too).
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit

from napari_lablink.testing._http import (
    LoopbackHTTPServer,
    QuietHandler,
    ServerThread,
    Service,
    require_loopback,
)
from napari_lablink.testing.arkitekt.deployment import MIKRO, S3, SHAPES, Alias, Instance, Shape
from napari_lablink.testing.arkitekt.lok import Client, Lok
from napari_lablink.testing.arkitekt.tokens import GEN1_REQUIRED_CLAIMS, JWTVerifier, SigningKey

__all__ = ["ArkitektStandIn", "LoggedRequest"]

log = logging.getLogger(__name__)


class LoggedRequest(NamedTuple):
    """One request received: method, path, and whether it carried an Authorization header."""

    method: str
    path: str
    authorized: bool


class _Handler(QuietHandler):
    server: _LokServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        stand_in = self.server.stand_in
        body = self.read_body() if self.command == "POST" else b""
        split = urlsplit(self.path)
        stand_in._log(LoggedRequest(self.command, split.path, "Authorization" in self.headers))
        origin = self._origin()
        try:
            status, content_type, payload, headers = stand_in._route(
                self.command, split.path, split.query, body, self.headers, origin
            )
        except Exception:
            log.warning("stand-in failed on %s %s", self.command, split.path, exc_info=True)
            status, content_type, payload, headers = 500, "text/plain", b"Server Error", {}
        self.send_bytes(status, payload, content_type, headers)

    def _origin(self) -> str:
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host")
        if not host:
            # The bound socket's own address (always text for an AF_INET socket).
            address, port = self.server.socket.getsockname()[:2]
            host = f"{address}:{port}"
        return f"http://{host.split(',')[0].strip()}"


class _LokServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, stand_in: ArkitektStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(host, port, _Handler)


def _json(status: int, payload: Any) -> tuple[int, str, bytes, dict[str, str]]:
    return status, "application/json", json.dumps(payload).encode(), {}


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


class ArkitektStandIn(Service):
    """A lok/fakts deployment whose granted configurations point at the given services.

    ``mikro_url`` is the mikro alias (GraphQL below it at ``/graphql``, health check ``/ht``),
    ``s3_url`` the S3 endpoint (health check ``/minio/health/live``); ``instances`` (service name
    -> :class:`Instance`) replaces both for tests that need several aliases or none.
    ``auto_approve`` grants every new code at once, as if a logged-in user clicked "Approve".
    """

    def __init__(
        self,
        *,
        shape: Shape = "G2b",
        mikro_url: str | None = None,
        s3_url: str | None = None,
        instances: Mapping[str, Instance] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float | None = None,
        auto_approve: bool = False,
        clock: Callable[[], float] = time.time,
        signing_key: SigningKey | None = None,
        deployment_name: str = "lablink-stand-in",
    ) -> None:
        require_loopback(host)
        if shape not in SHAPES:
            raise ValueError(f"unknown configuration shape {shape!r}; use one of {SHAPES}")
        self.shape: Shape = shape
        self.deployment_name = deployment_name
        self.signing_key = signing_key or SigningKey()
        if instances is None:
            instances = {}
            if mikro_url is not None:
                instances[MIKRO] = Instance(MIKRO, [_alias(mikro_url, "ht")], identifier="1")
            if s3_url is not None:
                instances[S3] = Instance(S3, [_alias(s3_url, "minio/health/live")], identifier="2")
        lifetime = (
            token_lifetime
            if token_lifetime is not None
            else (864000.0 if shape == "G2b" else 86400.0)
        )
        self.lok = Lok(
            shape=shape,
            instances=instances,
            signing_key=self.signing_key,
            token_lifetime=lifetime,
            clock=clock,
        )
        self.lok.auto_approve = auto_approve
        #: Tests: name another token URL in the configuration, or redirect the token endpoint.
        self.token_url_override: str | None = None
        self.token_redirect: str | None = None
        self._host, self._port = host, port
        self._requests: list[LoggedRequest] = []
        self._requests_lock = threading.Lock()
        self._server: ServerThread | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> ArkitektStandIn:
        self._server = ServerThread(_LokServer(self._host, self._port, self), name="lok-stand-in")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the arkitekt stand-in is not running; call start() first")
        return self._server.port

    @property
    def url(self) -> str:
        """The deployment's address, as a user types it (``/.well-known/fakts`` below it)."""
        return f"http://{self._host}:{self.port}"

    @property
    def _prefix(self) -> str:
        return "/lok" if self.shape == "G2b" else ""

    @property
    def base_url(self) -> str:
        return f"{self.url}{self._prefix}/f/"

    @property
    def token_url(self) -> str:
        return f"{self.url}{self._prefix}/o/token/"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}{self._prefix}/o/jwks/"

    def approval_url(self, code: str) -> str:
        """Where a user approves ``code`` in a browser."""
        if self.shape == "G2b":
            return f"{self.url}/configure/{code}"
        return f"{self.base_url}configure/?device_code={code}&grant=device_code"

    @property
    def approve_route(self) -> str:
        """The test route deciding a code (``{code}`` to be filled in)."""
        return f"{self.url}/_test/device/{{code}}"

    # -- test controls --------------------------------------------------------------------------

    @property
    def token_lifetime(self) -> float:
        return self.lok.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        self.lok.token_lifetime = seconds

    @property
    def auto_approve(self) -> bool:
        return self.lok.auto_approve

    @auto_approve.setter
    def auto_approve(self, value: bool) -> None:
        self.lok.auto_approve = value

    def approve(
        self, code: str, declined: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        return self.lok.decide(code, "approve", declined)[1]

    def deny(self, code: str) -> dict[str, Any]:
        return self.lok.decide(code, "deny")[1]

    def pending_codes(self) -> list[str]:
        with self.lok._lock:
            return [c for c, d in self.lok._codes.items() if d.status == "pending"]

    def add_redeem_token(self, lifetime: float = 3600.0) -> str:
        return self.lok.add_redeem_token(lifetime)

    def clients(self) -> list[Client]:
        return self.lok.clients()

    def revoke_client(self, client_id: str | None = None) -> int:
        return self.lok.revoke_client(client_id)

    def jwks(self) -> dict[str, Any]:
        return self.signing_key.jwks()

    def verifier(
        self, *, generation: int = 2, clock: Callable[[], float] = time.time
    ) -> JWTVerifier:
        """A verifier trusting this lok's key, as a mikro server of that generation checks."""
        if generation == 2:
            return JWTVerifier({self.signing_key.kid: self.signing_key.public_key}, clock=clock)
        return JWTVerifier(
            {self.signing_key.kid: self.signing_key.public_key},
            keyless=self.signing_key.public_key,
            required_claims=GEN1_REQUIRED_CLAIMS,
            clock=clock,
        )

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def _log(self, request: LoggedRequest) -> None:
        with self._requests_lock:
            self._requests.append(request)

    # -- routing --------------------------------------------------------------------------------

    def _route(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        headers: Any,
        origin: str,
    ) -> tuple[int, str, bytes, dict[str, str]]:
        prefix = self._prefix
        if method == "GET" and path in ("/.well-known/fakts", f"{prefix}/.well-known/fakts"):
            return _json(200, self._well_known(origin))
        if method == "GET" and path == f"{prefix}/o/jwks/":
            return _json(200, self.jwks())
        if method == "GET" and path.rstrip("/") == f"{prefix}/ht":
            return 200, "text/plain", b"ok", {}
        if method == "POST" and path.startswith("/_test/device/"):
            return self._test_decision(path.removeprefix("/_test/device/").strip("/"), body)
        if method == "GET" and self.shape == "G2b" and path.startswith("/configure/"):
            return self._configure_page(path.removeprefix("/configure/").strip("/"))
        if method == "GET" and self.shape != "G2b" and path == "/f/configure/":
            code = parse_qs(query).get("device_code", [""])[0]
            return self._configure_page(code)
        if method == "POST" and path == f"{prefix}/o/token/":
            return self._token(body, headers)
        if method == "POST" and path.startswith(f"{prefix}/f/"):
            action = path.removeprefix(f"{prefix}/f/").strip("/")
            request = _loads(body)
            if action == "start":
                return _json(200, self.lok.start(request))
            if action == "challenge":
                return _json(200, self.lok.challenge(request))
            if action == "claim":
                return _json(200, self.lok.claim(request, self._urls(origin)))
            if action == "redeem":
                return _json(200, self.lok.redeem(request))
        return _json(404, {"detail": "Not found"})

    def _well_known(self, origin: str) -> dict[str, Any]:
        base_url = f"{origin}{self._prefix}/f/"
        if self.shape == "G2b":
            return {
                "name": self.deployment_name,
                "version": "0.1.0",
                "protocol_version": "1",
                "description": "A stand-in Arkitekt deployment",
                "claim": f"{base_url}claim/",
                "base_url": base_url,
                "frontend_url": f"{origin}/",
            }
        return {
            "name": self.deployment_name,
            "version": "0.0.1",
            "description": "A stand-in Arkitekt deployment",
            "claim": f"{base_url}claim/",
            "base_url": base_url,
        }

    def _urls(self, origin: str) -> dict[str, str]:
        authority = urlsplit(origin)
        urls = {
            "deployment_name": self.deployment_name,
            "lok": f"{origin}{self._prefix}",
            "host": authority.hostname or self._host,
            "port": str(authority.port or ""),
        }
        if self.token_url_override is not None:
            urls["token_url"] = self.token_url_override
        return urls

    def _token(self, body: bytes, headers: Any) -> tuple[int, str, bytes, dict[str, str]]:
        if self.token_redirect is not None:
            return 307, "text/plain", b"", {"Location": self.token_redirect}
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        status, answer = self.lok.token(form, headers.get("Authorization"))
        return _json(status, answer)

    def _test_decision(self, code: str, body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        request = _loads(body)
        if not isinstance(request, dict):  # the approval page's form
            request = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        declined = request.get("declined") or []
        if isinstance(declined, str):
            declined = [declined]
        status, answer = self.lok.decide(code, str(request.get("action", "")), set(declined))
        return _json(status, answer)

    def _configure_page(self, code: str) -> tuple[int, str, bytes, dict[str, str]]:
        with self.lok._lock:
            device = self.lok._codes.get(code)
            app = device.manifest["identifier"] if device else None
        if device is None:
            return 404, "text/html; charset=utf-8", b"<h1>Unknown or expired code</h1>", {}
        action = f"/_test/device/{quote(code)}"
        page = (
            "<!doctype html><title>Approve app</title>"
            f"<h1>{html.escape(str(app))} asks for access to "
            f"{html.escape(self.deployment_name)}</h1>"
            f"<p>Code: <b>{html.escape(code)}</b></p>"
            f'<form method="post" action="{action}">'
            '<button name="action" value="approve">Approve</button> '
            '<button name="action" value="deny">Deny</button></form>'
        )
        return 200, "text/html; charset=utf-8", page.encode(), {}


def _alias(url: str, challenge: str) -> Alias:
    parts = urlsplit(url)
    return Alias(
        host=parts.hostname or "127.0.0.1",
        port=parts.port,
        path=parts.path.strip("/") or None,
        challenge=challenge,
        ssl=parts.scheme == "https",
    )
