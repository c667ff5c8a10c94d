"""Who may do what on the S3 stand-in: the part of S3's behaviour moto does not enforce.

moto accepts any signature and any key, so a client that forgets its session token, keeps using
an expired grant or reads outside its grant would pass against bare moto and fail against a real
datalayer. The gateway puts this check in front of moto and answers with the error codes real S3
uses (`InvalidAccessKeyId` 403, `ExpiredToken` 400, `InvalidToken` 400, `AccessDenied` 403).
Signatures are not verified: the stand-in tests credential handling, not SigV4 arithmetic.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})

_V4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_V2_AUTHORIZATION = re.compile(r"^AWS ([^:\s]+):")
_DELETE_KEYS = re.compile(r"<Key>(.*?)</Key>", re.DOTALL)


@dataclass(frozen=True)
class S3Scope:
    """Part of a bucket a grant covers: ``prefix`` itself and everything below ``prefix/``.

    An empty prefix covers the whole bucket. Without ``write`` only reads are allowed.
    """

    bucket: str
    prefix: str = ""
    write: bool = False

    def covers_key(self, bucket: str, key: str) -> bool:
        if bucket != self.bucket:
            return False
        prefix = self.prefix.strip("/")
        return not prefix or key == prefix or key.startswith(prefix + "/")

    def covers_listing(self, bucket: str, list_prefix: str) -> bool:
        if bucket != self.bucket:
            return False
        prefix = self.prefix.strip("/")
        return not prefix or list_prefix == prefix or list_prefix.startswith(prefix + "/")


@dataclass
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float
    scope: tuple[S3Scope, ...] | None = None
    revoked: bool = False

    def expired(self, now: float) -> bool:
        return self.revoked or now >= self.expires_at


@dataclass(frozen=True)
class S3Error:
    """An S3 error answer (status, code, message, extra XML elements)."""

    status: int
    code: str
    message: str
    extra: tuple[tuple[str, str], ...] = ()

    def xml(self, resource: str) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.extra)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<Resource>{escape(resource)}</Resource>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        ).encode()


SLOW_DOWN = S3Error(503, "SlowDown", "Please reduce your request rate.")


def random_access_key(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(16))


def random_secret() -> str:
    return secrets.token_urlsafe(30)[:40]


@dataclass(frozen=True)
class RequestIdentity:
    """The credential part of one request."""

    access_key_id: str | None
    session_token: str | None

    @classmethod
    def parse(cls, headers: Mapping[str, str] | Message, query: str) -> RequestIdentity:
        """From the request's headers (the handler's message, or a plain dict) and query."""
        params = {k.lower(): v for k, v in parse_qs(query, keep_blank_values=True).items()}
        access_key = None
        authorization = headers.get("Authorization") or headers.get("authorization") or ""
        match = _V4_CREDENTIAL.search(authorization) or _V2_AUTHORIZATION.match(authorization)
        if match:
            access_key = match.group(1)
        elif "x-amz-credential" in params:
            access_key = params["x-amz-credential"][0].split("/", 1)[0]
        elif "awsaccesskeyid" in params:
            access_key = params["awsaccesskeyid"][0]
        token = headers.get("x-amz-security-token") or headers.get("X-Amz-Security-Token")
        if token is None and "x-amz-security-token" in params:
            token = params["x-amz-security-token"][0]
        return cls(access_key, token)


def split_path(path: str) -> tuple[str, str]:
    """Bucket and key of a path-style S3 request path (already URL-decoded)."""
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class CredentialRegistry:
    """The admin key plus every session credential issued, with expiry and revocation."""

    def __init__(self, admin_access_key_id: str) -> None:
        self.admin_access_key_id = admin_access_key_id
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionCredentials] = {}

    def add(self, credentials: SessionCredentials) -> None:
        with self._lock:
            self._sessions[credentials.access_key_id] = credentials

    def revoke_all(self) -> int:
        """Expire every issued credential now; returns how many were still valid."""
        now = time.time()
        with self._lock:
            live = [c for c in self._sessions.values() if not c.expired(now)]
            for credentials in self._sessions.values():
                credentials.revoked = True
        return len(live)

    def active_count(self) -> int:
        now = time.time()
        with self._lock:
            return sum(not c.expired(now) for c in self._sessions.values())

    def authorize(
        self, method: str, path: str, query: str, identity: RequestIdentity, body: bytes
    ) -> S3Error | None:
        """None when the request may go on to moto, else the error real S3 would answer."""
        if identity.access_key_id is None:
            return S3Error(403, "AccessDenied", "Access Denied")
        if identity.access_key_id == self.admin_access_key_id:
            return None
        with self._lock:
            session = self._sessions.get(identity.access_key_id)
        if session is None or identity.session_token is None:
            return S3Error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                (("AWSAccessKeyId", identity.access_key_id),),
            )
        if not secrets.compare_digest(identity.session_token, session.session_token):
            message = "The provided token is malformed or otherwise invalid."
            return S3Error(400, "InvalidToken", message)
        if session.expired(time.time()):
            return S3Error(400, "ExpiredToken", "The provided token has expired.")
        if session.scope is not None and not _in_scope(session.scope, method, path, query, body):
            return S3Error(403, "AccessDenied", "Access Denied")
        return None


def _in_scope(scopes: Sequence[S3Scope], method: str, path: str, query: str, body: bytes) -> bool:
    bucket, key = split_path(path)
    writable = [s for s in scopes if s.write] if method in WRITE_METHODS else list(scopes)
    if key:
        return any(s.covers_key(bucket, key) for s in writable)
    params = parse_qs(query, keep_blank_values=True)
    if method == "POST" and "delete" in params:
        keys = _DELETE_KEYS.findall(body.decode("utf-8", "replace"))
        return all(any(s.covers_key(bucket, k) for s in writable) for k in keys)
    if method in WRITE_METHODS:
        return False  # creating or deleting buckets is never part of a grant
    if method == "HEAD" or "location" in params:
        return any(s.bucket == bucket for s in writable)
    list_prefix = params.get("prefix", [""])[0]
    return any(s.covers_listing(bucket, list_prefix) for s in writable)
