"""Signing and verifying the access tokens lok issues (RS256 JWTs), and the key set it publishes.

Both sides live here so a stand-in mikro server checks tokens with exactly the rules the real
generation-2 server applies (authentikate 2.2.1): the header's ``kid`` must name a trusted key,
the signature and ``exp`` are enforced, a fixed set of claims must be present, and ``iss``,
``aud`` and scopes are not checked. The rejection texts are the real server's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = [
    "BAD_HEADER",
    "BAD_TOKEN",
    "GEN1_REQUIRED_CLAIMS",
    "GEN2_REQUIRED_CLAIMS",
    "NO_HEADER",
    "JWTVerifier",
    "SigningKey",
    "TokenRejected",
]

#: What mikro-server-next 2.0.0 answers, checked against the real server.
NO_HEADER = "No Authorization header"
BAD_HEADER = "Error decoding token header"
BAD_TOKEN = "Error decoding token"

GEN2_REQUIRED_CLAIMS = frozenset(
    {"sub", "iss", "exp", "iat", "client_id", "preferred_username", "roles", "scope"}
)
#: Generation-1 tokens (herre) carry no ``iat``; the old server needs little more than ``sub``.
GEN1_REQUIRED_CLAIMS = frozenset({"sub", "exp"})


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SigningKey:
    """lok's RSA key: signs access tokens and is published (public half only) as a JWKS."""

    kid: str = "lok-key-1"
    private_key: rsa.RSAPrivateKey = field(default_factory=_new_rsa_key, repr=False)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.public_key))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: Mapping[str, Any], *, with_kid: bool = True) -> str:
        """A token with header ``{"typ": "at+jwt", "alg": "RS256", "kid": ...}`` (generation 2)
        or a plain ``{"typ": "JWT", "alg": "RS256"}`` one (generation 1, no kid)."""
        headers = {"typ": "at+jwt", "kid": self.kid} if with_kid else {"typ": "JWT"}
        return jwt.encode(dict(claims), self.private_key, algorithm="RS256", headers=headers)


class TokenRejected(Exception):
    """A bearer token the server refuses; ``str()`` is the text the server answers with."""


def _public_keys_of(jwks: Mapping[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "RSA" and jwk.get("kid"):
            keys[jwk["kid"]] = RSAAlgorithm.from_jwk(json.dumps(jwk))
    return keys


class JWTVerifier:
    """Checks ``Authorization: Bearer <jwt>`` headers the way the real mikro servers do.

    ``keys`` maps each trusted ``kid`` to an RSA public key (what the server's configuration lists
    per issuer). ``keyless`` is the one key a generation-1 server holds (``lok.public_key``): it
    accepts tokens without a ``kid``. ``clock`` is injectable so tests can expire tokens.
    """

    def __init__(
        self,
        keys: Mapping[str, Any] | None = None,
        *,
        keyless: Any | None = None,
        required_claims: Iterable[str] = GEN2_REQUIRED_CLAIMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = dict(keys or {})
        self._keyless = keyless
        self._required = sorted(required_claims)
        self._clock = clock

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], **kwargs: Any) -> JWTVerifier:
        """Trust every RSA key of a JWKS document (``GET <lok>/o/jwks/``)."""
        return cls(_public_keys_of(jwks), **kwargs)

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or :class:`TokenRejected` with the server's message."""
        if not authorization:
            raise TokenRejected(NO_HEADER)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TokenRejected(BAD_HEADER)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected(BAD_HEADER) from None
        if header.get("alg") != "RS256":
            raise TokenRejected(BAD_HEADER)
        kid = header.get("kid")
        key = self._keys.get(kid) if kid is not None else self._keyless
        if key is None:
            raise TokenRejected(BAD_HEADER)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_exp": False,
                },
            )
        except jwt.PyJWTError:
            raise TokenRejected(BAD_TOKEN) from None
        missing = [name for name in self._required if name not in claims]
        if missing:
            raise TokenRejected(BAD_TOKEN)
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock():
            raise TokenRejected(BAD_TOKEN)
        return claims

    def problem(self, authorization: str | None) -> str | None:
        """None for an accepted header, else the rejection text (the mikro stand-in's hook)."""
        try:
            self.verify(authorization)
        except TokenRejected as rejected:
            return str(rejected)
        return None


def new_jti() -> str:
    return uuid.uuid4().hex
