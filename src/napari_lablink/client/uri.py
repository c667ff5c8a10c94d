"""Parsing and printing of the remote URIs napari-lablink opens and uploads to.

A URI names a server (scheme, host, port, path prefix) and an object on it; the schemes, their
object kinds and examples are those of :mod:`napari_lablink.client.schemes`. ``SCHEME+http``
selects plain HTTP for local servers, the bare scheme means HTTPS.
Parsing and printing round-trip: ``parse_uri(str(uri)) == uri`` for every parsed URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, unquote, urlencode

from napari_lablink.client.errors import ConfigurationError, InvalidURIError, cut
from napari_lablink.client.schemes import SCHEMES, Scheme, SchemeInfo, scheme_info

__all__ = ["RemoteURI", "is_remote_uri", "parse_server_uri", "parse_uri"]

_SCHEME_RE = re.compile(r"^(?P<scheme>[a-z]+)(?:\+(?P<transport>https?))?://(?P<rest>.*)$", re.S)
_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")
#: Characters left as they are in printed path segments (RFC 3986 unreserved plus a few safe ones).
_SAFE = "-._~!$&'()*+,;=:@"
#: Longer host names are not DNS names (253 characters at most).
MAX_HOST = 253
#: Object ids (not file paths) longer than this are not ids any server hands out.
MAX_ID = 200


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
        by_path = SCHEMES[self.scheme].path_kind is not None
        segments = [] if by_path or not self.kind else [self.kind]
        if self.object_id is not None:
            if by_path:
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
    return match is not None and scheme_info(match.group("scheme")) is not None


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
        _fail(text, f"it does not start with SCHEME:// ({_known()})", None)
    info = scheme_info(match.group("scheme"))
    if info is None:
        _fail(text, f"unknown scheme {match.group('scheme')!r}; known schemes are {_known()}", None)
    scheme = info.scheme
    transport = match.group("transport") or "https"
    rest, _, query = match.group("rest").partition("?")
    rest = rest.split("#", 1)[0]
    authority, _, path = rest.partition("/")
    host, port = _parse_authority(text, authority, scheme)
    options = tuple(parse_qsl(query, keep_blank_values=True))
    for name, value in options:
        if name == "s3" and value:
            try:
                check_s3_endpoint(value, where="The s3 option")
            except ConfigurationError as exc:
                _fail(text, exc.message[0].lower() + exc.message[1:], scheme)
    segments = [unquote(s) for s in path.split("/")]
    while segments and segments[-1] == "":
        segments.pop()
    if any(s == "" for s in segments):
        _fail(text, "the path has an empty segment (//)", scheme)
    common: dict[str, Any] = dict(
        host=host, port=port, secure=transport == "https", options=options
    )
    if _server_only:
        prefix = "".join("/" + quote(s, safe=_SAFE) for s in segments)
        return RemoteURI(scheme=scheme, kind="", prefix=prefix, **common)
    if info.path_kind is not None:
        if not segments:
            _fail(
                text,
                f"the path of the image file on the {info.display_name} server is missing",
                scheme,
            )
        return RemoteURI(scheme=scheme, kind=info.path_kind, object_id="/".join(segments), **common)
    return _parse_object_path(text, info, segments, common)


def _parse_authority(text: str, authority: str, scheme: Scheme) -> tuple[str, int | None]:
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
    if len(host) > MAX_HOST:
        _fail(text, f"the host name is {len(host)} characters long, more than {MAX_HOST}", scheme)
    if not host or not _HOST_RE.match(host):
        _fail(text, f"{cut(host, 60)!r} is not a valid host name", scheme)
    if port_text is None:
        return host, None
    if not _ascii_number(port_text) or not 0 < int(port_text) < 65536:
        _fail(
            text,
            f"the port {cut(port_text, 20)!r} is not a number between 1 and 65535 (digits 0-9)",
            scheme,
        )
    return host, int(port_text)


def _ascii_number(text: str) -> bool:
    """Digits 0-9 only: Python's int() also reads Arabic-Indic or full-width digits, which would
    make an Arabic-Indic one open image 1 and a full-width 80 mean port 80."""
    return text.isascii() and text.isdigit()


def check_s3_endpoint(value: str, *, where: str = "The S3 endpoint") -> str:
    """``value`` if it is an endpoint URL (``http(s)://host[:port]``), else a
    :class:`ConfigurationError`: the S3 client would otherwise fail deep inside (a Rust panic)."""
    from urllib.parse import urlsplit

    text = value.strip()
    parts = urlsplit(text) if "://" in text else None
    reason = None
    if parts is None or parts.scheme not in ("http", "https"):
        reason = "it does not start with http:// or https://"
    elif not parts.hostname or len(parts.hostname) > MAX_HOST:
        reason = "it names no valid host"
    else:
        port = parts.netloc.rpartition("]")[2].rpartition(":")[2] if ":" in parts.netloc else ""
        if port and (not _ascii_number(port) or not 0 < int(port) < 65536):
            reason = f"the port {cut(port, 20)!r} is not a number between 1 and 65535"
    if reason is not None:
        raise ConfigurationError(
            f"{where} {cut(text, 80)!r} is not an endpoint URL: {reason}",
            hint="Write it as http://HOST:PORT or https://HOST, e.g. ?s3=http://127.0.0.1:9000",
        )
    return text


def _known() -> str:
    names = list(SCHEMES)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _parse_object_path(
    text: str, info: SchemeInfo, segments: list[str], common: dict[str, Any]
) -> RemoteURI:
    scheme, kinds = info.scheme, info.kinds
    # The object part is at the end; everything before the last kind name is the server's prefix.
    for position in range(len(segments) - 1, -1, -1):
        kind = segments[position]
        tail = segments[position + 1 :]
        if kind in kinds and len(tail) in kinds[kind]:
            prefix = "".join("/" + quote(s, safe=_SAFE) for s in segments[:position])
            object_id = tail[0] if tail else None
            fov = tail[1] if len(tail) > 1 else None
            if object_id is not None:
                _check_id(text, object_id, scheme)
            return RemoteURI(
                scheme=scheme, kind=kind, object_id=object_id, fov=fov, prefix=prefix, **common
            )
    names = " or ".join(f"/{k}/..." for k in kinds)
    _fail(text, f"the path must end in {names}", scheme)


def _check_id(text: str, object_id: str, scheme: Scheme) -> None:
    if len(object_id) > MAX_ID:
        _fail(text, f"the id is {len(object_id)} characters long, more than {MAX_ID}", scheme)
    if object_id.isdigit() and not object_id.isascii():
        _fail(text, "the id must be written with the digits 0-9", scheme)


def _fail(text: str, reason: str, scheme: Scheme | None) -> NoReturn:
    # Only the part before the query is echoed: a query string may carry options we do not want
    # repeated in logs and notifications. Long input is cut: the message must stay readable.
    shown = cut(text.split("?", 1)[0], 120)
    if scheme is not None:
        examples = SCHEMES[scheme].examples
    else:
        examples = tuple(info.examples[0] for info in SCHEMES.values())
    raise InvalidURIError(
        f"{shown!r} is not a valid napari-lablink URI: {reason}",
        hint="Valid examples: " + ", ".join(examples),
    )
