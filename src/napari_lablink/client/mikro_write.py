"""Uploading to mikro, both generations, so that nothing half-made is ever registered.

Generation 1 writes the xarray-style Dataset (zarr v2, variable ``data``) first and registers it
with ``fromXArray`` only when every chunk is in. Generation 2 asks for an upload grant per store,
writes zarr v3 arrays, closes every store with ``finishZarrUpload`` (``valid: false`` when
anything failed, so the server discards it) and only then registers the images with
``fromArrayLike``; a pyramid's levels are registered as scale views of the full image.
Registration mutations are never retried after a dropped connection, so they cannot run twice.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask.array as da
import zarr

from napari_lablink.client.datalayer import GrantedStore, S3Grant
from napari_lablink.client.errors import LablinkError, ProtocolError, UploadError
from napari_lablink.client.models import DIMS, Channel
from napari_lablink.client.upload import (
    Progress,
    downsampled,
    plane_chunks,
    pyramid_shapes,
    volume_chunks,
    write_blocks,
)

if TYPE_CHECKING:
    from napari_lablink.client.mikro import MikroServer

__all__ = ["UploadRequest", "upload_image", "upload_representation"]

log = logging.getLogger(__name__)

FROM_XARRAY = """
mutation FromXArray($xarray: XArrayInput!, $name: String, $variety: RepresentationVarietyInput,
                    $tags: [String], $origins: [ID], $omero: OmeroRepresentationInput) {
  fromXArray(xarray: $xarray, name: $name, variety: $variety, tags: $tags,
             origins: $origins, omero: $omero) { id name store shape dims variety }
}"""

REQUEST_ZARR_UPLOAD = """
mutation RequestZarrUpload($input: RequestZarrUploadInput!) {
  requestZarrUpload(input: $input) {
    accessKey secretKey sessionToken bucket key path store expiresIn maxBytes
  }
}"""

FINISH_ZARR_UPLOAD = """
mutation FinishZarrUpload($input: FinishZarrUploadInput!) {
  finishZarrUpload(input: $input) { id path shape dtype dimensionNames }
}"""

FROM_ARRAY_LIKE = """
mutation FromArrayLike($input: FromArrayLikeInput!) {
  fromArrayLike(input: $input) { id name store { id path shape } }
}"""


@dataclass(frozen=True)
class UploadRequest:
    """One image to upload: 5-D ``(c, t, z, y, x)`` data plus what describes it."""

    data: da.Array
    name: str
    tags: Sequence[str] = ()
    channels: Sequence[Channel] = ()
    #: micrometres per pixel for any of x, y, z
    pixel_size: dict[str, float] = field(default_factory=dict)
    labels: bool = False
    rgb: bool = False
    pyramid: bool = False
    #: ids of images on the same server this one was derived from
    origins: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.data.ndim != len(DIMS):
            raise ValueError(f"upload data must be (c, t, z, y, x), got shape {self.data.shape}")


def _hex(rgb: tuple[float, float, float] | None) -> str | None:
    return None if rgb is None else "#" + "".join(f"{round(v * 255):02x}" for v in rgb)


def _levels(request: UploadRequest) -> list[da.Array]:
    levels = [request.data]
    if request.pyramid:
        for _ in pyramid_shapes(request.data.shape):
            levels.append(downsampled(levels[-1], request.labels))
    return levels


class _Blocks:
    """Adds up block progress over several arrays into one running total."""

    def __init__(
        self, arrays: Sequence[tuple[da.Array, tuple[int, ...]]], progress: Progress | None
    ):
        self.total = sum(_block_count(array.shape, chunks) for array, chunks in arrays)
        self.offset = 0
        self._progress = progress

    def for_next(self, shape: Sequence[int], chunks: Sequence[int]) -> Progress | None:
        if self._progress is None:
            return None
        offset, outer = self.offset, self._progress
        self.offset += _block_count(shape, chunks)
        return lambda done, _total: outer(offset + done, self.total)


def _block_count(shape: Sequence[int], chunks: Sequence[int]) -> int:
    count = 1
    for n, c in zip(shape, chunks, strict=True):
        count *= -(-n // c)
    return count


def _write_failed(server: MikroServer, endpoint: str, obj: str, exc: Exception) -> UploadError:
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
        f"Writing the data to S3 failed ({server.transport.scrub(said)[:240]})",
        server=endpoint,
        obj=obj,
        hint="Nothing was registered; try again",
    )


# -- generation 1 ---------------------------------------------------------------------------------


def upload_representation(
    server: MikroServer,
    endpoint: str,
    request: UploadRequest,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Write the Dataset, then register it; returns the new representation's id."""
    data = request.data
    chunks = volume_chunks(data.shape, data.dtype.itemsize)
    key = f"{uuid.uuid4()}.zarr"
    obj = f"new representation {request.name!r}"

    def grant() -> S3Grant:
        creds = server.graphql(
            "query Request { request { accessKey secretKey sessionToken status } }", obj=obj
        )["request"]
        if not creds or not creds.get("accessKey"):
            raise UploadError("The server granted no S3 credentials", server=server.label, obj=obj)
        return S3Grant(
            creds["accessKey"], creds["secretKey"], creds.get("sessionToken"), "zarr", key
        )

    store = GrantedStore(endpoint, grant, read_only=False)
    try:
        group = zarr.open_group(store, mode="w", zarr_format=2, attributes={"fileversion": "v1"})
        array = group.create_array(
            "data",
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            fill_value=0,
            attributes={"_ARRAY_DIMENSIONS": list(DIMS)},
        )
        write_blocks(data, array, progress=progress, cancel=cancel)
        zarr.consolidate_metadata(store, zarr_format=2)
    except LablinkError:
        raise
    except Exception as exc:
        raise _write_failed(server, endpoint, obj, exc) from exc
    size = request.pixel_size
    omero = {
        "physicalSize": {d: size.get(d) for d in ("x", "y", "z")},
        "channels": [{"name": c.name, "color": _hex(c.color)} for c in request.channels],
    }
    variety = "MASK" if request.labels else "RGB" if request.rgb else "VOXEL"
    created = server.graphql(
        FROM_XARRAY,
        {
            "xarray": f"zarr/{key}",
            "name": request.name,
            "variety": variety,
            "tags": list(request.tags),
            "origins": list(request.origins),
            "omero": omero,
        },
        obj=obj,
        idempotent=False,
    )["fromXArray"]
    if not created or not created.get("id"):
        raise ProtocolError("fromXArray returned no representation", server=server.label, obj=obj)
    return str(created["id"])


