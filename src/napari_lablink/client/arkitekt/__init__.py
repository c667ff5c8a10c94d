"""Arkitekt deployments: fakts discovery, app approval, lok tokens, the granted configuration.

``login(host, prompt=...)`` returns an :class:`ArkitektSession` whose configuration names the
mikro GraphQL and S3 endpoints and whose token provider keeps an access token fresh;
:data:`deployments` keeps one session per deployment for the process's connections.
"""

from napari_lablink.client.arkitekt.deployments import (
    NO_BROWSER_VARIABLE,
    ApprovalPolicy,
    Deployments,
    deployments,
)
from napari_lablink.client.arkitekt.discovery import FaktsEndpoint, discover
from napari_lablink.client.arkitekt.errors import (
    ApprovalCancelledError,
    ApprovalDeniedError,
    ApprovalExpiredError,
    ClientRevokedError,
    DeploymentUnreachableError,
    ForeignHostError,
    LoginRequiredError,
    NotFaktsError,
    RegistrationError,
    ServiceNotGrantedError,
    TokenError,
)
from napari_lablink.client.arkitekt.granted import (
    GrantedConfiguration,
    ServiceEndpoint,
    parse_configuration,
)
from napari_lablink.client.arkitekt.manifest import LABLINK_APP, AppManifest, Requirement
from napari_lablink.client.arkitekt.registration import ApprovalPrompt
from napari_lablink.client.arkitekt.session import (
    FAKTS_TOKEN_VARIABLE,
    ArkitektSession,
    login,
    logout,
)
from napari_lablink.client.arkitekt.storage import (
    FileGrantStore,
    GrantStore,
    MemoryGrantStore,
    StoredGrant,
    default_grant_store,
)
from napari_lablink.client.arkitekt.tokens import BearerAuth, TokenProvider

__all__ = [
    "FAKTS_TOKEN_VARIABLE",
    "LABLINK_APP",
    "NO_BROWSER_VARIABLE",
    "AppManifest",
    "ApprovalCancelledError",
    "ApprovalDeniedError",
    "ApprovalExpiredError",
    "ApprovalPolicy",
    "ApprovalPrompt",
    "ArkitektSession",
    "BearerAuth",
    "ClientRevokedError",
    "DeploymentUnreachableError",
    "Deployments",
    "FaktsEndpoint",
    "FileGrantStore",
    "ForeignHostError",
    "GrantStore",
    "GrantedConfiguration",
    "LoginRequiredError",
    "MemoryGrantStore",
    "NotFaktsError",
    "RegistrationError",
    "Requirement",
    "ServiceEndpoint",
    "ServiceNotGrantedError",
    "StoredGrant",
    "TokenError",
    "TokenProvider",
    "default_grant_store",
    "deployments",
    "discover",
    "login",
    "logout",
    "parse_configuration",
]
