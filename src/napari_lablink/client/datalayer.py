"""Zarr on S3 with server-granted credentials: lazy dask arrays out, credential refresh inside.

Servers hand out short-lived S3 credentials (STS session credentials) for their stores. A
:class:`GrantedStore` reads and writes through obstore (Rust, concurrent) and, when S3 refuses a
grant (expired or revoked), asks the server for a new one and retries once, so a layer opened an
hour ago keeps working.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from itertools import product
from typing import Any

import dask.array as da
import numpy as np
import obstore.exceptions as obx
import zarr
from dask.array.core import normalize_chunks
from dask.highlevelgraph import HighLevelGraph, Layer, MaterializedLayer
from obstore.store import S3Store
from zarr.storage import ObjectStore, WrapperStore

from napari_lablink.client.errors import AuthenticationError, ServerUnavailableError

__all__ = ["GrantedStore", "S3Grant", "lazy_array"]

#: Ask for a new grant this many seconds before the old one expires.
_EXPIRY_MARGIN = 30.0
_S3_AUTH_CODES = ("ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "AccessDenied", "403")


@dataclass(frozen=True)
class S3Grant:
    """Temporary credentials for one store, as a server granted them. ``repr`` hides secrets."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    bucket: str
    key: str
    #: Wall-clock expiry (``time.time()``), or None when the server does not say.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"S3Grant(bucket={self.bucket!r}, key={self.key!r}, expires_at={self.expires_at})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.secret_access_key, self.session_token) if s)

    @property
    def expiring(self) -> bool:
        return self.expires_at is not None and time.time() > self.expires_at - _EXPIRY_MARGIN


def _is_auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError):
        return True
    return isinstance(exc, obx.GenericError) and any(c in str(exc) for c in _S3_AUTH_CODES)


