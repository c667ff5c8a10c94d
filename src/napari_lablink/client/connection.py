"""Connections to servers: the contract every server kind keeps, ``connect``, ``open_image`` and
the connections the napari reader shares.

:class:`Server` is all a caller (the napari glue, a script) may rely on whatever the kind:
``get`` opens an image, ``browse`` lists objects, ``check`` is a cheap call that proves the
server answers and takes the credentials. Servers that take uploads are also :class:`Uploader`;
:func:`as_uploader` says so with a clear error when one does not.

A server connection owns its :class:`~napari_lablink.client.transport.Transport` and the
credentials it resolved. Images opened through it stay readable as long as it is open, because
their S3 grants are renewed through it; that is why napari's reader keeps one shared connection per
server (and credentials) for the session instead of one per image.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from napari_lablink.client import outages
from napari_lablink.client.config import Credentials, resolve_credentials
from napari_lablink.client.errors import (
    ClosedConnectionError,
    ConfigurationError,
    InvalidURIError,
    malformed_answers,
)
from napari_lablink.client.schemes import SCHEMES, Scheme
from napari_lablink.client.uri import RemoteURI, parse_server_uri, parse_uri

if TYPE_CHECKING:
    from napari_lablink.client.browse import Entry
    from napari_lablink.client.models import Channel, RemoteImage

__all__ = [
    "Server",
    "Uploader",
    "as_uploader",
    "connect",
    "open_image",
    "server_class",
    "shared_connection",
]


class Server:
    """Base of the per-protocol connection classes: the contract every server kind keeps.

    Subclasses implement :meth:`_open` (turn a URI of this server into a RemoteImage),
    :meth:`browse` and :meth:`_close`, and :meth:`check` where listing is not the cheapest
    probe. Use as ``with connect(...) as server`` or ``async with``.
    """

    scheme: ClassVar[str]

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        self.uri = replace(uri, kind="", object_id=None, fov=None, options=())
        self.options = uri.option_dict
        self.credentials = credentials
        self._closed = False

    @property
    def label(self) -> str:
        """How errors name this server."""
        return self.uri.server

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, ref: str | int | RemoteURI) -> RemoteImage:
        """Open an image of this server lazily (metadata only).

        ``ref`` is a full URI of this server, or the part after the server
        (``"image/7"``, ``"runs/LABEL/FOV1"``).
        """
        self._check_open()
        uri = self.resolve(ref)
        with malformed_answers(self.label, f"{uri.kind} {uri.object_id}" if uri.kind else None):
            image = self._open(uri)
        outages.source(self.label).reset()  # it answered: its layers may read again at once
        return image

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """``limit`` entries from ``offset`` of what matches ``query`` at the top level or, with
        ``parent`` (the URI of an entry that ``has_children``), inside it."""
        raise NotImplementedError

    def check(self) -> None:
        """Prove that the server answers and takes the credentials, cheaply.

        Some kinds connect lazily; a browser calls this right after connecting so that a wrong
        token or a dead server shows next to the server, not at the first search.
        """
        self._check_open()
        self.browse(limit=1)

    def resolve(self, ref: str | int | RemoteURI) -> RemoteURI:
        """The full URI of ``ref`` on this server (options of the connection included)."""
        if isinstance(ref, RemoteURI):
            uri = ref
        elif isinstance(ref, str) and "://" in ref:
            uri = parse_uri(ref)
        else:
            uri = parse_uri(f"{self.uri}/{str(ref).lstrip('/')}")
        if (uri.scheme, uri.server_key, uri.prefix) != (
            self.uri.scheme,
            self.uri.server_key,
            self.uri.prefix,
        ):
            raise InvalidURIError(
                f"{uri.without_options()} is not on this connection's server",
                server=self.label,
                hint="Open it with napari_lablink.open_image or a connection to its server",
            )
        options = {**self.options, **uri.option_dict}
        return replace(uri, options=tuple(options.items()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedConnectionError("The connection is closed", server=self.label)

    def _open(self, uri: RemoteURI) -> RemoteImage:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Server:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Server:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    async def aget(self, ref: str | int | RemoteURI) -> RemoteImage:
        """:meth:`get` without blocking the event loop."""
        return await asyncio.to_thread(self.get, ref)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.label} ({state})>"


@runtime_checkable
class Uploader(Protocol):
    """A server that takes uploads: an array in, the URI of the new object out.

    ``kind`` is the object kind to create (a URI kind of the server's scheme). The data streams
    chunk by chunk; ``progress(done, total)`` is called from worker threads and ``cancel`` stops
    the upload, in which case nothing is registered on the server.
    """

    def upload(
        self,
        data: object,
        *,
        name: str,
        kind: str = ...,
        dims: Sequence[str] | None = ...,
        tags: Sequence[str] = ...,
        channels: Sequence[str | Channel] = ...,
        pixel_size: Mapping[str, float] | None = ...,
        labels: bool = ...,
        rgb: bool = ...,
        pyramid: bool = ...,
        origins: Sequence[str] = ...,
        progress: Callable[[int, int], None] | None = ...,
        cancel: threading.Event | None = ...,
        s3: str | None = ...,
    ) -> str: ...


def as_uploader(server: Server) -> Uploader:
    """``server`` as an :class:`Uploader`, or a :class:`ConfigurationError` saying it is none."""
    if not isinstance(server, Uploader):
        name = SCHEMES[server.uri.scheme].display_name
        raise ConfigurationError(
            f"{name} servers take no uploads from napari-lablink",
            server=server.label,
            hint="Save to a server that takes uploads, such as mikro+http://HOST:PORT/image",
        )
    return server


def server_class(scheme: Scheme) -> type[Server]:
    """The Server subclass of ``scheme``, imported on first use (see the registry)."""
    module, _, name = SCHEMES[scheme].server_class.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Server)):
        raise TypeError(f"{SCHEMES[scheme].server_class} is not a Server class")
    return found


def connect(
    url: str | RemoteURI,
    *,
    token: str | None = None,
    email: str | None = None,
    password: str | None = None,
    s3: str | None = None,
    credentials: Credentials | None = None,
) -> Server:
    """Connect to the server ``url`` names (``mikro+http://127.0.0.1:8080``, or any image URI).

    Credentials not given here are looked up in the environment and the config file (see
    :mod:`napari_lablink.client.config`); ``credentials`` resolved already (a profile's) are used
    as they are. The connection is a context manager (``with`` and ``async with``); calls after
    ``close()`` raise :class:`ClosedConnectionError`.
    """
    uri = url if isinstance(url, RemoteURI) else _parse_connect_url(url)
    if credentials is None:
        credentials = resolve_credentials(
            uri.server_key, token=token, email=email, password=password, s3=s3 or uri.option("s3")
        )
    elif any(v is not None for v in (token, email, password, s3)):
        raise TypeError("connect() takes either credentials= or token/email/password/s3")
    return server_class(uri.scheme)(uri, credentials)


def _parse_connect_url(url: str) -> RemoteURI:
    try:
        return parse_uri(url).with_object(None)
    except InvalidURIError:
        return parse_server_uri(url)


class _SharedConnections:
    """One open connection per (server, credentials) for the napari session.

    Layers keep reading (and renewing S3 grants) long after they were opened, so the reader
    cannot close its connection; sharing one per server also shares its HTTP connection pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[tuple[object, ...], Server] = {}
        atexit.register(self.close_all)

    def get(self, uri: RemoteURI, **explicit: str | None) -> Server:
        # Keyed by the credentials in force now, so a changed token or config gets a new
        # connection instead of silently reusing the old one.
        credentials = resolve_credentials(uri.server_key, **explicit)
        key = (uri.scheme, uri.server_key, uri.prefix, uri.secure, credentials)
        with self._lock:
            server = self._servers.get(key)
            if server is None or server.closed:
                server = server_class(uri.scheme)(uri, credentials)
                self._servers[key] = server
            return server

    def close_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()


_shared = _SharedConnections()


def shared_connection(uri: str | RemoteURI, **credentials: str | None) -> Server:
    """The session's shared connection to the server of ``uri``."""
    parsed = uri if isinstance(uri, RemoteURI) else parse_uri(uri)
    credentials.setdefault("s3", parsed.option("s3"))
    return _shared.get(parsed, **credentials)


def open_image(uri: str | RemoteURI, **options: str | None) -> RemoteImage:
    """Open one image by URI, lazily, over the session's shared connection to its server.

    ``options`` are credentials (``token``, ``email``, ``password``) and connection options
    (``s3``), overriding the environment and the config file.
    """
    parsed = uri if isinstance(uri, RemoteURI) else parse_uri(uri)
    return shared_connection(parsed, **options).get(parsed)
