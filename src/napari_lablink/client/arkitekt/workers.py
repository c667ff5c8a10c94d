"""Access tokens inside ``dask.distributed`` workers, renewed there as the client renews them.

A computation can outlive an access token by hours, and a worker process cannot log in (no
browser, no grant store). So what travels to a worker is the app's granted client credentials:
each worker process fetches its own access tokens from the deployment's token endpoint, renews
them before they expire and once after mikro refuses one, exactly as the login that sent the
work does. The credentials stay in memory objects whose ``repr`` hides the secret.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from napari_lablink.client.arkitekt.granted import GrantedConfiguration
from napari_lablink.client.arkitekt.tokens import BearerAuth, TokenProvider

__all__ = ["WorkerTokens"]


@dataclass(frozen=True)
class WorkerTokens:
    """The client credentials of a grant, as they travel to a worker; ``repr`` hides the secret.

    Only what the token endpoint needs travels (no service list), so it is hashable: each
    process keeps one :class:`TokenProvider` per grant, shared by all its connections.
    """

    shape: str
    deployment: str
    deployment_name: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()

    @classmethod
    def of(cls, configuration: GrantedConfiguration) -> WorkerTokens:
        return cls(
            configuration.shape,
            configuration.deployment,
            configuration.deployment_name,
            configuration.token_url,
            configuration.client_id,
            configuration.client_secret,
            tuple(configuration.scopes),
        )

    def provider(self) -> TokenProvider:
        """This process's token source for the grant (a worker cannot re-register: no
        ``renew_grant``, so a revoked registration fails the work with a login error)."""
        with _providers_lock:
            provider = _providers.get(self)
            if provider is None or provider.closed:
                configuration = GrantedConfiguration(
                    self.shape,
                    self.deployment,
                    self.deployment_name,
                    self.token_url,
                    self.client_id,
                    self.client_secret,
                    self.scopes,
                )
                provider = _providers[self] = TokenProvider(configuration)
            return provider

    def auth_for(self, url: str) -> BearerAuth:
        """httpx auth sending this process's access token to ``url``'s origin only."""
        return BearerAuth(self.provider(), url)


_providers: dict[WorkerTokens, TokenProvider] = {}
_providers_lock = threading.Lock()
