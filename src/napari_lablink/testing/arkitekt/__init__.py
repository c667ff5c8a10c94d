"""A stand-in Arkitekt deployment (lok + fakts): discovery, app approval, RS256 access tokens.

Like the other stand-ins it is written from the protocol alone and never imports the client.
:class:`JWTVerifier` checks tokens the way the real mikro servers do; the mikro stand-in uses it.
"""

from napari_lablink.testing.arkitekt.deployment import SHAPES, Alias, Instance, Shape
from napari_lablink.testing.arkitekt.server import ArkitektStandIn, LoggedRequest
from napari_lablink.testing.arkitekt.tokens import JWTVerifier, SigningKey, TokenRejected

__all__ = [
    "SHAPES",
    "Alias",
    "ArkitektStandIn",
    "Instance",
    "JWTVerifier",
    "LoggedRequest",
    "Shape",
    "SigningKey",
    "TokenRejected",
]
