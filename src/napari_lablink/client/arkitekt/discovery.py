"""Finding a deployment: ``<address>/.well-known/fakts`` names where registration happens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from napari_lablink.client.arkitekt._http import origin_of
from napari_lablink.client.arkitekt.errors import DeploymentUnreachableError, NotFaktsError

__all__ = ["FaktsEndpoint", "discover"]

WELL_KNOWN = ".well-known/fakts"


@dataclass(frozen=True)
class FaktsEndpoint:
    """A deployment's discovery document. ``base_url`` (trailing ``/``) is where registration
    calls go; G2b deployments (``protocol_version`` set) serve it as ``<host>/lok/f/``."""

    name: str
    base_url: str
    version: str
    description: str = ""
    protocol_version: str | None = None
    frontend_url: str | None = None

    @property
    def label(self) -> str:
        """How messages name the deployment."""
        return origin_of(self.base_url)

    @property
    def modern(self) -> bool:
        """G2b (lok-server-next >= 1.0): requirements as a list, approval in the frontend."""
        return self.protocol_version is not None

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    def approval_url(self, code: str) -> str:
        """Where the user approves ``code`` in a browser."""
        if self.modern:
            root = self.base_url.removesuffix("lok/f/")
            if root == self.base_url:
                root = self.frontend_url or f"{self.label}/"
            return f"{root.rstrip('/')}/configure/{code}"
        return f"{self.base_url}configure/?device_code={code}&grant=device_code"


def _candidates(target: str) -> list[str]:
    target = target.strip()
    if not target:
        raise NotFaktsError("No deployment address given", obj=WELL_KNOWN)
    if "://" in target:
        return [target.rstrip("/")]
    return [f"https://{target.rstrip('/')}", f"http://{target.rstrip('/')}"]


def _parse(document: Any, url: str) -> FaktsEndpoint:
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise NotFaktsError(
            "The address answered, but not with an Arkitekt discovery document",
            server=origin_of(url),
            obj=WELL_KNOWN,
        )
    base_url = document.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise NotFaktsError(
            "The discovery document has no absolute base_url", server=origin_of(url), obj=WELL_KNOWN
        )
    protocol = document.get("protocol_version")
    frontend = document.get("frontend_url")
    return FaktsEndpoint(
        name=document["name"],
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        version=str(document.get("version", "")),
        description=str(document.get("description") or ""),
        protocol_version=str(protocol) if protocol is not None else None,
        frontend_url=frontend if isinstance(frontend, str) else None,
    )


def discover(target: str, *, timeout: float = 3.0) -> FaktsEndpoint:
    """The discovery document of ``target`` (``lab.example.org``, ``http://127.0.0.1:8000``).

    Without a scheme, HTTPS is tried before HTTP. Raises :class:`DeploymentUnreachableError`
    when nothing answers and :class:`NotFaktsError` when something answers that is no fakts
    document.
    """
    not_fakts: NotFaktsError | None = None
    with httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers={"User-Agent": "napari-lablink"},
    ) as client:
        for root in _candidates(target):
            url = f"{root}/{WELL_KNOWN}"
            try:
                response = client.get(url)
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                not_fakts = NotFaktsError(
                    f"The address answered HTTP {response.status_code} for the discovery document",
                    server=origin_of(url),
                    obj=WELL_KNOWN,
                )
                continue
            try:
                document = response.json()
            except ValueError:
                document = None
            try:
                return _parse(document, url)
            except NotFaktsError as error:
                not_fakts = error
    if not_fakts is not None:
        raise not_fakts
    raise DeploymentUnreachableError(
        "The Arkitekt deployment could not be reached", server=target.strip(), obj=WELL_KNOWN
    )
