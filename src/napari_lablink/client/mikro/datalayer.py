"""Zarr on S3 with server-granted credentials: lazy dask arrays out, credential refresh inside.

Servers hand out short-lived S3 credentials (STS session credentials) for their stores. A
:class:`GrantedStore` reads and writes through obstore (Rust, concurrent) and, when S3 refuses a
grant (expired or revoked), asks the server for a new one and retries once, so a layer opened an
hour ago keeps working.

Stores and lazy arrays pickle, for ``dask.distributed``: a store travels with its current grant
and its grant source (which must pickle too), and each process keeps one store per original, so
the chunk reads of a worker share one connection pool and one renewal.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import dask.array as da
import numpy as np
import obstore.exceptions as obx
from obstore.store import S3Store
from zarr.abc.store import ByteRequest
from zarr.storage import ObjectStore, WrapperStore
from zarr.types import AnyArray

from napari_lablink.client.deadline import configured_seconds
from napari_lablink.client.errors import (
    AuthenticationError,
    NotFoundError,
    ServerUnavailableError,
    UploadError,
)
from napari_lablink.client.lazy import ChunkIndex, ReadAhead, chunked_array
from napari_lablink.client.mikro.s3errors import s3_failure
from napari_lablink.client.outages import Source

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["GrantedStore", "S3Grant", "granted", "lazy_array", "missing_data", "write_failed"]

T = TypeVar("T")

#: The most one S3 request (a chunk) may take.
S3_REQUEST_SECONDS = 20.0
#: Ask for a new grant this many seconds before the old one expires (or a quarter of its
#: lifetime before, for grants shorter than that).
_EXPIRY_MARGIN = 30.0
#: S3 error codes that mean "these credentials are no good" (S3 sends ExpiredToken with a 400).
_S3_AUTH_CODES = frozenset(
    {"ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "AccessDenied", "SignatureDoesNotMatch"}
)
#: Where obstore's messages put the HTTP status and the S3 error code of a refused request.
_STATUS = re.compile(r"status code: (\d{3})\b|\bstatus: (\d{3}),")
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")


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
    issued_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        return f"S3Grant(bucket={self.bucket!r}, key={self.key!r}, expires_at={self.expires_at})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.secret_access_key, self.session_token) if s)

    @property
    def expiring(self) -> bool:
        if self.expires_at is None:
            return False
        margin = min(_EXPIRY_MARGIN, (self.expires_at - self.issued_at) / 4)
        return time.time() > self.expires_at - margin


def granted(
    answer: Mapping[str, Any] | None,
    bucket: str,
    key: str,
    *,
    expires_at: float | None = None,
    server: str,
    obj: str,
) -> S3Grant:
    """The grant in a server's credentials answer (``accessKey``, ``secretKey``, ...).

    An answer without keys means the server will not let this user at the data.
    """
    if not answer or not answer.get("accessKey") or not answer.get("secretKey"):
        raise AuthenticationError(
            "The server granted no S3 credentials",
            server=server,
            obj=obj,
            hint="Ask the server's administrator for data access",
        )
    return S3Grant(
        access_key_id=str(answer["accessKey"]),
        secret_access_key=str(answer["secretKey"]),
        session_token=answer.get("sessionToken"),
        bucket=bucket,
        key=key,
        expires_at=expires_at,
    )


def write_failed(
    exc: Exception, scrub: Callable[[str], str], endpoint: str, obj: str
) -> UploadError:
    """The user's message for a write that S3 refused even after retrying."""
    text = str(exc) or type(exc).__name__
    request = re.search(r"performing (\w+) (\S+)", text)
    status = re.search(r"status code: (\d{3}[A-Za-z ]*)", text)
    retries = re.search(r"after (\d+) retries", text)
    if request and status:  # obstore's wording: keep what a person needs
        said = f"{request[1]} {request[2]} answered {status[1].strip()}"
        said += f" after {retries[1]} retries" if retries else ""
    else:
        said = text.splitlines()[0]
    return UploadError(
        f"Writing the data to S3 failed ({scrub(said)[:240]})",
        server=endpoint,
        obj=obj,
        hint="Nothing was registered; try again",
    )


