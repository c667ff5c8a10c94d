"""Credentials of the stand-in MIBItracker: JSON Web Tokens and signed storage URLs.

The real tracker issues HS256 JWTs (django-rest-framework-jwt): they expire after a lifetime,
can be refreshed until a limit counted from the original login, and a refresh of an expired token
is refused. Its files live in cloud storage behind signed URLs that carry their own expiry and
signature in the query and ignore any ``Authorization`` header. Both are reproduced here with a
clock that tests move forward instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["Clock", "StorageError", "TokenError", "TokenIssuer", "UrlSigner"]


class Clock:
    """Server time, which tests can advance to expire tokens and URLs without waiting."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


class TokenError(Exception):
    """A token the server does not accept; the message is the one the tracker sends."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues, verifies and refreshes HS256 JWTs for one server."""

    def __init__(self, clock: Clock, lifetime: float, refresh_limit: float) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self.refresh_limit = refresh_limit
        self._secret = secrets.token_bytes(32)

    def issue(self, user_id: int, email: str, orig_iat: int | None = None) -> str:
        now = self._clock.now()
        payload = {
            "user_id": user_id,
            "email": email,
            "username": email,
            "exp": now + self.lifetime,
            "orig_iat": int(now) if orig_iat is None else orig_iat,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload).encode())
        return f"{header}.{body}.{self._signature(f'{header}.{body}')}"

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; ``TokenError`` if it is forged, malformed or expired."""
        try:
            header, body, signature = token.split(".")
            expected = self._signature(f"{header}.{body}")
            if not hmac.compare_digest(signature, expected):
                raise ValueError("bad signature")
            claims = json.loads(_unb64(body))
            expiry = float(claims["exp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("Error decoding signature.") from exc
        if expiry <= self._clock.now():
            raise TokenError("Signature has expired.")
        return dict(claims)

    def refresh(self, token: str) -> str:
        """A new token for the same login; refused once expired or past the refresh limit."""
        claims = self.verify(token)
        orig_iat = int(claims["orig_iat"])
        if self._clock.now() > orig_iat + self.refresh_limit:
            raise TokenError("Refresh has expired.")
        return self.issue(int(claims["user_id"]), str(claims["email"]), orig_iat)

    def _signature(self, message: str) -> str:
        return _b64(hmac.new(self._secret, message.encode(), hashlib.sha256).digest())


class StorageError(Exception):
    """A storage request refused, with the status and error code cloud storage answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class UrlSigner:
    """Signs storage object paths for one method, the way cloud storage signed URLs work."""

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self._secret = secrets.token_bytes(32)

    def sign(self, origin: str, method: str, object_path: str) -> str:
        """An absolute URL granting ``method`` on ``object_path`` until the lifetime passes."""
        expires = int(self._clock.now() + self.lifetime)
        signature = self._signature(method, object_path, expires)
        return f"{origin}/storage/{quote(object_path)}?X-Expires={expires}&X-Signature={signature}"

    def check(self, method: str, object_path: str, query: Mapping[str, str]) -> None:
        try:
            expires = int(query["X-Expires"])
            signature = query["X-Signature"]
        except (KeyError, ValueError) as exc:
            raise StorageError(
                403, "AccessDenied", "Anonymous caller does not have access to this object."
            ) from exc
        if not hmac.compare_digest(signature, self._signature(method, object_path, expires)):
            raise StorageError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if expires < self._clock.now():
            raise StorageError(400, "ExpiredToken", "The provided token has expired.")

    def _signature(self, method: str, object_path: str, expires: int) -> str:
        message = f"{method}\n{object_path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