class GrantedStore(WrapperStore[ObjectStore]):
    """A zarr store on S3 whose credentials come from a server and are renewed when refused.

    ``grant_source`` is called (in a worker thread, never on zarr's event loop) for the first
    grant and whenever S3 refuses the current one; it is the protocol module's "request
    credentials" call. ``label`` names the store in errors (``s3://bucket/key``).
    """

    def __init__(
        self,
        endpoint: str,
        grant_source: Callable[[], S3Grant],
        *,
        read_only: bool = True,
        region: str = "us-east-1",
        grant: S3Grant | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._grant_source = grant_source
        self._read_only = read_only
        self._region = region
        self._refresh_lock = threading.Lock()
        self._generation = 0
        self.grant = grant or grant_source()
        super().__init__(self._object_store(self.grant))

    @property
    def label(self) -> str:
        return f"s3://{self.grant.bucket}/{self.grant.key} at {self.endpoint}"

    def _object_store(self, grant: S3Grant) -> ObjectStore:
        s3 = S3Store(
            grant.bucket,
            prefix=grant.key,
            endpoint=self.endpoint,
            region=self._region,
            access_key_id=grant.access_key_id,
            secret_access_key=grant.secret_access_key,
            token=grant.session_token,
            virtual_hosted_style_request=False,
            client_options={
                "allow_http": self.endpoint.startswith("http://"),
                "connect_timeout": "5s",
                "timeout": "120s",
                "pool_max_idle_per_host": "64",
            },
            retry_config={
                "max_retries": 3,
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
                "retry_timeout": timedelta(seconds=30),
            },
        )
        return ObjectStore(s3, read_only=self._read_only)

    def _with_store(self, store: ObjectStore) -> GrantedStore:
        clone = object.__new__(GrantedStore)
        clone.__dict__.update(self.__dict__)
        clone._store = store
        return clone

    def refresh(self, seen_generation: int | None = None) -> None:
        """Ask the server for a new grant, unless another thread already did since ``seen``."""
        with self._refresh_lock:
            if seen_generation is not None and seen_generation != self._generation:
                return
            grant = self._grant_source()
            self._store = self._object_store(grant)
            self.grant = grant
            self._generation += 1

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.grant.expiring:
            await asyncio.to_thread(self.refresh, self._generation)
        generation = self._generation
        try:
            return await getattr(self._store, method)(*args, **kwargs)
        except Exception as exc:
            if not _is_auth_failure(exc):
                raise self._translate(exc, args) from None
        await asyncio.to_thread(self.refresh, generation)
        try:
            return await getattr(self._store, method)(*args, **kwargs)
        except Exception as exc:
            if _is_auth_failure(exc):
                raise AuthenticationError(
                    "S3 refused freshly granted credentials",
                    server=self.endpoint,
                    obj=f"s3://{self.grant.bucket}/{self.grant.key}",
                    hint="Check that the S3 endpoint is the one this server's data lives on",
                ) from None
            raise self._translate(exc, args) from None

    def _translate(self, exc: Exception, args: tuple) -> Exception:
        if isinstance(exc, obx.GenericError) and (
            "connect" in str(exc).lower() or "timed out" in str(exc).lower()
        ):
            key = args[0] if args and isinstance(args[0], str) else ""
            return ServerUnavailableError(
                "The S3 endpoint could not be reached",
                server=self.endpoint,
                obj=f"s3://{self.grant.bucket}/{self.grant.key}/{key}".rstrip("/"),
                hint="Check the S3 endpoint (?s3=, LABLINK_S3_ENDPOINT or servers.toml) "
                "and that it is running",
            )
        return exc

    async def get(self, key, prototype, byte_range=None):  # type: ignore[override]
        return await self._call("get", key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):  # type: ignore[override]
        return await self._call("get_partial_values", prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        return await self._call("exists", key)

    async def set(self, key, value) -> None:  # type: ignore[override]
        return await self._call("set", key, value)

    async def delete(self, key: str) -> None:
        return await self._call("delete", key)


#: Chunk reads that one compute may have in flight at once, across all images. zarr's own event
#: loop does the I/O; these threads only wait for it, so they cost little.
_PREFETCH_THREADS = 16
#: Prefetched chunks not collected by then were for a compute that failed: forget them.
_PREFETCH_TTL = 120.0
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _prefetch_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_PREFETCH_THREADS, thread_name_prefix="lablink-chunks")
        return _executor


class _ChunkReader:
    """Reads chunks of one zarr array; the chunks a compute will need are fetched ahead.

    dask computes with as many threads as there are cores (two here), so a plane of sixteen
    chunks would take eight round trips. When dask culls a graph it says which chunks the compute
    needs (:meth:`plan`); the reader then keeps up to ``_PREFETCH_WINDOW`` of them in flight and
    each task collects its own. The window bounds memory whatever the size of the compute.
    """

    def __init__(self, array: zarr.Array) -> None:
        self._array = array
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, ...], tuple[float, Future]] = {}
        self._planned: dict[tuple[int, ...], None] = {}  # an ordered set

    def region(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, self._array.chunks, self._array.shape, strict=True)
        )

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            entry = self._pending.pop(index, None)
            self._planned.pop(index, None)
            self._top_up()
        if entry is not None:
            return entry[1].result()
        return self._array[self.region(index)]

    def plan(self, indices: list[tuple[int, ...]]) -> None:
        """The next compute needs ``indices``: start fetching the first of them."""
        now = time.monotonic()
        with self._lock:
            for index, (started, future) in list(self._pending.items()):
                if now - started > _PREFETCH_TTL:  # planned by a compute that failed
                    future.cancel()
                    del self._pending[index]
            self._planned = dict.fromkeys(sorted(indices))
            self._top_up()

    def _top_up(self) -> None:
        executor = _prefetch_executor()
        now = time.monotonic()
        while self._planned and len(self._pending) < _PREFETCH_WINDOW:
            index = next(iter(self._planned))
            del self._planned[index]
            if index not in self._pending:
                future = executor.submit(self._array.__getitem__, self.region(index))
                self._pending[index] = (now, future)


class _ChunkLayer(MaterializedLayer):
    """The graph layer of a remote zarr array: tells its reader what a compute needs."""

    def __init__(self, tasks: dict, reader: _ChunkReader, prefix: int) -> None:
        super().__init__(tasks)
        self._reader = reader
        self._prefix = prefix

    def cull(self, keys: set, all_hlg_keys: Collection) -> tuple[Layer, Mapping]:
        needed = [key[self._prefix :] for key in keys if key in self.mapping]
        if len(needed) > 1:
            self._reader.plan(needed)
        return super().cull(keys, all_hlg_keys)


#: Chunks of one array in flight ahead of dask's own reads.
_PREFETCH_WINDOW = 16


def lazy_array(array: zarr.Array, name: str) -> da.Array:
    """A dask array over a zarr array with one dask chunk per zarr chunk.

    Matching the server's chunks means a napari plane fetches exactly the chunks it covers, and
    the chunks of one compute are fetched concurrently (see :class:`_ChunkReader`).
    """
    reader = _ChunkReader(array)
    key = f"{name}-{uuid.uuid4().hex[:12]}"
    grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks, strict=True)]
    tasks = {(key, *index): (reader.read, tuple(index)) for index in product(*grid)}
    graph = HighLevelGraph({key: _ChunkLayer(tasks, reader, 1)}, {key: set()})
    chunks = normalize_chunks(array.chunks, array.shape)
    return da.Array(graph, key, chunks=chunks, dtype=array.dtype)