# -- generation 2 ---------------------------------------------------------------------------------


@dataclass
class _Store:
    grant: dict[str, Any]
    finished: bool = False


def upload_image(
    server: MikroServer,
    endpoint: str,
    request: UploadRequest,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Upload every level, close the stores, then register; returns the new image's id."""
    obj = f"new image {request.name!r}"
    levels = _levels(request)
    planned = [(level, plane_chunks(level.shape)) for level in levels]
    blocks = _Blocks(planned, progress)
    stores: list[_Store] = []
    try:
        for level, chunks in planned:
            grant = server.graphql(
                REQUEST_ZARR_UPLOAD,
                {"input": {"shape": list(level.shape), "chunks": list(chunks), "version": "3"}},
                obj=obj,
                idempotent=False,
            )["requestZarrUpload"]
            stores.append(_Store(grant))
            _check_size(server, grant, level, obj)
            target = _upload_array(server, endpoint, grant, level, chunks, obj)
            write_blocks(
                level, target, progress=blocks.for_next(level.shape, chunks), cancel=cancel
            )
        for store in stores:
            server.graphql(
                FINISH_ZARR_UPLOAD,
                {"input": {"storeId": store.grant["store"], "valid": True}},
                obj=obj,
                idempotent=False,
            )
            store.finished = True
    except BaseException as exc:
        _abandon(server, stores, obj)
        if isinstance(exc, LablinkError) or not isinstance(exc, Exception):
            raise
        raise _write_failed(server, endpoint, obj, exc) from exc
    full_id = _register(server, request, stores[0].grant["store"], obj, scale=None)
    for n, store in enumerate(stores[1:], start=1):
        _register(server, request, store.grant["store"], obj, scale=(full_id, 2**n))
    return full_id


def _check_size(server: MikroServer, grant: dict[str, Any], level: da.Array, obj: str) -> None:
    limit = grant.get("maxBytes")
    if limit and level.nbytes > int(limit):
        raise UploadError(
            f"The image is {level.nbytes / 2**20:.0f} MiB; the server accepts at most "
            f"{int(limit) / 2**20:.0f} MiB per store",
            server=server.label,
            obj=obj,
            hint="Upload a smaller region or ask the server's administrator to raise the limit",
        )


def _upload_array(
    server: MikroServer,
    endpoint: str,
    grant: dict[str, Any],
    level: da.Array,
    chunks: tuple[int, ...],
    obj: str,
) -> zarr.Array:
    s3_grant = S3Grant(
        grant["accessKey"],
        grant["secretKey"],
        grant.get("sessionToken"),
        grant["bucket"],
        grant["key"],
    )

    def no_renewal() -> S3Grant:
        # A new upload grant would be a new store: an upload that outlives its grant fails
        # cleanly instead of writing half an image into a second store.
        raise UploadError(
            "S3 refused the upload grant (it may have expired)",
            server=endpoint,
            obj=obj,
            hint="Nothing was registered; try again",
        )

    store = GrantedStore(endpoint, no_renewal, grant=s3_grant, read_only=False)
    return zarr.create_array(
        store,
        shape=level.shape,
        chunks=chunks,
        dtype=level.dtype,
        fill_value=0,
        dimension_names=list(DIMS),
        zarr_format=3,
        overwrite=True,
    )


def _abandon(server: MikroServer, stores: list[_Store], obj: str) -> None:
    """Tell the server to discard every store not yet finished (best effort: we are failing)."""
    for store in stores:
        if store.finished:
            continue
        try:
            server.graphql(
                FINISH_ZARR_UPLOAD,
                {"input": {"storeId": store.grant["store"], "valid": False}},
                obj=obj,
                idempotent=False,
            )
        except LablinkError as exc:
            log.warning("could not abandon store %s: %s", store.grant.get("store"), exc)


def _register(
    server: MikroServer,
    request: UploadRequest,
    store_id: str,
    obj: str,
    scale: tuple[str, int] | None,
) -> str:
    size = request.pixel_size
    factor = scale[1] if scale else 1
    payload: dict[str, Any] = {
        "array": store_id,
        "name": request.name if scale is None else f"{request.name} (1/{factor})",
        "tags": list(request.tags),
        "channelViews": [
            {"name": c.name, "cMin": i, "cMax": i, "emissionWavelength": c.emission_wavelength}
            for i, c in enumerate(request.channels)
        ],
    }
    if size:
        diagonal = [
            size.get("x", 1.0) * factor,
            size.get("y", 1.0) * factor,
            size.get("z", 1.0),
            1.0,
        ]
        payload["transformationViews"] = [
            {"affineMatrix": [[diagonal[i] if i == j else 0.0 for j in range(4)] for i in range(4)]}
        ]
    if scale is not None:
        payload["scaleViews"] = [
            {
                "parent": scale[0],
                "scaleX": factor,
                "scaleY": factor,
                "scaleZ": 1,
                "scaleT": 1,
                "scaleC": 1,
            }
        ]
    created = server.graphql(FROM_ARRAY_LIKE, {"input": payload}, obj=obj, idempotent=False)[
        "fromArrayLike"
    ]
    if not created or not created.get("id"):
        raise ProtocolError("fromArrayLike returned no image", server=server.label, obj=obj)
    return str(created["id"])
