"""Where a mikro connection sends its GraphQL, with which credential, and the S3 endpoint.

A static token (argument, environment, servers.toml, keyring) means the URI's own address with
that token, as always. Without one, the URI's host may be an Arkitekt deployment: then the
granted configuration names the GraphQL and S3 endpoints, and lok's access tokens (renewed as
they expire, and once after mikro refuses one) authenticate, sent to the granted mikro only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from napari_lablink.client.arkitekt.deployments import deployments
from napari_lablink.client.arkitekt.session import ArkitektSession
from napari_lablink.client.arkitekt.workers import WorkerTokens
from napari_lablink.client.config import Credentials
from napari_lablink.client.transport import HeaderAuth
from napari_lablink.client.uri import RemoteURI

__all__ = ["MikroRoute", "mikro_route"]


@dataclass(frozen=True)
class MikroRoute:
    """What a :class:`~napari_lablink.client.mikro.server.MikroServer` talks to."""

    base_url: str  # GraphQL is at base_url + "/graphql"
    auth: httpx.Auth
    secrets: Callable[[], Iterable[str | None]]
    #: What a ``dask.distributed`` worker reopens the connection with: the static token, or
    #: with an Arkitekt login the grant's client credentials, with which a worker fetches and
    #: renews its own access tokens (it cannot log in, and work may outlive any one token).
    worker_login: Callable[[], str | WorkerTokens | None]
    #: The S3 endpoint the deployment granted (None: the URI's or the configuration's).
    granted_s3: str | None = None
    session: ArkitektSession | None = None


def mikro_route(uri: RemoteURI, credentials: Credentials) -> MikroRoute:
    """The route to the mikro server of ``uri``; may log in to its Arkitekt deployment."""
    static = MikroRoute(
        uri.base_url,
        HeaderAuth(httpx.URL(uri.base_url), "Bearer", lambda: credentials.token),
        lambda: credentials.secrets,
        lambda: credentials.token,
    )
    if credentials.token:
        return static
    session = deployments.session_for(f"{'https' if uri.secure else 'http'}://{uri.authority}")
    graphql = session.mikro_graphql_url if session is not None else None
    if session is None or graphql is None:
        return static
    base = graphql.removesuffix("/").removesuffix("/graphql")
    return MikroRoute(
        base,
        session.auth_for(base),
        lambda: (*credentials.secrets, *session.tokens.secrets()),
        session.worker_tokens,
        session.s3_endpoint,
        session,
    )
