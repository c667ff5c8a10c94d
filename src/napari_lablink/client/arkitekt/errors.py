"""What can go wrong while logging in to an Arkitekt deployment, each with what to do about it."""

from __future__ import annotations

from napari_lablink.client.errors import (
    AuthenticationError,
    ConfigurationError,
    LablinkError,
    ProtocolError,
    ServerError,
    ServerUnavailableError,
)

__all__ = [
    "ApprovalCancelledError",
    "ApprovalDeniedError",
    "ApprovalExpiredError",
    "ClientRevokedError",
    "DeploymentUnreachableError",
    "ForeignHostError",
    "LoginRequiredError",
    "NotFaktsError",
    "RegistrationError",
    "ServiceNotGrantedError",
    "TokenError",
]

_LOGIN_AGAIN = "Log in again (napari-lablink login HOST) to register napari-lablink anew"


class DeploymentUnreachableError(ServerUnavailableError):
    """No answer at the deployment's address."""

    default_hint = (
        "Check the address (lab.example.org or http://HOST:PORT) and that the deployment "
        "is running and reachable from this computer"
    )


class NotFaktsError(ProtocolError):
    """The address answers, but not with an Arkitekt discovery document."""

    default_hint = (
        "Check the address: it should be the Arkitekt deployment's own, the one that serves "
        "/.well-known/fakts"
    )


class RegistrationError(ServerError):
    """The deployment refused to start or finish registering the app."""


class ApprovalDeniedError(AuthenticationError):
    """The user (or an administrator) denied the app in the browser."""

    default_hint = "Start the login again and choose Approve, or ask the deployment's administrator"


class ApprovalExpiredError(AuthenticationError):
    """Nobody approved the app in time (or the deployment could not approve it)."""

    default_hint = (
        "Start the login again and approve the app in the browser before the code expires; if "
        "approving fails there, the deployment may lack a service the app needs"
    )


class ApprovalCancelledError(LablinkError):
    """The login was cancelled while waiting for approval."""


class ClientRevokedError(AuthenticationError):
    """The app's registration was deleted or replaced on the deployment."""

    default_hint = _LOGIN_AGAIN


class LoginRequiredError(AuthenticationError):
    """No stored registration and no way to ask the user for approval."""

    default_hint = (
        "Log in first (napari-lablink login HOST, or the browser's 'Add Arkitekt deployment'), "
        "or set LABLINK_FAKTS_TOKEN to a client token"
    )


class TokenError(AuthenticationError):
    """The deployment's token endpoint refused the app's client credentials."""

    default_hint = _LOGIN_AGAIN


class ServiceNotGrantedError(ConfigurationError):
    """The granted configuration lacks a service the app requires, or none of its addresses
    answers."""

    default_hint = (
        "Ask the deployment's administrator to add the service, or approve the app again "
        "without declining it"
    )


class ForeignHostError(ConfigurationError):
    """The configuration names another host for a secret; it is not sent there."""

    default_hint = (
        "napari-lablink sends the app's credentials only to the deployment's own host; ask the "
        "deployment's administrator to check its token URL"
    )
