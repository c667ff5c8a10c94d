"""What a deployment offers (service instances and their aliases) and the configuration shapes
lok hands a registered app: G1 and G2a group configurations and the G2b ``instances`` one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["SHAPES", "Alias", "Instance", "Shape", "instances_config", "service_group_config"]

Shape = Literal["G1", "G2a", "G2b"]
SHAPES: tuple[Shape, ...] = ("G1", "G2a", "G2b")

MIKRO = "live.arkitekt.mikro"
S3 = "live.arkitekt.s3"


@dataclass(frozen=True)
class Alias:
    """One way to reach a service instance; ``challenge`` is the health-check path below it."""

    host: str
    port: int | None = None
    path: str | None = None
    challenge: str = "ht"
    ssl: bool = False
    id: str = "1"

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl else "http"
        port = f":{self.port}" if self.port is not None else ""
        path = f"/{self.path.strip('/')}" if self.path else ""
        return f"{scheme}://{self.host}{port}{path}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ssl": self.ssl,
            "host": self.host,
            "port": self.port,
            "path": self.path,
            "challenge": self.challenge,
        }


@dataclass(frozen=True)
class Instance:
    """A running service (``live.arkitekt.mikro``, ``live.arkitekt.s3``) and its aliases."""

    service: str
    aliases: Sequence[Alias]
    identifier: str = "1"
    extra: Mapping[str, Any] = field(default_factory=dict)


def instances_config(
    instances: Mapping[str, Instance], requirements: Sequence[Mapping[str, Any]], declined: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """G2b ``instances`` and ``statuses``, one entry per requirement key of the manifest."""
    granted: dict[str, Any] = {}
    statuses: dict[str, str] = {}
    for requirement in requirements:
        key = requirement["key"]
        instance = instances.get(requirement["service"])
        if key in declined:
            statuses[key] = "denied"
        elif instance is None:
            statuses[key] = "unavailable"
        else:
            statuses[key] = "granted"
            granted[key] = {
                "service": instance.service,
                "identifier": instance.identifier,
                "aliases": [alias.as_json() for alias in instance.aliases],
                "challenge_key": None,
            }
    return granted, statuses


def service_group_config(shape: Shape, instances: Mapping[str, Instance]) -> dict[str, Any]:
    """G1/G2a groups (deployment templates): ``mikro`` and ``datalayer`` (G2a) or ``minio`` (G1)."""
    groups: dict[str, Any] = {}
    mikro = instances.get(MIKRO)
    if mikro is not None and mikro.aliases:
        url = mikro.aliases[0].url
        ws = "wss" + url.removeprefix("https") if url.startswith("https") else "ws" + url[4:]
        groups["mikro"] = {
            "endpoint_url": f"{url}/graphql",
            "ws_endpoint_url": f"{ws}/graphql",
            "healthz": f"{url}/ht",
        }
    s3 = instances.get(S3)
    if s3 is not None and s3.aliases:
        groups["minio" if shape == "G1" else "datalayer"] = {"endpoint_url": s3.aliases[0].url}
    return groups
