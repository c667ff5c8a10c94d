"""The configuration a deployment grants the app, in its three shapes, as one typed value.

G2b (lok-server-next >= 1.0) lists ``instances`` per requirement key, each with aliases to try in
order: the first whose health check (``GET <alias>/<challenge>``) answers 200 is used. G1 and G2a
name one endpoint per service group (``mikro``, ``datalayer`` or ``minio``) and the OAuth2 client
under ``lok``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from napari_lablink.client.arkitekt.discovery import FaktsEndpoint
from napari_lablink.client.arkitekt.errors import ForeignHostError, ServiceNotGrantedError
from napari_lablink.client.arkitekt.manifest import AppManifest
from napari_lablink.client.errors import ProtocolError

__all__ = [
    "GrantedConfiguration",
    "HealthCheck",
    "ServiceEndpoint",
    "check_same_host",
    "http_health_check",
    "parse_configuration",
]

#: ``url -> answers 200``; injectable so callers can skip or stub the network check.
HealthCheck = Callable[[str], bool]

MIKRO_SERVICE = "live.arkitekt.mikro"
S3_SERVICE = "live.arkitekt.s3"
#: Where G1/G2a configurations keep the S3 endpoint, by preference.
S3_GROUPS = ("datalayer", "minio", "s3")


@dataclass(frozen=True)
class ServiceEndpoint:
    """Where a granted service is used: the GraphQL URL for mikro, the S3 endpoint for S3."""

    key: str
    service: str
    url: str


@dataclass(frozen=True)
class GrantedConfiguration:
    """Everything the app needs from a grant. The client secret is kept out of ``repr``."""

    shape: str  # "G1", "G2a" or "G2b"
    deployment: str  # the fakts base_url the grant came from
    deployment_name: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    services: Mapping[str, ServiceEndpoint] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)

    def endpoint(self, key: str) -> str | None:
        service = self.services.get(key)
        return service.url if service else None

    @property
    def mikro_graphql_url(self) -> str | None:
        return self.endpoint("mikro")

    @property
    def s3_endpoint(self) -> str | None:
        return self.endpoint("s3")


def http_health_check(url: str, timeout: float = 3.0) -> bool:
    """Whether ``GET url`` answers 200 (no credentials, no redirects)."""
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def check_same_host(url: str, deployment: str, what: str) -> None:
    """Refuse to send a secret to ``url`` unless it is on the deployment's host (and does not
    drop from HTTPS to HTTP)."""
    target, home = httpx.URL(url), httpx.URL(deployment)
    if (
        target.scheme not in ("http", "https")
        or target.host != home.host
        or (home.scheme == "https" and target.scheme != "https")
    ):
        raise ForeignHostError(
            f"The granted configuration names {target.scheme}://{target.host} for the {what}, "
            "not the deployment's own host",
            server=f"{home.scheme}://{home.host}",
        )


def _text(group: Mapping[str, Any], key: str, where: str, label: str) -> str:
    value = group.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"The granted configuration lacks {where}.{key}", server=label)
    return value


def _alias_url(alias: Mapping[str, Any], endpoint: FaktsEndpoint) -> str:
    home = httpx.URL(endpoint.base_url)
    host = alias.get("host") or home.host  # "relative" aliases take the claim's host
    port = alias.get("port")
    if port is None and not alias.get("host"):
        port = home.port
    scheme = ("https" if alias.get("ssl") else "http") if alias.get("host") else home.scheme
    path = str(alias.get("path") or "").strip("/")
    return f"{scheme}://{host}" + (f":{port}" if port else "") + (f"/{path}" if path else "")


def _instances(
    raw: Mapping[str, Any], endpoint: FaktsEndpoint, health: HealthCheck | None
) -> tuple[dict[str, ServiceEndpoint], dict[str, str]]:
    services: dict[str, ServiceEndpoint] = {}
    statuses = {str(k): str(v) for k, v in (raw.get("statuses") or {}).items()}
    unhealthy: list[str] = []
    for key, instance in (raw.get("instances") or {}).items():
        if not isinstance(instance, dict):
            continue
        service = str(instance.get("service", ""))
        for alias in instance.get("aliases") or []:
            url = _alias_url(alias, endpoint)
            challenge = str(alias.get("challenge") or "").strip("/")
            if health is None or health(f"{url}/{challenge}" if challenge else url):
                use = f"{url}/graphql" if service == MIKRO_SERVICE else url
                services[key] = ServiceEndpoint(key, service, use)
                break
        else:
            unhealthy.append(key)
    for key in unhealthy:
        statuses[key] = "unreachable"
    return services, statuses


def _groups(raw: Mapping[str, Any]) -> dict[str, ServiceEndpoint]:
    services: dict[str, ServiceEndpoint] = {}
    mikro = raw.get("mikro")
    if isinstance(mikro, dict) and isinstance(mikro.get("endpoint_url"), str):
        services["mikro"] = ServiceEndpoint("mikro", MIKRO_SERVICE, mikro["endpoint_url"])
    for name in S3_GROUPS:
        group = raw.get(name)
        if isinstance(group, dict) and isinstance(group.get("endpoint_url"), str):
            services["s3"] = ServiceEndpoint("s3", S3_SERVICE, group["endpoint_url"].rstrip("/"))
            break
    return services


def parse_configuration(
    raw: Mapping[str, Any],
    endpoint: FaktsEndpoint,
    manifest: AppManifest,
    *,
    health: HealthCheck | None = http_health_check,
) -> GrantedConfiguration:
    """One :class:`GrantedConfiguration` from any shape; raises
    :class:`ServiceNotGrantedError` when a required service is missing or unreachable."""
    label = endpoint.label
    name = str((raw.get("self") or {}).get("deployment_name") or endpoint.name)
    if "instances" in raw or "auth" in raw:
        auth = raw.get("auth")
        if not isinstance(auth, dict):
            raise ProtocolError("The granted configuration lacks auth", server=label)
        shape = "G2b"
        token_url = _text(auth, "token_url", "auth", label)
        client_id = _text(auth, "client_id", "auth", label)
        client_secret = _text(auth, "client_secret", "auth", label)
        scopes = auth.get("scopes") or []
        services, statuses = _instances(raw, endpoint, health)
    else:
        lok = raw.get("lok")
        if not isinstance(lok, dict):
            raise ProtocolError("The granted configuration lacks lok", server=label)
        shape = "G1" if "minio" in raw else "G2a"
        token_url = lok.get("token_url") or f"{_text(lok, 'base_url', 'lok', label)}/token/"
        client_id = _text(lok, "client_id", "lok", label)
        client_secret = _text(lok, "client_secret", "lok", label)
        scopes = lok.get("scopes") or []
        services = _groups(raw)
        statuses = {key: "granted" for key in services}
    check_same_host(token_url, endpoint.base_url, "token endpoint")
    missing = [r.key for r in manifest.requirements if not r.optional and r.key not in services]
    if missing:
        reasons = ", ".join(f"{key} ({statuses.get(key, 'not granted')})" for key in missing)
        raise ServiceNotGrantedError(
            f"The deployment did not grant a required service: {reasons}", server=label
        )
    return GrantedConfiguration(
        shape=shape,
        deployment=endpoint.base_url,
        deployment_name=name,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        scopes=tuple(str(s) for s in scopes),
        services=services,
        statuses=statuses,
    )