def missing_data(store: GrantedStore, server: str, obj: str) -> NotFoundError:
    """The user's message for zarr data that is not where the mikro ``server`` says it is.

    A real S3 answers 404 for an object it lacks, and so does any web server that is not S3 at
    all; the second is the likelier cause, and zarr's own error names neither server nor object.
    """
    return NotFoundError(
        f"The S3 endpoint {store.endpoint} has no zarr data at "
        f"s3://{store.grant.bucket}/{store.grant.key}",
        server=server,
        obj=obj,
        hint="Check that the S3 endpoint (?s3=, LABLINK_S3_ENDPOINT or servers.toml) is the "
        "storage of this mikro server; an endpoint that is not S3 answers every object as missing",
    )


def _is_auth_failure(exc: BaseException) -> bool:
    """Whether S3 refused the credentials, judged by the status and S3 error code it answered.

    Only those: the rest of obstore's text holds the object key and timings, where "403" or a
    code's name may appear by chance, and a needless new grant would hide the real failure.
    """
    if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError):
        return True
    if not isinstance(exc, obx.GenericError):
        return False
    text = str(exc)
    statuses = {a or b for a, b in _STATUS.findall(text)}
    return bool(statuses & {"401", "403"}) or bool(set(_S3_CODE.findall(text)) & _S3_AUTH_CODES)


class GrantedStore(WrapperStore[ObjectStore[S3Store]]):
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
        #: Names this store across processes, so every copy in one process is one store.
        self.identity = uuid.uuid4().hex
        self.grant = grant or grant_source()
        super().__init__(self._object_store(self.grant))
        _stores[self.identity] = self

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _restore_store,
            (
                self.identity,
                self.endpoint,
                self._grant_source,
                self._read_only,
                self._region,
                self.grant,
            ),
        )

    def __repr__(self) -> str:
        return f"GrantedStore({self.label!r})"

    @property
    def label(self) -> str:
        return f"s3://{self.grant.bucket}/{self.grant.key} at {self.endpoint}"

    def _object_store(self, grant: S3Grant) -> ObjectStore[S3Store]:
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
                # Per request; with retry_timeout below, a silent endpoint costs one request's
                # timeout (no retry starts after 15 s), never obstore's default of minutes.
                "timeout": f"{min(S3_REQUEST_SECONDS, configured_seconds()):g}s",
                "pool_max_idle_per_host": "64",
            },
            retry_config={
                "max_retries": 3,
                "backoff": {
                    # A refused connection fails within ~0.35 s (three quick retries).
                    "init_backoff": timedelta(milliseconds=50),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
                "retry_timeout": timedelta(seconds=15),
            },
        )
        return ObjectStore(s3, read_only=self._read_only)

    def _with_store(self, store: ObjectStore[S3Store]) -> GrantedStore:
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

    async def _call(self, operation: Callable[[ObjectStore[S3Store]], Awaitable[T]], key: str) -> T:
        """Run ``operation`` on the current store; on an S3 refusal renew the grant once."""
        if self.grant.expiring:
            await asyncio.to_thread(self.refresh, self._generation)
        generation = self._generation
        try:
            return await operation(self._store)
        except Exception as exc:
            if not _is_auth_failure(exc):
                raise self._translate(exc, key) from None
        await asyncio.to_thread(self.refresh, generation)
        try:
            return await operation(self._store)
        except Exception as exc:
            if _is_auth_failure(exc):
                raise AuthenticationError(
                    "S3 refused freshly granted credentials",
                    server=self.endpoint,
                    obj=f"s3://{self.grant.bucket}/{self.grant.key}",
                    hint="Check that the S3 endpoint is the one this server's data lives on",
                ) from None
            raise self._translate(exc, key) from None

    def _translate(self, exc: Exception, key: str) -> Exception:
        obj = f"s3://{self.grant.bucket}/{self.grant.key}/{key}".rstrip("/")
        translated = s3_failure(exc, self.endpoint, obj)
        if translated is not None:
            return translated
        if isinstance(exc, obx.GenericError) and (
            "connect" in str(exc).lower() or "timed out" in str(exc).lower()
        ):
            return ServerUnavailableError(
                "The S3 endpoint could not be reached",
                server=self.endpoint,
                obj=f"s3://{self.grant.bucket}/{self.grant.key}/{key}".rstrip("/"),
                hint="Check the S3 endpoint (?s3=, LABLINK_S3_ENDPOINT or servers.toml) "
                "and that it is running",
            )
        return exc

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        return await self._call(lambda store: store.get(key, prototype, byte_range), key)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        ranges = list(key_ranges)  # iterated again on a retry
        return await self._call(lambda store: store.get_partial_values(prototype, ranges), "")

    async def exists(self, key: str) -> bool:
        return await self._call(lambda store: store.exists(key), key)

    async def set(self, key: str, value: Buffer) -> None:
        await self._call(lambda store: store.set(key, value), key)

    async def delete(self, key: str) -> None:
        await self._call(lambda store: store.delete(key), key)


