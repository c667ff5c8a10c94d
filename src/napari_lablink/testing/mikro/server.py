"""Stand-in mikro server: both GraphQL generations on one loopback HTTP server, S3 behind it.

Generation 1 answers at ``<base>/<gen1_prefix>/graphql`` (default ``/graphql``), generation 2
at ``<base>/<gen2_prefix>/graphql`` (default ``/mikro/graphql``, as deployments behind a gateway
use; ``gen2_prefix=None`` takes the server version's own default, :data:`GEN2_DEFAULT_PREFIXES`).
Requests are ``POST {"query", "variables", "operationName"}`` with
``Authorization: Bearer <token>``.

Authentication failures are answered as the real servers answer them (see
``docs/protocols/notes-real-servers.md``): generation 2 with HTTP 200 and a GraphQL error,
``No Authorization header`` without a token and ``Error decoding token`` (``... token header``
when the token is not even a JWT) for a wrong one; generation 1 with an HTML 403 page for a wrong
token, while without any token it serves reads (``representation(s)`` and even ``request``)
anonymously and refuses only mutations. Other GraphQL errors (unknown fields, unknown ids,
rejected uploads) are always HTTP 200 with an ``errors`` list.

Subscriptions (the ``rois`` subscription of both generations) are served where the real servers
serve them: a websocket on the same GraphQL URL (``ws://...``), speaking graphql-transport-ws.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import numpy as np
from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    parse,
    validate,
)

from napari_lablink.testing._http import (
    LoopbackHTTPServer,
    QuietHandler,
    ServerThread,
    Service,
    require_loopback,
)
from napari_lablink.testing.faults import Faults
from napari_lablink.testing.mikro import seed
from napari_lablink.testing.mikro.backend import MikroBackend, MikroConfig
from napari_lablink.testing.mikro.gen1 import Gen1Root
from napari_lablink.testing.mikro.gen2 import VERSIONS, Gen2Root
from napari_lablink.testing.mikro.rois import (
    Gen1RoiRoot,
    Gen2RoiRoot,
    RoiBook,
    RootWithRois,
    gen1_roi,
    gen2_roi,
)
from napari_lablink.testing.mikro.schema import gen1_schema, gen2_schema
from napari_lablink.testing.mikro.state import MikroError, MikroState
from napari_lablink.testing.mikro.ws import WebSocketSession, serve_websocket
from napari_lablink.testing.s3.server import S3StandIn

__all__ = ["GEN2_DEFAULT_PREFIXES", "MikroStandIn", "Operation"]

log = logging.getLogger(__name__)

GEN1 = "gen1"
GEN2 = "gen2"
#: Generation 2's answers (GraphQL errors, HTTP 200) to a missing and to a wrong token.
NO_AUTHORIZATION_HEADER = "No Authorization header"
TOKEN_NOT_DECODED = "Error decoding token"
TOKEN_HEADER_NOT_DECODED = "Error decoding token header"
#: Generation 1's answer to an anonymous mutation (its anonymous reads are served).
ANONYMOUS_MUTATION = "You do not have permission to perform this action"
#: Generation 1's answer to a wrong token: Django's plain 403 page.
FORBIDDEN_PAGE = (
    b'\n<!doctype html>\n<html lang="en">\n<head>\n  <title>403 Forbidden</title>\n</head>\n'
    b"<body>\n  <h1>403 Forbidden</h1><p></p>\n</body>\n</html>\n"
)
#: Where each generation-2 server version serves GraphQL when its deployment sets no prefix.
GEN2_DEFAULT_PREFIXES = {"2.0.0": "", "early-2026": "lovekit"}
_JSON = "application/json"


class Operation(NamedTuple):
    """One GraphQL request received: generation, operation name (or first field), variables."""

    generation: str
    name: str
    variables: dict[str, Any]


def _json(status: int, payload: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(payload).encode(), _JSON


class _GraphQLHandler(QuietHandler):
    server: _MikroServer

    def do_POST(self) -> None:
        stand_in = self.server.stand_in
        body = self.read_body()
        path = urlsplit(self.path).path.rstrip("/")
        fault = stand_in.faults.decide("POST", path)
        if fault == "drop":
            self.drop_connection()
            return
        if fault == "503":
            retry_after = stand_in.faults.retry_after
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            self.send_bytes(503, b"Service Unavailable", "text/plain", headers)
            return
        if fault == "late":
            self.drop_connection()
            time.sleep(stand_in.faults.slow_seconds)
        if fault == "slow":
            time.sleep(stand_in.faults.slow_seconds)
        status, answer, content_type = stand_in._answer(
            path, body, self.headers.get("Authorization")
        )
        if fault in ("lost", "late"):
            self.drop_connection()  # acted on, never answered
            return
        self.send_bytes(status, answer, content_type)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if "websocket" in self.headers.get("Upgrade", "").lower():
            self.server.stand_in._websocket(self, path)
            return
        if path.endswith("/ht") and self.server.stand_in._generation(path[:-3] + "/graphql"):
            # The health check Arkitekt deployments name as the mikro alias's challenge.
            self.send_bytes(200, b"ok", "text/plain")
        elif self.server.stand_in._generation(path) is None:
            self.send_bytes(404, b'{"detail": "Not found"}', "application/json")
        else:
            message = {"errors": [{"message": "GraphQL requests must be POSTed as JSON."}]}
            body = json.dumps(message).encode()
            self.send_bytes(405, body, "application/json", {"Allow": "POST"})


class _MikroServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, stand_in: MikroStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(host, port, _GraphQLHandler)


class MikroStandIn(Service):
    """Both mikro generations plus their S3 datalayer, for tests, benchmarks and the demo."""

    def __init__(
        self,
        *,
        s3: S3StandIn | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        gen1_prefix: str = "",
        gen2_prefix: str | None = "mikro",
        gen2_version: str = VERSIONS[0],
        credential_ttl: float = 3600.0,
        max_upload_bytes: int = 1 << 30,
        token_check: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        """``gen2_version`` is the generation-2 server release imitated (``"2.0.0"`` or
        ``"early-2026"``): it decides the access grant's fields and, with ``gen2_prefix=None``,
        the URL prefix. ``token_check(generation, authorization)`` returns why a bearer token
        other than the static ``token`` is refused, or None to accept it (a JWT verifier, as
        real servers do)."""
        require_loopback(host)
        if gen2_version not in GEN2_DEFAULT_PREFIXES:
            raise ValueError(f"gen2_version must be one of {VERSIONS}, not {gen2_version!r}")
        if gen2_prefix is None:
            gen2_prefix = GEN2_DEFAULT_PREFIXES[gen2_version]
        self._owns_s3 = s3 is None
        self.s3 = s3 if s3 is not None else S3StandIn(host=host)
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self._host, self._port = host, port
        self.gen1_prefix = gen1_prefix.strip("/")
        self.gen2_prefix = gen2_prefix.strip("/")
        if self.gen1_prefix == self.gen2_prefix:
            raise ValueError("the two generations need different URL prefixes")
        self.config = MikroConfig(credential_ttl=credential_ttl, max_upload_bytes=max_upload_bytes)
        self.faults = Faults()
        self.token_check = token_check
        self._backend = MikroBackend(self.s3, self.config)
        self.gen2_version = gen2_version
        #: ROIs of both generations (and who listens to them live)
        self.rois = RoiBook(self._backend.state)
        self._roots = {
            GEN1: RootWithRois(Gen1Root(self._backend), Gen1RoiRoot(self.rois)),
            GEN2: RootWithRois(Gen2Root(self._backend, gen2_version), Gen2RoiRoot(self.rois)),
        }
        self._websockets: set[WebSocketSession] = set()
        self._websockets_lock = threading.Lock()
        self._schemas: dict[str, GraphQLSchema] = {
            GEN1: gen1_schema(),
            GEN2: gen2_schema(gen2_version),
        }
        self._operations: list[Operation] = []
        self._root_fields: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
        self._log_lock = threading.Lock()
        self._server: ServerThread | None = None
        self._suspended_port = port

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> MikroStandIn:
        if self._owns_s3:
            self.s3.start()
        try:
            self._backend.ensure_buckets()
            self._server = ServerThread(
                _MikroServer(self._host, self._port, self), name="mikro-stand-in"
            )
            self._server.start()
        except BaseException:
            if self._owns_s3:
                self.s3.stop()
            raise
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._owns_s3:
            self.s3.stop()

    def suspend(self) -> None:
        """Stop listening, GraphQL and S3 alike, as a crashed deployment: connections are
        refused. The data stays, and :meth:`resume` serves it again at the same addresses."""
        if self._server is not None:
            self._suspended_port = self._server.port
            self._server.stop()
            self._server = None
        self.s3.suspend()

    def resume(self) -> None:
        """Serve again at the addresses of before :meth:`suspend`."""
        self.s3.resume()
        if self._server is None:
            server = _MikroServer(self._host, self._suspended_port, self)
            self._server = ServerThread(server, name="mikro-stand-in")
            self._server.start()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the mikro stand-in is not running; call start() first")
        return self._server.port

    @property
    def uri_authority(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.uri_authority}"

    def _url(self, prefix: str) -> str:
        return f"{self.base_url}/{prefix}/graphql" if prefix else f"{self.base_url}/graphql"

    @property
    def gen1_graphql_url(self) -> str:
        return self._url(self.gen1_prefix)

    @property
    def gen2_graphql_url(self) -> str:
        return self._url(self.gen2_prefix)

    @property
    def gen1_websocket_url(self) -> str:
        """Subscriptions: the generation-1 GraphQL URL with the ``ws`` scheme."""
        return "ws" + self.gen1_graphql_url.removeprefix("http")

    @property
    def gen2_websocket_url(self) -> str:
        """Subscriptions: the generation-2 GraphQL URL with the ``ws`` scheme."""
        return "ws" + self.gen2_graphql_url.removeprefix("http")

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint

    def representation_uri(self, id: str, *, with_s3: bool = True) -> str:
        """``mikro+http://HOST:PORT[/PREFIX]/representation/ID[?s3=ENDPOINT]``."""
        return self._uri(self.gen1_prefix, "representation", id, with_s3)

    def image_uri(self, id: str, *, with_s3: bool = True) -> str:
        """``mikro+http://HOST:PORT/mikro/image/ID[?s3=ENDPOINT]``."""
        return self._uri(self.gen2_prefix, "image", id, with_s3)

    def _uri(self, prefix: str, kind: str, id: str, with_s3: bool) -> str:
        path = f"/{prefix}/{kind}/{id}" if prefix else f"/{kind}/{id}"
        query = f"?s3={self.s3_endpoint}" if with_s3 else ""
        return f"mikro+http://{self.uri_authority}{path}{query}"

    # -- what clients asked ------------------------------------------------------------------

    @property
    def operations(self) -> list[Operation]:
        with self._log_lock:
            return list(self._operations)

    def reset_operations(self) -> None:
        with self._log_lock:
            self._operations.clear()
            self._root_fields.clear()

    def calls(self, field: str, generation: str | None = None) -> list[dict[str, Any]]:
        """Variables of every received request that asked for root field ``field``."""
        with self._log_lock:
            return [
                variables
                for gen, fields, variables in self._root_fields
                if field in fields and (generation is None or gen == generation)
            ]

    # -- server state ----------------------------------------------------------------------

    @property
    def state(self) -> MikroState:
        """Everything registered (read it to assert what an upload produced)."""
        return self._backend.state

    def drop_websockets(self) -> int:
        """Cut every open subscription websocket, as a network failure would; returns how many."""
        with self._websockets_lock:
            sessions = list(self._websockets)
        for session in sessions:
            session.drop()
        return len(sessions)

    def expire_credentials(self) -> int:
        """Revoke every S3 credential handed out so far (S3 then answers ExpiredToken)."""
        return self.s3.revoke_all()

    def add_representation(
        self,
        array: np.ndarray,
        name: str,
        *,
        physical_size: Mapping[str, float | None] | None = None,
        channels: Sequence[Mapping[str, Any]] | None = None,
        variety: str = "VOXEL",
        tags: Sequence[str] = (),
        chunks: Sequence[int] | None = None,
    ) -> str:
        """A generation-1 representation of a (c, t, z, y, x) array; returns its id."""
        return seed.add_representation(
            self._backend,
            array,
            name,
            physical_size=physical_size,
            channels=channels,
            variety=variety,
            tags=tags,
            chunks=chunks,
        )

    def add_image(
        self,
        array: np.ndarray,
        name: str,
        *,
        chunks: Sequence[int] | None = None,
        channels: Sequence[Mapping[str, Any]] | None = None,
        pixel_size: tuple[float, float, float] | None = None,
        pyramid_levels: int = 1,
        tags: Sequence[str] = (),
        labels: bool = False,
    ) -> str:
        """A generation-2 image of a (c, t, z, y, x) array (plus pyramid); returns its id.

        ``labels`` makes it a label image: it gets a mask view of itself."""
        return seed.add_image(
            self._backend,
            array,
            name,
            chunks=chunks,
            channels=channels,
            pixel_size=pixel_size,
            pyramid_levels=pyramid_levels,
            tags=tags,
            labels=labels,
        )

    def seed_demo(self) -> dict[str, str]:
        """Demo content. Keys: ``cells_gen1``, ``cells_gen2`` (3 x 1 x 16 x 256 x 256 uint16,
        0.2/0.2/0.5 um), ``tissue_pyramid`` (gen 2, 2 x 2048 x 2048, 3 levels) and
        ``nuclei_labels_gen1`` (a MASK representation)."""
        return seed.seed_demo(self._backend)

    def read_representation(self, id: str) -> np.ndarray:
        """The pixels of a representation, read server-side with xarray."""
        import xarray as xr

        bucket, _, key = self.state.representation(id).store.partition("/")
        dataset = xr.open_zarr(self.s3.zarr_store(bucket, key), consolidated=None)
        return dataset["data"].values

    def read_image(self, id: str) -> np.ndarray:
        """The pixels of an image, read server-side with zarr."""
        import zarr

        store = self.state.store(self.state.image(id).store)
        array = zarr.open_array(self.s3.zarr_store(store.s3_bucket, store.key), mode="r")
        return np.asarray(array[...])

    # -- request handling ----------------------------------------------------------------------

    def _generation(self, path: str) -> str | None:
        for generation, prefix in ((GEN1, self.gen1_prefix), (GEN2, self.gen2_prefix)):
            if path == (f"/{prefix}/graphql" if prefix else "/graphql"):
                return generation
        return None

    def _token_refusal(self, header: str | None) -> str | None:
        """None for our token; else the generation-2 message for what came instead."""
        if not (header or "").strip():
            return NO_AUTHORIZATION_HEADER
        scheme, _, token = header.strip().partition(" ")  # type: ignore[union-attr]
        token = token.strip()
        if scheme.lower() == "bearer" and secrets.compare_digest(
            token.encode(), self.token.encode()
        ):
            return None
        # A JWT is three dot-separated parts; anything else fails on its header already.
        return TOKEN_NOT_DECODED if token.count(".") == 2 else TOKEN_HEADER_NOT_DECODED

    def _websocket(self, handler: _GraphQLHandler, path: str) -> None:
        generation = self._generation(path)
        if generation is None:
            handler.send_bytes(404, b'{"detail": "Not found"}', "application/json")
            return
        fault = self.faults.decide("GET", path)
        if fault in ("drop", "503"):
            handler.drop_connection()
            return
        serve_websocket(
            handler,
            generation=generation,
            schema=self._schemas[generation],
            root=self._roots[generation],
            book=self.rois,
            as_dict=gen1_roi if generation == GEN1 else gen2_roi,
            authorized=self._authorized,
            sessions=self._websockets,
            sessions_lock=self._websockets_lock,
        )

    def _authorized(self, header: str | None) -> bool:
        refusal = self._token_refusal(header)
        if refusal in (TOKEN_NOT_DECODED, TOKEN_HEADER_NOT_DECODED) and self.token_check:
            refusal = self.token_check(GEN2, header)
        return refusal is None

    def _refusal(
        self, generation: str, header: str | None, document: Any, operation_name: str | None
    ) -> tuple[int, bytes, str] | None:
        """The answer to a request without our token, or None to serve it."""
        refusal = self._token_refusal(header)
        if refusal in (TOKEN_NOT_DECODED, TOKEN_HEADER_NOT_DECODED) and self.token_check:
            refusal = self.token_check(generation, header)
        if refusal is None:
            return None
        if generation == GEN2:
            return _json(200, {"data": None, "errors": [{"message": refusal}]})
        if refusal != NO_AUTHORIZATION_HEADER:
            return 403, FORBIDDEN_PAGE, "text/html; charset=utf-8"
        if _is_mutation(document, operation_name):
            return _json(200, {"data": None, "errors": [{"message": ANONYMOUS_MUTATION}]})
        return None  # generation 1 serves reads anonymously

    def _answer(self, path: str, body: bytes, authorization: str | None) -> tuple[int, bytes, str]:
        generation = self._generation(path)
        if generation is None:
            return _json(404, {"detail": "Not found"})
        try:
            request = json.loads(body or b"null")
            query = request["query"]
            variables = request.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            message = 'expected a JSON body {"query": ..., "variables": {...}}'
            return _json(400, {"errors": [{"message": message}]})
        operation_name = request.get("operationName")
        try:
            document = parse(query)
        except GraphQLError as error:
            self._record(generation, operation_name or "?", (), variables)
            return _json(200, {"data": None, "errors": [error.formatted]})
        fields = _root_fields(document, operation_name)
        name = operation_name or _operation_name(document) or (fields[0] if fields else "?")
        self._record(generation, name, fields, variables)
        refused = self._refusal(generation, authorization, document, operation_name)
        if refused is not None:
            return refused
        schema = self._schemas[generation]
        errors = validate(schema, document)
        if errors:
            return _json(200, {"data": None, "errors": [e.formatted for e in errors]})
        result = execute_sync(
            schema,
            document,
            root_value=self._roots[generation],
            variable_values=variables,
            operation_name=operation_name,
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            for failure in result.errors:
                if not isinstance(failure.original_error, MikroError | None):
                    log.warning("mikro stand-in resolver failed", exc_info=failure.original_error)
            payload["errors"] = [e.formatted for e in result.errors]
        return _json(200, payload)

    def _record(
        self, generation: str, name: str, fields: tuple[str, ...], variables: dict[str, Any]
    ) -> None:
        with self._log_lock:
            self._operations.append(Operation(generation, name, variables))
            self._root_fields.append((generation, fields, variables))


def _operations(document: Any) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def _is_mutation(document: Any, operation_name: str | None) -> bool:
    return any(
        o.operation == OperationType.MUTATION
        for o in _operations(document)
        if operation_name is None or (o.name and o.name.value == operation_name)
    )


def _operation_name(document: Any) -> str | None:
    operations = _operations(document)
    if len(operations) == 1 and operations[0].name is not None:
        return operations[0].name.value
    return None


def _root_fields(document: Any, operation_name: str | None) -> tuple[str, ...]:
    for operation in _operations(document):
        if operation_name is None or (operation.name and operation.name.value == operation_name):
            return tuple(
                s.name.value for s in operation.selection_set.selections if hasattr(s, "name")
            )
    return ()
