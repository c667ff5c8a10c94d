"""A stand-in MIBItracker: every route of ``docs/protocols/mibitracker.md``, over HTTP on loopback.

Written from the protocol document and the reference client's documentation (seed 001), never
from the plugin's client, so that the two check each other. It behaves like the real backend in
what clients depend on: ``JWT <token>`` auth with expiring, refreshable tokens; Django REST
framework's error bodies and paging (``paging=no`` gives a bare list, otherwise
``{count, next, previous, results}`` pages of 10); signed storage URLs on the same server that
expire, carry their credentials in the query and ignore any ``Authorization`` header;
16-bit PNG channels; ``summed_image.tiff`` downloads; MIBItiff uploads processed into channels.

For tests it adds a request log (method, path, whether an ``Authorization`` header came, status),
fault injection (:class:`napari_lablink.testing.faults.Faults`: 503s, dropped connections, slow
replies; seeded or "fail the next N"), lost responses (processed, then the connection dropped) and
a clock to expire tokens and URLs without waiting.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import numpy as np

from napari_lablink.testing._http import LoopbackHTTPServer, QuietHandler, ServerThread, Service
from napari_lablink.testing.faults import Faults
from napari_lablink.testing.tracker.auth import (
    Clock,
    StorageError,
    TokenError,
    TokenIssuer,
    UrlSigner,
)
from napari_lablink.testing.tracker.files import BadFile, Fov, Part, build_run_xml, parse_multipart
from napari_lablink.testing.tracker.state import ApiError, Channel, Image, TrackerState

__all__ = ["LoggedRequest", "TrackerStandIn"]

DEFAULT_EMAIL = "researcher@lablink.test"
_HTML_404 = b"<h1>Not Found</h1><p>The requested resource was not found on this server.</p>"
_STORAGE = "/storage/"


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it. Only whether a token came is kept, never the token."""

    method: str
    path: str
    authorization: bool
    status: int | None
    """None when the connection was dropped without an answer."""

    @property
    def signed(self) -> bool:
        """Whether this went to a signed storage URL (which must never get the tracker token)."""
        return self.path.startswith(_STORAGE)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    """Case-insensitive, as HTTP header names are (clients send ``content-type`` too)."""
    body: bytes

    def content(self) -> tuple[Any, dict[str, Part]]:
        """Decoded body: JSON, or multipart/urlencoded form fields plus the uploaded files."""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                return json.loads(self.body or b"null"), {}
            except ValueError as exc:
                raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from exc
        if content_type.startswith("multipart/form-data"):
            try:
                parts = parse_multipart(self.body, content_type)
            except BadFile as exc:
                raise ApiError(400, {"detail": str(exc)}) from exc
            fields = {n: p.text for n, p in parts.items() if p.filename is None}
            return fields, {n: p for n, p in parts.items() if p.filename is not None}
        if content_type.startswith("application/x-www-form-urlencoded"):
            pairs = parse_qs(self.body.decode(), keep_blank_values=True)
            return {key: values[-1] for key, values in pairs.items()}, {}
        if not self.body:
            return {}, {}
        kind = content_type.split(";")[0] or "none"
        raise ApiError(415, {"detail": f'Unsupported media type "{kind}" in request.'})

    def json_object(self) -> dict[str, Any]:
        body, _ = self.content()
        if not isinstance(body, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return body

    def form(self) -> tuple[dict[str, str], dict[str, Part]]:
        if not self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            kind = self.headers.get("Content-Type", "none").split(";")[0]
            raise ApiError(415, {"detail": f'Unsupported media type "{kind}" in request.'})
        fields, files = self.content()
        return fields, files


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), "application/json", headers or {})


def _storage_error(error: StorageError) -> _Response:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{error.code}</Code><Message>{error.message}</Message></Error>"
    )
    return _Response(error.status, body.encode(), "application/xml")


def _int_param(query: Mapping[str, str], name: str) -> int:
    if name not in query or query[name] == "":
        raise ApiError(400, {name: ["This field is required."]})
    try:
        return int(query[name])
    except ValueError:
        raise ApiError(400, {name: ["A valid integer is required."]}) from None


Handler = Callable[..., _Response]


