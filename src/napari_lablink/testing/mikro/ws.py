"""GraphQL subscriptions of the stand-in mikro server: graphql-transport-ws over a websocket.

The real servers take websockets on the GraphQL URL itself (``ws://HOST/[PREFIX/]graphql``), so
the stand-in does too: its HTTP handler hands a ``GET`` with ``Upgrade: websocket`` to
:func:`serve_websocket`, which does the handshake with the sans-I/O protocol of the
``websockets`` package and then speaks graphql-transport-ws on the same socket:

``connection_init`` (the token as ``{"token": ...}`` or ``{"Authorization": "Bearer ..."}`` in
the payload, or an ``Authorization`` header on the handshake) -> ``connection_ack``; then
``subscribe`` -> ``next`` ... and ``complete``; ``ping`` -> ``pong``. Refusals are the protocol's
close codes: 4400 bad message, 4401 subscribe before ack, 4403 bad token, 4408 no init in time,
4409 a subscription id used twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from napari_lablink.testing.mikro.rois import RoiBook, RoiRecord, Subscriber
from napari_lablink.testing.mikro.state import MikroError

__all__ = ["SUBPROTOCOL", "WebSocketSession", "serve_websocket"]

log = logging.getLogger(__name__)

SUBPROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT = 5.0


class _EventRoot:
    """The root a subscription event is executed against: ``rois`` answers the event."""

    def __init__(self, root: Any, name: str, payload: RoiRecord | str, as_dict: Callable) -> None:
        self._root = root
        self._event = {
            "create": as_dict(payload) if name == "create" else None,
            "update": as_dict(payload) if name == "update" else None,
            "delete": payload if name == "delete" else None,
        }

    def rois(self, info: Any, **arguments: Any) -> dict[str, Any]:
        return self._event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._root, name)


class WebSocketSession:
    """One websocket connection: the protocol state, its socket, its subscriptions."""

    def __init__(
        self,
        connection: socket.socket,
        reader: Any,
        protocol: ServerProtocol,
        *,
        generation: str,
        schema: GraphQLSchema,
        root: Any,
        book: RoiBook,
        as_dict: Callable[[RoiRecord], dict[str, Any]],
        authorized: Callable[[str | None], bool],
        header_ok: bool,
    ) -> None:
        self._socket, self._reader, self._protocol = connection, reader, protocol
        self._generation, self._schema, self._root = generation, schema, root
        self._book, self._as_dict, self._authorized = book, as_dict, authorized
        self._header_ok = header_ok
        self._send_lock = threading.Lock()
        self._subscriptions: dict[str, Subscriber] = {}
        self._acknowledged = False

    # -- wire ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._socket.sendall(data)
            else:  # the protocol's "end of stream": the server closes TCP first
                self._socket.shutdown(socket.SHUT_WR)

    def send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            if self._protocol.state is not State.OPEN:
                return
            self._protocol.send_text(json.dumps(message).encode())
            with contextlib.suppress(OSError):
                self._flush()

    def close(self, code: int, reason: str) -> None:
        with self._send_lock:
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(code, reason)
                with contextlib.suppress(OSError):
                    self._flush()

    def drop(self) -> None:
        """Cut the connection without a closing handshake (a network failure)."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)

    # -- loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        timer = threading.Timer(INIT_TIMEOUT, self._init_timeout)
        timer.daemon = True
        timer.start()
        try:
            self._loop()
        finally:
            timer.cancel()
            for subscriber in list(self._subscriptions.values()):
                self._book.unsubscribe(subscriber)
            self._subscriptions.clear()

    def _init_timeout(self) -> None:
        if not self._acknowledged:
            self.close(4408, "Connection initialisation timeout")

    def _loop(self) -> None:
        while True:
            try:
                data = self._reader.read1(65536)
            except OSError:
                data = b""
            with self._send_lock:
                if data:
                    self._protocol.receive_data(data)
                else:
                    self._protocol.receive_eof()
                events = self._protocol.events_received()
                with contextlib.suppress(OSError):
                    self._flush()  # pongs and the closing handshake
            for frame in events:
                if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT:
                    self._handle(bytes(frame.data))
            if not data or self._protocol.state is State.CLOSED:
                return

    def _handle(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            self.close(4400, "Invalid message received")
            return
        if kind == "connection_init":
            self._init(message.get("payload"))
        elif kind == "ping":
            self.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self._subscribe(message)
        elif kind == "complete":
            subscriber = self._subscriptions.pop(str(message.get("id")), None)
            if subscriber is not None:
                self._book.unsubscribe(subscriber)
        else:
            self.close(4400, f"Unknown message type {kind!r}")

    def _init(self, payload: Any) -> None:
        if self._acknowledged:
            self.close(4429, "Too many initialisation requests")
            return
        payload = payload if isinstance(payload, dict) else {}
        token = payload.get("token")
        header = payload.get("Authorization") or payload.get("authorization")
        if token is None and header is None and self._header_ok:
            ok = True
        else:
            ok = self._authorized(header if header is not None else f"Bearer {token}")
        if not ok:
            self.close(4403, "Forbidden")
            return
        self._acknowledged = True
        self.send({"type": "connection_ack"})

    def _subscribe(self, message: dict[str, Any]) -> None:
        if not self._acknowledged:
            self.close(4401, "Unauthorized")
            return
        id = str(message.get("id") or "")
        payload = message.get("payload") or {}
        if not id or not isinstance(payload, dict):
            self.close(4400, "Invalid subscribe message")
            return
        if id in self._subscriptions:
            self.close(4409, f"Subscriber for {id} already exists")
            return
        variables = payload.get("variables") or {}
        try:
            document = parse(payload.get("query") or "")
            errors = validate(self._schema, document)
            if errors:
                raise errors[0]
            target = self._target(document, payload.get("operationName"), variables)
            subscriber = self._book.subscribe(self._generation, target)
        except (GraphQLError, MikroError) as error:
            formatted = (
                error.formatted if isinstance(error, GraphQLError) else {"message": str(error)}
            )
            self.send({"id": id, "type": "error", "payload": [formatted]})
            return
        self._subscriptions[id] = subscriber
        forward = threading.Thread(
            target=self._forward,
            args=(id, subscriber, document, variables, payload.get("operationName")),
            name=f"mikro-stand-in-subscription-{id}",
            daemon=True,
        )
        forward.start()

    def _target(self, document: Any, operation_name: str | None, variables: dict) -> str:
        operation = next(
            d
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
            and (operation_name is None or (d.name and d.name.value == operation_name))
        )
        if operation.operation is not OperationType.SUBSCRIPTION:
            raise GraphQLError("Only subscriptions are served over this websocket.")
        coerced = get_variable_values(self._schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            raise coerced[0]
        field_node = operation.selection_set.selections[0]
        subscription_type = self._schema.subscription_type
        assert subscription_type is not None
        field = subscription_type.fields[field_node.name.value]  # type: ignore[attr-defined]
        arguments = get_argument_values(field, field_node, coerced)  # type: ignore[arg-type]
        return str(arguments.get("image") or arguments.get("representation"))

    def _forward(
        self,
        id: str,
        subscriber: Subscriber,
        document: Any,
        variables: dict,
        operation_name: str | None,
    ) -> None:
        while True:
            event = subscriber.events.get()
            if event is None:
                return
            name, payload = event
            root = _EventRoot(self._root, name, payload, self._as_dict)
            result = execute_sync(
                self._schema,
                document,
                root_value=root,
                variable_values=variables,
                operation_name=operation_name,
            )
            self.send({"id": id, "type": "next", "payload": result.formatted})


def serve_websocket(
    handler: Any,
    *,
    generation: str,
    schema: GraphQLSchema,
    root: Any,
    book: RoiBook,
    as_dict: Callable[[RoiRecord], dict[str, Any]],
    authorized: Callable[[str | None], bool],
    sessions: set[WebSocketSession],
    sessions_lock: threading.Lock,
) -> None:
    """Upgrade the request ``handler`` holds to a websocket and serve it until it closes."""
    handler.close_connection = True
    protocol = ServerProtocol(subprotocols=[SUBPROTOCOL])  # type: ignore[list-item]
    # The HTTP server has read the request already; replay it so the protocol parses it itself.
    head = handler.raw_requestline + b"".join(
        f"{name}: {value}\r\n".encode("latin-1") for name, value in handler.headers.items()
    )
    protocol.receive_data(head + b"\r\n")
    request = next(e for e in protocol.events_received() if isinstance(e, Request))
    response = protocol.accept(request)
    protocol.send_response(response)
    for data in protocol.data_to_send():
        handler.connection.sendall(data)
    if protocol.state is not State.OPEN:
        return
    session = WebSocketSession(
        handler.connection,
        handler.rfile,
        protocol,
        generation=generation,
        schema=schema,
        root=root,
        book=book,
        as_dict=as_dict,
        authorized=authorized,
        header_ok=authorized(handler.headers.get("Authorization")),
    )
    with sessions_lock:
        sessions.add(session)
    try:
        session.run()
    finally:
        with sessions_lock:
            sessions.discard(session)
