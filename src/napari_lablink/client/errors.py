"""The errors users see: every error napari-lablink raises on purpose, in one hierarchy.

Every error names the server and, where there is one, the object it was about, and says what the
user can do. napari shows ``str(error)`` in a notification, so the text must stand on its own and
must never carry a secret: :func:`scrub` runs over every message built from server replies.

The hierarchy (a ``ValueError`` too where the fault is in a value the caller passed)::

    LablinkError
    ├── ConfigurationError          something to set up or pass differently
    │   └── InvalidURIError         (also ValueError) a URI of no known form
    ├── AuthenticationError         the server refused the credentials
    ├── NotFoundError               no such object
    ├── AmbiguousImageError         a tracker run and FOV name several images
    ├── ServerUnavailableError      unreachable, even after retrying
    │   └── LostAnswerError         the request went out, its answer never came back
    ├── ServerError                 the server failed, not our request
    │   └── ServerFailedError       it answered with a 5xx status, even after retrying
    ├── ProtocolError               an answer that breaks the server's protocol
    ├── ChannelDataError            (also ValueError) no valid tracker channel plane
    ├── ClosedConnectionError       a call after close()
    └── UploadError                 an upload failed
        └── UploadCancelledError    the user cancelled it

Any error an upload ends with says whether it left anything on the server: ``registered`` is
None for errors that are not about an upload, ``()`` when nothing was registered, and otherwise
the ids that are still registered (a roll-back that could not finish), also named in the text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "AmbiguousArrayError",
    "AmbiguousImageError",
    "AuthenticationError",
    "ChannelDataError",
    "ClosedConnectionError",
    "ConfigurationError",
    "InvalidURIError",
    "LablinkError",
    "LostAnswerError",
    "NotFoundError",
    "ProtocolError",
    "ServerError",
    "ServerFailedError",
    "ServerUnavailableError",
    "UploadCancelledError",
    "UploadError",
    "malformed_answers",
    "mark_upload_failure",
    "plain_text",
    "scrub",
]


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of a secret in ``text`` by ``***``.

    Server replies sometimes echo what they were sent (a bad token, a signed URL); the messages we
    build from them go to users, logs and bug reports.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in _echoed_forms(secret):
                text = text.replace(form, "***")
    return text


def _echoed_forms(secret: str) -> list[str]:
    """The secret as a server may echo it: as is, and escaped inside a JSON string (once or
    twice, as when a JSON error body is itself quoted), longest first so no part survives."""
    forms = {secret}
    escaped = secret
    for _ in range(2):
        escaped = json.dumps(escaped)[1:-1]
        forms.add(escaped)
    return sorted(forms, key=len, reverse=True)


def cut(text: str, limit: int = 300) -> str:
    """``text`` shortened to about ``limit`` characters at a word boundary, marked with "...".

    Server replies can be huge; messages must stay readable and never end mid-word.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + " ..."


