"""Parsing and printing of the remote URIs napari-lablink opens and uploads to.

A URI names a server (scheme, host, port, path prefix) and an object on it; docs/architecture.md
lists the forms. ``SCHEME+http`` selects plain HTTP for local servers, the bare scheme means HTTPS.
Parsing and printing round-trip: ``parse_uri(str(uri)) == uri`` for every parsed URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode

from napari_lablink.client.errors import InvalidURIError

__all__ = ["EXAMPLES", "SCHEMES", "RemoteURI", "is_remote_uri", "parse_server_uri", "parse_uri"]

Scheme = Literal["mikro", "mibi", "pims"]
SCHEMES: tuple[Scheme, ...] = ("mikro", "mibi", "pims")

#: One valid example per object kind: the hint of every parse error shows the relevant ones.
EXAMPLES: dict[Scheme, tuple[str, ...]] = {
    "mikro": (
        "mikro://mikro.example.org/representation/42",
        "mikro+http://127.0.0.1:8080/mikro/image/7?s3=http://127.0.0.1:9000",
    ),
    "mibi": (
        "mibi://backend.mibitracker.example.org/images/1234",
        "mibi://backend.mibitracker.example.org/runs/20180122_1242_1243/FOV1",
    ),
    "pims": ("pims://pims.example.org/upload-1/slide.ome.tiff",),
}

#: The object kinds each scheme knows, and how many path segments follow the kind's name.
#: ``None`` as the count means "upload target": the kind without an object, e.g. ``.../image``.
_KINDS: dict[Scheme, dict[str, tuple[int, ...]]] = {
    "mikro": {"representation": (0, 1), "image": (0, 1)},
    "mibi": {"images": (1,), "runs": (1, 2)},
}

_SCHEME_RE = re.compile(r"^(?P<scheme>[a-z]+)(?:\+(?P<transport>https?))?://(?P<rest>.*)$", re.S)
_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")
#: Characters left as they are in printed path segments (RFC 3986 unreserved plus a few safe ones).
_SAFE = "-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class RemoteURI:
    """A parsed remote URI.

    ``kind`` is the object kind as written in the URI (``representation``, ``image``, ``images``,
    ``runs``, or ``file`` for PIMS), ``object_id`` the object (a mikro or tracker id, a run label,
    or a PIMS file path), ``fov`` the field of view of a tracker run URI. ``object_id`` is ``None``
    for upload targets such as ``mikro://host/image``.
    """

    scheme: Scheme
    host: str
    kind: str
    object_id: str | None = None
    fov: str | None = None
    port: int | None = None
    prefix: str = ""
    secure: bool = True
    options: tuple[tuple[str, str], ...] = field(default=())

    @property
    def base_url(self) -> str:
        """The HTTP(S) URL of the server, prefix included, without a trailing slash."""
        return f"{'https' if self.secure else 'http'}://{self.authority}{self.prefix}"

    @property
    def authority(self) -> str:
        """``host[:port]`` exactly as written."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def server_key(self) -> str:
        """``host:port`` with the default port filled in: the key of the config file's tables."""
        port = self.port if self.port is not None else (443 if self.secure else 80)
        return f"{self.host}:{port}"

    @property
    def server(self) -> str:
        """The server part of the URI, as shown to users (``mikro+http://host:port/prefix``)."""
        return f"{self.scheme}{'' if self.secure else '+http'}://{self.authority}{self.prefix}"

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)

    def option(self, name: str) -> str | None:
        return self.option_dict.get(name)

    def with_object(self, object_id: str | None, fov: str | None = None) -> RemoteURI:
        return replace(self, object_id=object_id, fov=fov)

    def without_options(self) -> RemoteURI:
        return replace(self, options=())

    def __str__(self) -> str:
        segments = [] if self.scheme == "pims" or not self.kind else [self.kind]
        if self.object_id is not None:
            if self.scheme == "pims":
                segments.extend(self.object_id.split("/"))
            else:
                segments.append(self.object_id)
        if self.fov is not None:
            segments.append(self.fov)
        path = "/".join(quote(s, safe=_SAFE) for s in segments)
        text = f"{self.server}/{path}" if path else self.server
        if self.options:
            text += "?" + urlencode(self.options, safe=":/")
        return text


def is_remote_uri(text: object) -> bool:
    """Whether ``text`` looks like one of our URIs (cheap: the reader is asked about every path)."""
    if not isinstance(text, str):
        return False
    match = _SCHEME_RE.match(text)
    return bool(match) and match.group("scheme") in SCHEMES


