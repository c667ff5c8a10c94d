"""S3 stand-in: moto's S3 server behind a small gateway that acts like a real datalayer.

moto provides the S3 semantics (buckets, objects, listings, multipart uploads). The gateway in
front of it adds what a real deployment does and moto does not: it refuses unknown, expired and
revoked credentials, counts requests (so tests can prove a plane read fetches only that plane's
chunks) and injects faults. Clients only ever see the gateway (``endpoint``).

moto keeps its data in process-wide memory, so stand-ins running at the same time in one process
share buckets and objects (keys are unique per upload, so this does not get in the way); each
keeps its own credentials, request log and faults. The last one to stop deletes every bucket,
which frees the memory and lets the next stand-in start from nothing.
"""

from __future__ import annotations

import http.client
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

from napari_lablink.testing._http import (
    LoopbackHTTPServer,
    QuietHandler,
    ServerThread,
    Service,
    require_loopback,
)
from napari_lablink.testing.faults import Faults
from napari_lablink.testing.s3.auth import (
    SLOW_DOWN,
    CredentialRegistry,
    RequestIdentity,
    S3Error,
    S3Scope,
    SessionCredentials,
    random_access_key,
    random_secret,
)

if TYPE_CHECKING:
    import zarr.storage

__all__ = ["S3Request", "S3Scope", "S3StandIn"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
    }
)
_COPY_BUFFER = 1 << 20


class S3Request(NamedTuple):
    """One request the gateway saw: method, URL-decoded path, raw query string."""

    method: str
    path: str
    query: str