class _Api:
    """The tracker's routes: request in, response out, no sockets (the handler does those)."""

    def __init__(self, standin: TrackerStandIn) -> None:
        self.standin = standin
        self.state = standin.state
        self.routes: list[tuple[str, re.Pattern[str], bool, Handler]] = [
            ("POST", re.compile(r"/api-token-auth/"), False, self.login),
            ("POST", re.compile(r"/api-token-refresh/"), False, self.refresh),
            ("GET", re.compile(r"/"), True, self.root),
            ("GET", re.compile(r"/images/"), True, self.list_images),
            ("GET", re.compile(r"/images/(\d+)/"), True, self.get_image),
            ("PUT", re.compile(r"/images/(\d+)/"), True, self.put_image),
            ("GET", re.compile(r"/images/(\d+)/conjugates/"), True, self.conjugates),
            ("GET", re.compile(r"/images/(\d+)/channel_url/"), True, self.channel_url),
            ("POST", re.compile(r"/images/(\d+)/upload_channel/"), True, self.upload_channel),
            ("GET", re.compile(r"/download/"), True, self.download),
            ("GET", re.compile(r"/upload_mibitiff/sign_tiff_url/"), True, self.sign_tiff_url),
            ("POST", re.compile(r"/upload_mibitiff/"), True, self.upload_mibitiff),
            ("GET", re.compile(r"/runs/"), True, self.list_runs),
            ("POST", re.compile(r"/runs/"), True, self.create_run),
            ("GET", re.compile(r"/runs/(\d+)/"), True, self.get_run),
            ("DELETE", re.compile(r"/runs/(\d+)/"), True, self.delete_run),
            ("GET", re.compile(r"/imagesets/"), True, self.list_imagesets),
            ("POST", re.compile(r"/imagesets/"), True, self.create_imageset),
            ("GET", re.compile(r"/imagesets/(\d+)/"), True, self.get_imageset),
            ("DELETE", re.compile(r"/imagesets/(\d+)/"), True, self.delete_imageset),
        ]

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: _Request) -> _Response:
        """Storage paths are served at the origin; API paths below the prefix."""
        prefix = self.standin.prefix
        try:
            if request.path.startswith(_STORAGE):
                return self.storage(request)
            if prefix and not request.path.startswith(prefix + "/"):
                return _Response(404, _HTML_404, "text/html")
            return self._route(replace(request, path=request.path[len(prefix) :]))
        except ApiError as error:
            headers = {"WWW-Authenticate": 'JWT realm="api"'} if error.status == 401 else None
            return _json(error.status, error.payload, headers)

    def _route(self, request: _Request) -> _Response:
        matches = [
            (method, auth, handler, match)
            for method, pattern, auth, handler in self.routes
            if (match := pattern.fullmatch(request.path))
        ]
        if not matches:
            slashed = request.path + "/"
            if not request.path.endswith("/") and any(
                p.fullmatch(slashed) for _, p, _, _ in self.routes
            ):
                query = f"?{urlencode(request.query)}" if request.query else ""
                location = f"{self.standin.base_url}{slashed}{query}"
                return _Response(301, b"", "text/html", {"Location": location})
            return _Response(404, _HTML_404, "text/html")
        if request.method == "OPTIONS" or any(auth for _, auth, _, _ in matches):
            self.authenticate(request)
        if request.method == "OPTIONS":
            allowed = sorted({m for m, *_ in matches} | {"OPTIONS"})
            return _json(
                200,
                {"name": "Api Root" if request.path == "/" else request.path, "allowed": allowed},
                {"Allow": ", ".join(allowed)},
            )
        for method, _, handler, match in matches:
            if method == request.method:
                return handler(request, *match.groups())
        raise ApiError(405, {"detail": f'Method "{request.method}" not allowed.'})

    def authenticate(self, request: _Request) -> None:
        parts = request.headers.get("Authorization", "").split()
        if not parts or parts[0].lower() != "jwt":
            raise ApiError(401, {"detail": "Authentication credentials were not provided."})
        if len(parts) == 1:
            raise ApiError(
                401, {"detail": "Invalid Authorization header. No credentials provided."}
            )
        if len(parts) > 2:
            raise ApiError(
                401,
                {
                    "detail": "Invalid Authorization header. Credentials string should not "
                    "contain spaces."
                },
            )
        try:
            self.standin.tokens.verify(parts[1])
        except TokenError as error:
            raise ApiError(401, {"detail": str(error)}) from None

    def _page(self, request: _Request, items: Sequence[Any]) -> _Response:
        if request.query.get("paging") == "no":
            return _json(200, list(items))
        limit = _positive(request.query.get("limit"), self.standin.page_size)
        offset = _positive(request.query.get("offset"), 0, minimum=0)

        def link(new_offset: int) -> str:
            query = {k: v for k, v in request.query.items() if k not in ("limit", "offset")}
            query["limit"] = str(limit)
            if new_offset > 0:
                query["offset"] = str(new_offset)
            return f"{self.standin.base_url}{request.path}?{urlencode(query)}"

        return _json(
            200,
            {
                "count": len(items),
                "next": link(offset + limit) if offset + limit < len(items) else None,
                "previous": link(max(0, offset - limit)) if offset > 0 else None,
                "results": list(items[offset : offset + limit]),
            },
        )

    # -- session ---------------------------------------------------------------------------

    def login(self, request: _Request) -> _Response:
        body = request.json_object() if request.body else {}
        for name in ("email", "password"):
            if not body.get(name):
                raise ApiError(400, {name: ["This field is required."]})
        standin = self.standin
        if body["email"] != standin.email or body["password"] != standin.password:
            raise ApiError(
                400, {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        return _json(200, {"token": standin.issue_token()})

    def refresh(self, request: _Request) -> _Response:
        body = request.json_object() if request.body else {}
        if not body.get("token"):
            raise ApiError(400, {"token": ["This field is required."]})
        try:
            token = self.standin.tokens.refresh(str(body["token"]))
        except TokenError as error:
            raise ApiError(400, {"non_field_errors": [str(error)]}) from None
        return _json(200, {"token": token})

    def root(self, request: _Request) -> _Response:
        base = self.standin.base_url
        return _json(200, {name: f"{base}/{name}/" for name in ("images", "runs", "imagesets")})

    # -- images ----------------------------------------------------------------------------

    def list_images(self, request: _Request) -> _Response:
        with self.state.lock:
            found = self.state.find_images(request.query)
            return self._page(request, [self.state.image_json(image) for image in found])

    def get_image(self, request: _Request, image_id: str) -> _Response:
        with self.state.lock:
            return _json(200, self.state.image_json(self.state.image(int(image_id))))

    def put_image(self, request: _Request, image_id: str) -> _Response:
        fields, files = request.content()
        if not isinstance(fields, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        with self.state.lock:
            image = self.state.update_image(int(image_id), fields, files.get("attachment"))
            return _json(200, self.state.image_json(image))

    def conjugates(self, request: _Request, image_id: str) -> _Response:
        with self.state.lock:
            return self._page(request, self.state.conjugates(self.state.image(int(image_id))))

    def channel_url(self, request: _Request, image_id: str) -> _Response:
        name = request.query.get("channel")
        if not name:
            raise ApiError(400, {"channel": ["This field is required."]})
        with self.state.lock:
            image = self.state.image(int(image_id))
            if name not in image.channels:
                raise ApiError(404, {"detail": f"Channel {name!r} not found in image {image.id}."})
            path = self.state.channel_path(image, name)
        return _json(200, {"url": self.standin.signer.sign(self.standin.origin, "GET", path)})

    def upload_channel(self, request: _Request, image_id: str) -> _Response:
        _, files = request.form()
        image = self.state.upload_channel(int(image_id), files.get("attachment"))
        with self.state.lock:
            return _json(200, self.state.image_json(image))

    # -- files -----------------------------------------------------------------------------

    def download(self, request: _Request) -> _Response:
        path = request.query.get("path")
        if not path:
            raise ApiError(400, {"path": ["This field is required."]})
        if self.state.storage_object(path) is None:
            raise ApiError(404, {"detail": f"No file at path {path!r}."})
        return _json(200, {"url": self.standin.signer.sign(self.standin.origin, "GET", path)})

    def sign_tiff_url(self, request: _Request) -> _Response:
        run = self.state.run(_int_param(request.query, "run_id"))
        location = self.state.new_upload_location(run)
        url = self.standin.signer.sign(self.standin.origin, "PUT", location)
        return _json(200, {"url": url, "location": location})

    def upload_mibitiff(self, request: _Request) -> _Response:
        body = request.json_object()
        run_id = _int_param({k: str(v) for k, v in body.items() if v is not None}, "run_id")
        location = body.get("location")
        if not location:
            raise ApiError(400, {"location": ["This field is required."]})
        stored = (
            self.state.files.get(str(location)) if str(location).startswith("uploads/") else None
        )
        if stored is None:
            raise ApiError(400, {"location": ["No file has been uploaded to this location."]})
        image = self.state.process_mibitiff(run_id, stored[0])
        return _json(
            200,
            {"status": "processed", "location": location, "run_id": run_id, "image_id": image.id},
        )

    def storage(self, request: _Request) -> _Response:
        """Signed URLs: credentials in the query; an Authorization header is ignored."""
        object_path = request.path[len(_STORAGE) :]
        method = "GET" if request.method == "HEAD" else request.method
        if method not in ("GET", "PUT"):
            return _storage_error(StorageError(405, "MethodNotAllowed", "Method not allowed."))
        try:
            self.standin.signer.check(method, object_path, request.query)
        except StorageError as error:
            return _storage_error(error)
        if method == "PUT":
            if request.headers.get("Content-Type", "").split(";")[0].strip() != "image/tiff":
                return _storage_error(
                    StorageError(
                        403,
                        "SignatureDoesNotMatch",
                        "The URL was signed for Content-Type image/tiff.",
                    )
                )
            with self.state.lock:
                self.state.files[object_path] = (request.body, "image/tiff")
            return _Response(200, b"", "text/plain")
        found = self.state.storage_object(object_path)
        if found is None:
            return _storage_error(StorageError(404, "NoSuchKey", "The object does not exist."))
        return _Response(200, found[0], found[1])

    # -- runs and image sets ---------------------------------------------------------------

    def list_runs(self, request: _Request) -> _Response:
        with self.state.lock:
            runs = self.state.find_runs(request.query)
            return self._page(request, [self.state.run_json(run) for run in runs])

    def get_run(self, request: _Request, run_id: str) -> _Response:
        with self.state.lock:
            return _json(200, self.state.run_json(self.state.run(int(run_id))))

    def create_run(self, request: _Request) -> _Response:
        fields, files = request.form()
        run = self.state.create_run(fields, files.get("xml"))
        with self.state.lock:
            return _json(201, self.state.run_json(run))

    def delete_run(self, request: _Request, run_id: str) -> _Response:
        self.state.delete_run(int(run_id))
        return _Response(204, b"", "application/json")

    def list_imagesets(self, request: _Request) -> _Response:
        with self.state.lock:
            return self._page(request, [dict(s) for s in self.state.imagesets.values()])

    def create_imageset(self, request: _Request) -> _Response:
        return _json(201, self.state.create_imageset(request.json_object()))

    def get_imageset(self, request: _Request, imageset_id: str) -> _Response:
        imageset = self.state.imagesets.get(int(imageset_id))
        if imageset is None:
            raise ApiError(404, {"detail": "Not found."})
        return _json(200, imageset)

    def delete_imageset(self, request: _Request, imageset_id: str) -> _Response:
        with self.state.lock:
            if self.state.imagesets.pop(int(imageset_id), None) is None:
                raise ApiError(404, {"detail": "Not found."})
        return _Response(204, b"", "application/json")


def _positive(value: str | None, default: int, minimum: int = 1) -> int:
    """Django REST framework ignores paging parameters it cannot use, so does this."""
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number >= minimum else default


class _Handler(QuietHandler):
    standin: TrackerStandIn

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK hold every kept-alive answer back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_HEAD = do_GET

    def _serve(self) -> None:
        standin = self.standin
        body = self.read_body()
        split = urlsplit(self.path)
        path = unquote(split.path)
        authorization = "Authorization" in self.headers
        fault = standin.faults.decide(self.command, path)
        if fault == "drop":
            standin.record(LoggedRequest(self.command, path, authorization, None))
            self.drop_connection()
            return
        if fault == "late":
            standin.record(LoggedRequest(self.command, path, authorization, None))
            self.drop_connection()
            standin.pause(standin.faults.slow_seconds)
        if fault == "slow":
            standin.pause(standin.faults.slow_seconds)
        if fault == "503":
            retry_after = standin.faults.retry_after
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            response = _json(503, {"detail": "Service temporarily unavailable."}, headers)
        else:
            response = standin.api.dispatch(self._request(path, split.query, body))
        if fault == "late":
            return
        if fault == "lost" or standin.take_lost_response(path):
            standin.record(LoggedRequest(self.command, path, authorization, None))
            self.drop_connection()
            return
        # Logged before answering, so a client that has its answer finds the request logged.
        standin.record(LoggedRequest(self.command, path, authorization, response.status))
        self.send_bytes(response.status, response.body, response.content_type, response.headers)

    def _request(self, path: str, query: str, body: bytes) -> _Request:
        pairs = parse_qs(query, keep_blank_values=True)
        return _Request(
            self.command,
            path,
            {key: values[-1] for key, values in pairs.items()},
            self.headers,
            body,
        )


class TrackerStandIn(Service):
    """A stand-in MIBItracker on ``127.0.0.1`` (see the module docstring).

    Use as a context manager, or ``start()``/``stop()``. ``base_url`` is the backend URL a
    client is given; ``email``/``password`` log in. Data is added with :meth:`add_run` and
    :meth:`add_image`, or :meth:`seed_demo`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "",
        email: str = DEFAULT_EMAIL,
        password: str | None = None,
        token_lifetime: float = 24 * 3600.0,
        refresh_limit: float = 7 * 24 * 3600.0,
        signed_url_lifetime: float = 3600.0,
        page_size: int = 10,
    ) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.email = email
        self.password = password or secrets.token_urlsafe(12)
        self.page_size = page_size
        self.clock = Clock()
        self.tokens = TokenIssuer(self.clock, token_lifetime, refresh_limit)
        self.signer = UrlSigner(self.clock, signed_url_lifetime)
        self.faults = Faults()
        self.state = TrackerState()
        self.api = _Api(self)
        self._instrument = self.state.add_related("instrument", name="MIBIscope (stand-in)")
        self._panels: dict[tuple[tuple[int, str], ...], dict[str, Any]] = {}
        self._generated_xml: set[int] = set()
        self._log: list[LoggedRequest] = []
        self._lost: list[str | None] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._handler = type("TrackerHandler", (_Handler,), {"standin": self})
        self._thread = ServerThread(
            LoopbackHTTPServer(host, port, self._handler), "tracker-stand-in"
        )
        self._host = host
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TrackerStandIn:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and cut kept-alive connections, like a server going away."""
        self._stopping.set()
        if self._started:
            self._thread.stop()
            self._started = False

    def suspend(self) -> None:
        """Stop listening, as a crashed server: connections are refused. The data stays, and
        :meth:`resume` serves it again at the same address."""
        if self._started:
            self._thread.stop()
            self._started = False

    def resume(self) -> None:
        """Serve again at the address of before :meth:`suspend`."""
        if not self._started:
            server = LoopbackHTTPServer(self._host, self.port, self._handler)
            self._thread = ServerThread(server, "tracker-stand-in")
            self.start()

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The tracker backend URL clients are given (with the prefix, no trailing slash)."""
        return f"{self.origin}{self.prefix}"

    # -- test controls ---------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def lose_next_responses(self, n: int = 1, path_contains: str | None = None) -> None:
        """Process the next ``n`` matching requests, then drop the connection unanswered: the
        client cannot tell whether its request took effect (tests of duplicate-free retries)."""
        with self._lock:
            self._lost.extend([path_contains] * n)

    def take_lost_response(self, path: str) -> bool:
        with self._lock:
            for index, wanted in enumerate(self._lost):
                if wanted is None or wanted in path:
                    del self._lost[index]
                    return True
            return False

    def pause(self, seconds: float) -> None:
        """A slow reply that still ends promptly when the server stops."""
        self._stopping.wait(seconds)

    def advance_clock(self, seconds: float) -> None:
        """Move server time forward: tokens and signed URLs expire without waiting."""
        self.clock.advance(seconds)

    def issue_token(self) -> str:
        """A valid token for the stand-in's user, as login would return."""
        return self.tokens.issue(1, self.email)

    # -- data ------------------------------------------------------------------------------

    def add_project(self, name: str) -> int:
        return int(self.state.add_related("project", name=name)["id"])

    def add_tissue(self, organ: str) -> int:
        return int(self.state.add_related("tissue", organ=organ, name=organ)["id"])

    def add_run(
        self,
        label: str,
        name: str | None = None,
        *,
        fovs: Sequence[str] = (),
        fov_size: float | None = 500.0,
        project: int | None = None,
        run_date: str | None = None,
        description: str = "",
    ) -> int:
        """A run (and an image without channels for each of ``fovs``); returns its id."""
        with self.state.lock:
            run = self.state.add_run(
                label,
                name or label,
                fov_size=fov_size,
                instrument=self._instrument,
                project=self.state.related("project", project),
                run_date=run_date,
                fovs=[_fov(number) for number in fovs],
                description=description,
            )
            self._generated_xml.add(run.id)
            return run.id

    def add_image(
        self,
        run: int | str,
        number: str,
        channels: Mapping[str, tuple[int | None, np.ndarray]],
        fov_size_um: float,
        *,
        folder: str | None = None,
        description: str | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        panel: str | None = "stand-in panel",
        tissue: int | None = None,
        project: int | None = None,
        dwell_time: float = 1.0,
        coordinates: tuple[float, float] | None = None,
    ) -> int:
        """An image of ``run`` (id or label) with ``channels`` {target: (mass, 2-D array)};
        a mass of None marks a user channel that is not SIMS data. Fills the run's image of
        that FOV if the run already lists it. ``panel`` names the antibody panel its section
        was stained with (None: no section, so no conjugates). ``settings`` are the per-channel
        display settings ({target: {color, hex, brightness, intensity_lower, ...}})."""
        arrays = {name: np.asarray(data) for name, (_, data) in channels.items()}
        shapes = {array.shape for array in arrays.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"channels must be 2-D arrays of one shape, got {shapes}")
        with self.state.lock:
            run_obj = self._run(run)
            folder = folder or _fov(number).folder
            image = next(
                (
                    self.state.images[i]
                    for i in run_obj.image_ids
                    if self.state.images[i].number == number
                ),
                None,
            ) or self.state.add_image(run_obj, number, folder)
            image.folder = folder
            image.description = description if description is not None else image.description
            image.fov_size = fov_size_um
            image.dwell_time = dwell_time
            image.tissue = self.state.related("tissue", tissue)
            image.project = self.state.related("project", project) or run_obj.project
            if coordinates is not None:
                image.x_coord, image.y_coord = coordinates
            sims = tuple(sorted((m, t) for t, (m, _) in channels.items() if m is not None))
            if panel is not None and sims:
                image.section = self._section(panel, sims)
            self.state.set_channels(
                image, {name: Channel(channels[name][0], arrays[name]) for name in arrays}
            )
            image.settings = {
                name: {"channel": name, **dict(value)} for name, value in (settings or {}).items()
            }
            if run_obj.id in self._generated_xml:
                self._write_run_xml(run_obj.id)
            return image.id

    def image(self, image_id: int) -> dict[str, Any]:
        """The image object as ``GET /images/{id}/`` serves it."""
        with self.state.lock:
            return self.state.image_json(self.state.image(image_id))

    def image_channels(self, image_id: int) -> dict[str, np.ndarray]:
        """The image's channel data as stored (to check uploads)."""
        with self.state.lock:
            image: Image = self.state.image(image_id)
            return {name: channel.data for name, channel in image.channels.items()}

    def stored_file(self, path: str) -> bytes | None:
        """The bytes the tracker's storage holds at ``path`` (None if nothing)."""
        found = self.state.storage_object(path)
        return None if found is None else found[0]

    def seed_demo(self, *, size: int = 512, fovs: int = 3, seed: int = 0) -> dict[str, Any]:
        """A demo run of ``fovs`` FOVs with a 28-channel panel of sparse, cell-like counts."""
        from napari_lablink.testing.tracker.demo import seed_demo  # numpy-heavy, only on demand

        return seed_demo(self, size=size, fovs=fovs, seed=seed)

    def _run(self, run: int | str) -> Any:
        if isinstance(run, int):
            return self.state.run(run)
        found = self.state.find_runs({"label": run})
        if not found:
            raise KeyError(f"no run with label {run!r}")
        return found[0]

    def _section(self, panel: str, channels: tuple[tuple[int, str], ...]) -> dict[str, Any]:
        if channels not in self._panels:
            self._panels[channels] = self.state.add_panel(panel, list(channels))
        return self._panels[channels]

    def _write_run_xml(self, run_id: int) -> None:
        run = self.state.runs[run_id]
        images = [self.state.images[i] for i in run.image_ids]
        fovs = [Fov(i.number, i.folder, i.description or i.number) for i in images]
        xml = build_run_xml(run.name, fovs)
        self.state.files[f"{run.path}/{run.xml_filename}"] = (xml, "application/xml")


def _fov(number: str) -> Fov:
    folder = f"{number}/RowNumber0/Depth_Profile0" if number.startswith("Point") else number
    return Fov(number, folder, number)