def parse_server_uri(text: str) -> RemoteURI:
    """Parse a URI that names only a server (``mikro+http://host:port/prefix``).

    The whole path becomes the prefix; the result has ``kind == ""`` and no object.
    """
    return parse_uri(text, _server_only=True)


def parse_uri(text: str, *, _server_only: bool = False) -> RemoteURI:
    """Parse ``text`` into a :class:`RemoteURI`; malformed input raises :class:`InvalidURIError`.

    The message says what is wrong and shows valid examples of the scheme that was meant.
    """
    if not isinstance(text, str):
        raise InvalidURIError(f"A URI must be a string, not {type(text).__name__}")
    text = text.strip()
    match = _SCHEME_RE.match(text)
    if not match:
        _fail(text, "it does not start with SCHEME:// (mikro, mibi or pims)", None)
    scheme = match.group("scheme")
    if scheme not in SCHEMES:
        _fail(text, f"unknown scheme {scheme!r}; known schemes are mikro, mibi and pims", None)
    transport = match.group("transport") or "https"
    rest, _, query = match.group("rest").partition("?")
    rest = rest.split("#", 1)[0]
    authority, _, path = rest.partition("/")
    host, port = _parse_authority(text, authority, scheme)
    options = tuple(parse_qsl(query, keep_blank_values=True))
    segments = [unquote(s) for s in path.split("/")]
    while segments and segments[-1] == "":
        segments.pop()
    if any(s == "" for s in segments):
        _fail(text, "the path has an empty segment (//)", scheme)
    common = dict(host=host, port=port, secure=transport == "https", options=options)
    if _server_only:
        prefix = "".join("/" + quote(s, safe=_SAFE) for s in segments)
        return RemoteURI(scheme=scheme, kind="", prefix=prefix, **common)
    if scheme == "pims":
        if not segments:
            _fail(text, "the path of the image file on the PIMS server is missing", scheme)
        return RemoteURI(scheme=scheme, kind="file", object_id="/".join(segments), **common)
    return _parse_object_path(text, scheme, segments, common)


def _parse_authority(text: str, authority: str, scheme: str) -> tuple[str, int | None]:
    if "@" in authority:
        _fail(
            text, "credentials in the URI are not allowed; use a token or the config file", scheme
        )
    host, port_text = authority, None
    if authority.startswith("["):
        end = authority.find("]")
        host, tail = authority[: end + 1], authority[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                _fail(text, f"unexpected {tail!r} after the host", scheme)
            port_text = tail[1:]
    elif ":" in authority:
        host, port_text = authority.rsplit(":", 1)
    if not host or not _HOST_RE.match(host):
        _fail(text, f"{host!r} is not a valid host name", scheme)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        _fail(text, f"the port {port_text!r} is not a number between 1 and 65535", scheme)
    return host, int(port_text)


def _parse_object_path(text: str, scheme: Scheme, segments: list[str], common: dict) -> RemoteURI:
    kinds = _KINDS[scheme]
    # The object part is at the end; everything before the last kind name is the server's prefix.
    for position in range(len(segments) - 1, -1, -1):
        kind = segments[position]
        tail = segments[position + 1 :]
        if kind in kinds and len(tail) in kinds[kind]:
            prefix = "".join("/" + quote(s, safe=_SAFE) for s in segments[:position])
            object_id = tail[0] if tail else None
            fov = tail[1] if len(tail) > 1 else None
            return RemoteURI(
                scheme=scheme, kind=kind, object_id=object_id, fov=fov, prefix=prefix, **common
            )
    names = " or ".join(f"/{k}/..." for k in kinds)
    _fail(text, f"the path must end in {names}", scheme)
    raise AssertionError  # unreachable: _fail raises


def _fail(text: str, reason: str, scheme: str | None) -> None:
    # Only the part before the query is echoed: a query string may carry options we do not want
    # repeated in logs and notifications.
    shown = text.split("?", 1)[0]
    examples = EXAMPLES.get(scheme) if scheme else None  # type: ignore[arg-type]
    if examples is None:
        examples = tuple(e for group in EXAMPLES.values() for e in group[:1])
    raise InvalidURIError(
        f"{shown!r} is not a valid napari-lablink URI: {reason}",
        hint="Valid examples: " + ", ".join(examples),
    )
