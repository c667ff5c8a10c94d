"""JSON over HTTP for the login flow: explicit timeouts, no redirects, typed and scrubbed errors.

Registration and token requests carry secrets in their bodies, so redirects are never followed:
a redirect could hand the body to another host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from napari_lablink.client.arkitekt.errors import DeploymentUnreachableError
from napari_lablink.client.errors import ProtocolError, ServerError, scrub

__all__ = ["new_client", "origin_of", "post_json"]


def new_client(timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        headers={"User-Agent": "napari-lablink"},
    )


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: how errors name the deployment."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def post_json(
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    *,
    obj: str,
    secrets: Iterable[str | None] = (),
) -> dict[str, Any]:
    """POST ``body`` as JSON; the answer's JSON object (lok answers errors with HTTP 200 too)."""
    label = origin_of(url)
    try:
        response = client.post(url, json=dict(body))
    except httpx.TimeoutException:
        raise DeploymentUnreachableError(
            "The deployment timed out", server=label, obj=obj
        ) from None
    except httpx.HTTPError as error:
        raise DeploymentUnreachableError(
            f"The deployment could not be reached ({type(error).__name__})", server=label, obj=obj
        ) from None
    if response.is_redirect:
        raise ProtocolError(
            f"The deployment redirected a request that carries secrets (HTTP "
            f"{response.status_code}); it was not followed",
            server=label,
            obj=obj,
        )
    if response.status_code != 200:
        said = scrub(response.text[:200], secrets) if "<html" not in response.text[:200] else ""
        raise ServerError(
            f"The deployment answered HTTP {response.status_code}" + (f": {said}" if said else ""),
            server=label,
            obj=obj,
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ProtocolError(
            "The deployment answered something other than JSON", server=label, obj=obj
        )
    return answer