def plain_text(value: object) -> str:
    """A server's reply (a JSON string, list or object) as words, never a Python repr:
    ``{"channel": ["Wrong size"]}`` -> ``"channel: Wrong size"``."""
    if isinstance(value, dict):
        return "; ".join(
            plain_text(v)
            if k in ("detail", "message", "non_field_errors")
            else f"{k}: {plain_text(v)}"
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return "; ".join(plain_text(v) for v in value)
    return "" if value is None else str(value).strip()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


class LablinkError(Exception):
    """Base of every error napari-lablink raises on purpose.

    ``server`` is the server's address as the user knows it, ``obj`` the thing that was asked for
    (an image id, a path) and ``hint`` what to do about it.
    """

    default_hint = ""
    #: For upload failures: the ids still registered (``()``: nothing); None otherwise.
    registered: tuple[str, ...] | None = None

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        obj: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.server = server
        self.obj = obj
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        """What happened and what to do first (a collapsed notification shows only that much),
        then where: the server and the object, in brackets at the end."""
        text = _sentence(self.message)
        if self.hint:
            text = f"{text} {_sentence(self.hint)}"
        where = []
        if self.server:
            where.append(f"server {self.server}")
        if self.obj:
            where.append(str(self.obj))
        if where:
            text = f"{text} [{', '.join(where)}]"
        return text


class ConfigurationError(LablinkError):
    """Something the user has to configure is missing or wrong (S3 endpoint, credentials, ...)."""


class InvalidURIError(ConfigurationError, ValueError):
    """A URI that does not follow one of the forms napari-lablink understands."""


class AmbiguousArrayError(ConfigurationError, ValueError):
    """Data whose axes cannot be what the upload would make of them (e.g. RGB taken as planes)."""

    default_hint = "Say what the axes are: pass rgb=True for colour images, or dims=(...)"


class AuthenticationError(LablinkError):
    """The server refused our credentials."""

    default_hint = (
        "Check the token or login (argument, LABLINK_TOKEN, or the servers.toml config file)"
    )


class NotFoundError(LablinkError):
    """The server has no such object."""

    default_hint = "Check the id or path; the object may have been deleted"


class AmbiguousImageError(LablinkError):
    """A tracker run label (or name) and FOV match more than one image."""

    default_hint = "Open the image by id (mibi://HOST/images/ID) or use the run's unique label"


class ServerUnavailableError(LablinkError):
    """The server could not be reached, even after retrying."""

    default_hint = "Check that the server is running and reachable, then try again"


class LostAnswerError(ServerUnavailableError):
    """A request that creates something went out, but its answer was lost (the connection
    dropped or timed out while waiting): the server may or may not have acted on it."""


class ServerError(LablinkError):
    """The server answered with an error that is not ours to fix."""


class ServerFailedError(ServerError):
    """The server answered with an error status of its own (5xx) even after retrying: it is
    up but cannot serve, which to a reader is as good as down."""


class ProtocolError(LablinkError):
    """The server answered something that does not follow its protocol."""

    default_hint = "The server may be of an unsupported version or not the kind the URI names"


class ChannelDataError(LablinkError, ValueError):
    """Data that cannot be a tracker channel (wrong shape, values a 16-bit PNG cannot hold)."""

    default_hint = "A channel is one 2-D grayscale plane: counts 0..65535 (PNG) or floats (TIFF)"


class ClosedConnectionError(LablinkError):
    """A call on a connection that was already closed."""

    default_hint = "Open a new connection with napari_lablink.connect(...)"


class UploadError(LablinkError):
    """An upload failed; ``registered`` says what, if anything, it left on the server."""

    registered: tuple[str, ...] | None = ()


class UploadCancelledError(UploadError):
    """The user cancelled the upload; nothing was registered on the server."""


def mark_upload_failure(error: LablinkError, registered: Sequence[str] = ()) -> LablinkError:
    """``error`` (of whatever type) as the end of an upload: it records what stayed registered
    and its text says so, so the user knows whether to look for a half-made object."""
    error.registered = tuple(registered)
    if registered:
        error.hint = (
            f"Still registered after a failed clean-up: {', '.join(registered)}; "
            "delete them on the server, then try again"
        )
    elif "Nothing was registered" not in error.hint:
        note = "Nothing was registered"
        error.hint = f"{note}. {error.hint}" if error.hint else note
    error.args = (error._compose(),)
    return error


@contextlib.contextmanager
def malformed_answers(server: str, obj: str | None = None) -> Iterator[None]:
    """Turn the Python errors of reading a malformed answer (a list where an object belongs, a
    missing key, text where a number belongs) into a :class:`ProtocolError` the user can act on.

    Answers are read field by field deep inside the protocol packages; a server of another kind
    or a broken proxy must not surface as an ``AttributeError`` from there.
    """
    try:
        yield
    except LablinkError:
        raise
    except (AttributeError, KeyError, TypeError, IndexError) as exc:
        raise ProtocolError(
            f"The server's answer is not shaped as its protocol says ({type(exc).__name__})",
            server=server,
            obj=obj,
        ) from exc