#: Every store of this process by identity: the originals, and copies unpickled here.
_stores: weakref.WeakValueDictionary[str, GrantedStore] = weakref.WeakValueDictionary()
#: Copies unpickled here stay alive this long (most recent first), or a worker would open a new
#: connection pool for every task.
_kept: OrderedDict[str, GrantedStore] = OrderedDict()
_KEEP = 32
_stores_lock = threading.Lock()


def _restore_store(
    identity: str,
    endpoint: str,
    grant_source: Callable[[], S3Grant],
    read_only: bool,
    region: str,
    grant: S3Grant,
) -> GrantedStore:
    """The store ``identity`` in this process: the one already here, or a copy of it."""
    with _stores_lock:
        store = _stores.get(identity)
        if store is None:
            store = GrantedStore(
                endpoint, grant_source, read_only=read_only, region=region, grant=grant
            )
            del _stores[store.identity]
            store.identity = identity
            _stores[identity] = store
        _kept[identity] = store
        _kept.move_to_end(identity)
        while len(_kept) > _KEEP:
            _kept.popitem(last=False)
        return store


class _ZarrChunks:
    """Reads the zarr chunk at a grid index; pickles with its array (and so its store)."""

    def __init__(self, array: AnyArray) -> None:
        self.array = array

    def __call__(self, index: ChunkIndex) -> np.ndarray:
        return np.asarray(self.array[self._region(index, index)])

    def whole(self) -> np.ndarray:
        """The whole array in one zarr call: its chunks fetched concurrently, each decoded
        straight into the result."""
        return np.asarray(self.array[...])

    def many(self, indices: list[ChunkIndex]) -> list[np.ndarray]:
        """Several chunks: the box around them in one zarr call (which fetches its chunks
        concurrently) when they fill it, else one call each."""
        low = tuple(min(axis) for axis in zip(*indices, strict=True))
        high = tuple(max(axis) for axis in zip(*indices, strict=True))
        if math.prod(h - lo + 1 for lo, h in zip(low, high, strict=True)) != len(set(indices)):
            return [self(index) for index in indices]
        box = np.asarray(self.array[self._region(low, high)])
        chunks = self.array.chunks
        return [
            box[
                tuple(
                    slice((i - lo) * c, (i - lo + 1) * c)
                    for i, lo, c in zip(index, low, chunks, strict=True)
                )
            ]
            for index in indices
        ]

    def _region(self, low: ChunkIndex, high: ChunkIndex) -> tuple[slice, ...]:
        """The pixels of chunks ``low`` to ``high`` (inclusive) along every axis."""
        return tuple(
            slice(lo * c, min((h + 1) * c, n))
            for lo, h, c, n in zip(low, high, self.array.chunks, self.array.shape, strict=True)
        )

    def __repr__(self) -> str:
        return f"_ZarrChunks({self.array.store!r})"


def lazy_array(
    array: AnyArray, name: str, *, source: Source | None = None, image: str = ""
) -> da.Array:
    """A dask array over a zarr array with one dask chunk per zarr chunk.

    Matching the server's chunks means a napari plane fetches exactly the chunks it covers, and
    the chunks of one compute are fetched together (see
    :class:`~napari_lablink.client.lazy.ReadAhead`); computing the whole array is one zarr read.
    ``source`` and ``image`` are the server's outage guard and the image's name (see
    :func:`~napari_lablink.client.lazy.chunked_array`).
    """
    chunks = _ZarrChunks(array)
    ahead = ReadAhead(chunks, chunks.many)
    return chunked_array(
        f"{name}-{uuid.uuid4().hex[:12]}",
        [_sizes(n, c) for n, c in zip(array.shape, array.chunks, strict=True)],
        array.dtype,
        ahead.read,
        plan=ahead.plan,
        source=source,
        image=image,
        read_whole=chunks.whole,
    )


def _sizes(length: int, chunk: int) -> tuple[int, ...]:
    """The chunk sizes along one axis of a regular chunk grid, the last one cut short."""
    return tuple(min(chunk, length - start) for start in range(0, length, chunk)) or (0,)