class RequestLog:
    """Thread-safe list of the requests the gateway forwarded or rejected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[S3Request] = []

    def append(self, item: S3Request) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[S3Request]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[S3Request]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> S3Request:
        with self._lock:
            return self._items[index]

    def count(self, method: str | None = "GET", path_contains: str | None = None) -> int:
        """Requests with this method (None: any) whose path contains ``path_contains``."""
        return sum(
            (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            for r in self.snapshot()
        )


class _ConnectionPool:
    """Kept-alive connections from the gateway to moto, shared by all gateway threads."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []

    def acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.fresh()

    def fresh(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=60)

    def release(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _GatewayHandler(QuietHandler):
    server: _GatewayServer

    def do_GET(self) -> None:
        if self.command == "GET" and urlsplit(self.path).path == "/minio/health/live":
            self.send_bytes(200, b"", "text/plain")  # MinIO's health check (Arkitekt aliases)
            return
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _handle(self) -> None:
        stand_in = self.server.stand_in
        body = self.read_body()
        split = urlsplit(self.path)
        path = unquote(split.path)
        stand_in.requests.append(S3Request(self.command, path, split.query))
        fault = stand_in.faults.decide(self.command, path)
        if fault == "drop":
            self.drop_connection()
            return
        if fault == "503":
            retry_after = stand_in.faults.retry_after
            extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            self._send_error(SLOW_DOWN, path, extra)
            return
        if fault == "slow":
            time.sleep(stand_in.faults.slow_seconds)
        identity = RequestIdentity.parse(self.headers, split.query)
        error = stand_in._registry.authorize(self.command, path, split.query, identity, body)
        if error is not None:
            self._send_error(error, path)
            return
        self._forward(body, lose=fault in ("lost", "late"))

    def _send_error(self, error: S3Error, path: str, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(error.status, error.xml(path), "application/xml", headers)

    def _forward(self, body: bytes, lose: bool = False) -> None:
        """Pass the request to moto and its answer back; ``lose`` drops the answer instead."""
        stand_in = self.server.stand_in
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = stand_in._moto_authority
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        pool = stand_in._pool
        for attempt in (0, 1):
            # A kept-alive connection moto has closed fails at once; retry on a new one.
            connection = pool.fresh() if attempt else pool.acquire()
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                connection.close()
                if attempt:
                    raise
        if lose:
            response.read()
            if response.will_close:
                connection.close()
            else:
                pool.release(connection)
            self.drop_connection()
            return
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        if length is None and self.command != "HEAD" and response.status not in (204, 304):
            payload = response.read()
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            remaining = int(length or 0) if self.command != "HEAD" else 0
            while remaining > 0:
                chunk = response.read(min(_COPY_BUFFER, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
            response.read()
        if response.will_close:
            connection.close()
        else:
            pool.release(connection)


class _GatewayServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, stand_in: S3StandIn) -> None:
        self.stand_in = stand_in
        super().__init__(host, port, _GatewayHandler)


#: S3StandIns running in this process (they share moto's in-memory data).
_running = 0
_running_lock = threading.Lock()


def _moto_server(host: str) -> Any:
    """moto's ThreadedMotoServer, polling for shutdown every 50 ms instead of 500 ms."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class MotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=0.05)

    return MotoServer(ip_address=host, port=0, verbose=False)


class S3StandIn(Service):
    """moto's S3 (and STS) plus a credential-checking, counting, fault-injecting gateway.

    Use as a context manager or with ``start()``/``stop()``. Clients talk to ``endpoint``; the
    helpers (``create_bucket``, ``put_object``, ``zarr_store``, ...) use the admin credentials and
    go to moto directly, so they are neither counted nor faulted.
    """

    region = "us-east-1"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self._host = host
        self._port = port
        self.admin_credentials = {
            "access_key_id": random_access_key("AKIA"),
            "secret_access_key": random_secret(),
        }
        self._registry = CredentialRegistry(self.admin_credentials["access_key_id"])
        self.faults = Faults()
        self.requests = RequestLog()
        self._moto: Any = None
        self._gateway: ServerThread | None = None
        self._suspended_port = port
        self._pool: _ConnectionPool
        self._moto_authority = ""
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> S3StandIn:
        # werkzeug (under moto) prints every request to stderr unless told otherwise, and
        # botocore's debug records are malformed when some other package turns on DEBUG
        # for the whole process (pymmcore_plus does on import); the admin client needs none.
        for name in ("werkzeug", "botocore", "boto3", "urllib3"):
            quiet = logging.getLogger(name)
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.WARNING)
        global _running
        self._moto = _moto_server(self._host)
        self._moto.start()
        with _running_lock:
            _running += 1
        moto_host, moto_port = self._moto.get_host_and_port()
        self._moto_authority = f"{moto_host}:{moto_port}"
        self._pool = _ConnectionPool(moto_host, moto_port)
        self._gateway = ServerThread(
            _GatewayServer(self._host, self._port, self), name="s3-stand-in-gateway"
        )
        self._gateway.start()
        return self

    def stop(self) -> None:
        """Stop serving; the last running stand-in of the process also deletes all buckets."""
        global _running
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
            self._pool.close()
        if self._moto is not None:
            try:
                with _running_lock:
                    _running -= 1
                    if _running == 0:
                        self._delete_buckets()
            finally:
                self._moto.stop()
                self._moto = None
                self._clients.clear()

    def suspend(self) -> None:
        """Stop the gateway, as a crashed S3: connections are refused. moto keeps the data,
        and :meth:`resume` serves it again at the same endpoint."""
        if self._gateway is not None:
            self._suspended_port = self._gateway.port
            self._gateway.stop()
            self._gateway = None

    def resume(self) -> None:
        """Serve again at the endpoint of before :meth:`suspend`."""
        if self._gateway is None and self._moto is not None:
            server = _GatewayServer(self._host, self._suspended_port, self)
            self._gateway = ServerThread(server, name="s3-stand-in-gateway")
            self._gateway.start()

    def _delete_buckets(self) -> None:
        s3 = self.admin_client()
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            self.delete_prefix(name, "")
            uploads = s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
            for upload in uploads:
                s3.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            s3.delete_bucket(Bucket=name)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The gateway URL clients use, ``http://127.0.0.1:PORT``."""
        if self._gateway is None:
            raise RuntimeError("the S3 stand-in is not running; call start() first")
        return f"http://{self._host}:{self._gateway.port}"

    @property
    def moto_endpoint(self) -> str:
        """moto itself, behind the gateway (admin helpers only)."""
        if not self._moto_authority:
            raise RuntimeError("the S3 stand-in is not running; call start() first")
        return f"http://{self._moto_authority}"

    # -- credentials -------------------------------------------------------------------------

    def issue_credentials(
        self, ttl_seconds: float, *, scope: Sequence[S3Scope] | None = None
    ) -> dict[str, Any]:
        """STS session credentials (from moto's AssumeRole) valid for ``ttl_seconds``.

        ``scope`` limits them to parts of buckets (None: everything, like generation 1's
        ``request``). Returns access_key_id, secret_access_key, session_token and expires_at
        (an aware UTC datetime).
        """
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
        answer = self._client("sts").assume_role(
            RoleArn="arn:aws:iam::123456789012:role/lablink-datalayer",
            RoleSessionName="lablink-" + secrets.token_hex(4),
            DurationSeconds=min(43200, max(900, math.ceil(ttl_seconds))),
        )["Credentials"]
        expires_at = time.time() + ttl_seconds
        self._registry.add(
            SessionCredentials(
                access_key_id=answer["AccessKeyId"],
                secret_access_key=answer["SecretAccessKey"],
                session_token=answer["SessionToken"],
                expires_at=expires_at,
                scope=None if scope is None else tuple(scope),
            )
        )
        return {
            "access_key_id": answer["AccessKeyId"],
            "secret_access_key": answer["SecretAccessKey"],
            "session_token": answer["SessionToken"],
            "expires_at": datetime.fromtimestamp(expires_at, UTC),
        }

    def revoke_all(self) -> int:
        """Expire every issued credential now (S3 then answers ``ExpiredToken``)."""
        return self._registry.revoke_all()

    @property
    def active_credentials(self) -> int:
        """How many issued credentials are still valid."""
        return self._registry.active_count()

    # -- request log ---------------------------------------------------------------------------

    def reset_requests(self) -> None:
        self.requests.clear()

    def count(self, method: str | None = "GET", path_contains: str | None = None) -> int:
        return self.requests.count(method, path_contains)

    # -- admin helpers (direct to moto) ----------------------------------------------------------

    def _client(self, service: str) -> Any:
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = self._make_client(service)
            return client

    def _make_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.moto_endpoint,
            region_name=self.region,
            aws_access_key_id=self.admin_credentials["access_key_id"],
            aws_secret_access_key=self.admin_credentials["secret_access_key"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def admin_client(self) -> Any:
        """A boto3 S3 client with admin rights, talking to moto directly."""
        return self._client("s3")

    def create_bucket(self, name: str) -> None:
        """Create ``name`` unless this stand-in has it already."""
        s3 = self.admin_client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name in existing:
            return
        s3.create_bucket(Bucket=name)

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self.admin_client().put_object(Bucket=bucket, Key=key, Body=data)

    def get_object(self, bucket: str, key: str) -> bytes:
        """The object's bytes; raises KeyError when it does not exist."""
        s3 = self.admin_client()
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise KeyError(f"s3://{bucket}/{key}") from exc

    def list_objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under ``prefix``."""
        paginator = self.admin_client().get_paginator("list_objects_v2")
        sizes: dict[str, int] = {}
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                sizes[item["Key"]] = item["Size"]
        return sizes

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys = list(self.list_objects(bucket, prefix))
        s3 = self.admin_client()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def zarr_store(self, bucket: str, prefix: str = "") -> zarr.storage.ObjectStore:
        """A zarr store on ``bucket/prefix`` with admin rights, talking to moto directly."""
        import zarr.storage
        from obstore.store import S3Store

        store = S3Store(
            bucket,
            prefix=prefix or None,
            endpoint=self.moto_endpoint,
            region=self.region,
            access_key_id=self.admin_credentials["access_key_id"],
            secret_access_key=self.admin_credentials["secret_access_key"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        return zarr.storage.ObjectStore(store)
