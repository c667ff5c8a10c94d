"""mikro generation 1: representations, each an xarray Dataset in zarr v2 on S3.

The Dataset sits at the representation's ``store`` (``<bucket>/<key>``): one variable ``data``
with dims ``c, t, z, y, x``. One credentials query grants the whole bucket, for reading and
writing. An upload writes the Dataset first and registers it with ``fromXArray`` only when every
chunk is in, tagged with an upload key so a lost answer is looked up instead of sent twice
(:mod:`.reconcile`); a failed upload deletes what it registered and the Dataset it wrote.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import zarr
from zarr.errors import NodeNotFoundError

from napari_lablink.client import outages
from napari_lablink.client.browse import split_tags
from napari_lablink.client.colors import parse_color
from napari_lablink.client.errors import (
    LablinkError,
    NotFoundError,
    ProtocolError,
    UploadError,
    malformed_answers,
    mark_upload_failure,
)
from napari_lablink.client.mikro import queries, reconcile
from napari_lablink.client.mikro.blocks import volume_chunks, write_blocks
from napari_lablink.client.mikro.datalayer import (
    GrantedStore,
    S3Grant,
    granted,
    lazy_array,
    missing_data,
    write_failed,
)
from napari_lablink.client.mikro.generation import Listed, UploadRequest
from napari_lablink.client.mikro.s3errors import write_failure
from napari_lablink.client.mikro.session import MikroSession
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.upload import Progress

__all__ = ["Representations"]

log = logging.getLogger(__name__)

#: The bucket generation 1 keeps every Dataset in.
_BUCKET = "zarr"


class Representations:
    """Generation 1 of a mikro server."""

    kind = "representation"

    def __init__(self, session: MikroSession) -> None:
        self.session = session

    def search(self, query: str, offset: int, limit: int) -> list[Listed]:
        """Representations by name and ``#tag`` words."""
        name, tags = split_tags(query)
        variables = {"name": name or None, "tags": tags or None, "limit": limit, "offset": offset}
        found = self.session.graphql(
            queries.LIST_REPRESENTATIONS, variables, obj="representations"
        )["representations"]
        return [
            Listed(
                object_id=str(item["id"]),
                name=item.get("name") or f"representation {item['id']}",
                tags=reconcile.user_tags(item.get("tags")),
                shape=tuple(item["shape"]) if item.get("shape") else None,
            )
            for item in found or []
        ]

    def open(self, object_id: str, endpoint: str, uri: str) -> RemoteImage:
        obj = f"representation {object_id}"
        label = self.session.label
        rep = self.session.graphql(queries.GET_REPRESENTATION, {"id": object_id}, obj=obj)[
            "representation"
        ]
        if rep is None:
            raise NotFoundError("No such representation", server=label, obj=obj)
        bucket, _, key = str(rep.get("store") or "").partition("/")
        if not bucket or not key:
            raise ProtocolError(
                f"The representation's store {rep.get('store')!r} is not '<bucket>/<key>'",
                server=label,
                obj=obj,
            )

        store = GrantedStore(endpoint, _DatasetGrant(self.session, bucket, key, obj))
        try:
            group = zarr.open_group(store, mode="r", zarr_format=2, use_consolidated=True)
        except NodeNotFoundError:
            raise missing_data(store, label, obj) from None
        array = group.get("data")
        if not isinstance(array, zarr.Array):
            raise ProtocolError("The Dataset's 'data' is not an array", server=label, obj=obj)
        named = array.attrs.get("_ARRAY_DIMENSIONS")
        dims = tuple(named if isinstance(named, list) and named else rep.get("dims") or ())
        if dims != DIMS:
            raise ProtocolError(
                f"The Dataset's variable 'data' has dims {dims}, not {DIMS}",
                server=label,
                obj=obj,
            )
        omero = rep.get("omero") or {}
        size = omero.get("physicalSize") or {}
        described = omero.get("channels") or []
        variety = rep.get("variety")
        return RemoteImage(
            uri=uri,
            name=rep.get("name") or obj,
            dims=DIMS,
            levels=[
                lazy_array(
                    array,
                    f"mikro-{store.label}-0",
                    source=outages.source(label),
                    image=rep.get("name") or obj,
                )
            ],
            pixel_size={d: float(size[d]) for d in ("z", "y", "x") if size.get(d)},
            channels=[_channel(described, i) for i in range(array.shape[0])],
            is_labels=variety == "MASK",
            is_rgb=variety == "RGB" and array.shape[0] in (3, 4),
            server_metadata={k: rep.get(k) for k in ("id", "name", "variety", "store")}
            | {"tags": list(reconcile.user_tags(rep.get("tags")))}
            | {"sample": rep.get("sample"), "origins": rep.get("origins")},
        )

    def upload(
        self,
        request: UploadRequest,
        endpoint: str,
        *,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> str:
        data = request.data
        key = f"{uuid.uuid4()}.zarr"
        obj = f"new representation {request.name!r}"
        label = self.session.label

        def grant() -> S3Grant:
            answer = self.session.graphql(queries.REQUEST_CREDENTIALS, obj=obj)["request"]
            if not answer or not answer.get("accessKey"):
                raise UploadError("The server granted no S3 credentials", server=label, obj=obj)
            return granted(answer, _BUCKET, key, server=label, obj=obj)

        if data.size == 0:
            raise UploadError(
                f"The data has no pixels (shape {tuple(data.shape)})",
                server=label,
                obj=obj,
                hint="Nothing was registered; upload a layer with data",
            )
        upload_key = reconcile.new_key()
        try:
            store = GrantedStore(endpoint, grant, read_only=False)
        except LablinkError as exc:
            mark_upload_failure(exc)  # nothing written, nothing registered
            raise
        try:
            group = zarr.open_group(
                store, mode="w", zarr_format=2, attributes={"fileversion": "v1"}
            )
            array = group.create_array(
                "data",
                shape=data.shape,
                chunks=volume_chunks(data.shape, data.dtype.itemsize),
                dtype=data.dtype,
                # xarray, which mikro's own clients read with, masks a fill value as NaN (and
                # turns integers into floats); with none, it reads the values as written. Every
                # chunk is then stored, because old zarr leaves absent chunks without a fill value
                # uninitialised.
                fill_value=None,
                config={"write_empty_chunks": True},
                attributes={"_ARRAY_DIMENSIONS": list(DIMS)},
            )
            write_blocks(data, array, progress=progress, cancel=cancel)
            zarr.consolidate_metadata(store, zarr_format=2)
            with malformed_answers(label, obj):
                return self._register(request, key, upload_key, obj)
        except BaseException as exc:
            remains = self._roll_back(upload_key, obj)
            _delete_dataset(store)
            if isinstance(exc, LablinkError):
                mark_upload_failure(exc, remains)
                raise
            if not isinstance(exc, Exception):
                raise
            failure = write_failure(
                exc, lambda e: write_failed(e, self.session.scrub, endpoint, obj), endpoint, obj
            )
            raise mark_upload_failure(failure, remains) from exc

    def _register(self, request: UploadRequest, key: str, upload_key: str, obj: str) -> str:
        """``fromXArray`` once: a lost answer is looked up by the upload key, not resent."""
        variables = {
            "xarray": f"{_BUCKET}/{key}",
            "name": request.name,
            "variety": "MASK" if request.labels else "RGB" if request.rgb else "VOXEL",
            "tags": [*request.tags, upload_key],
            "origins": list(request.origins),
            "omero": _omero(request),
        }

        def create() -> str:
            created = self.session.graphql(
                queries.FROM_XARRAY, variables, obj=obj, idempotent=False
            )["fromXArray"]
            if not created or not created.get("id"):
                raise ProtocolError(
                    "fromXArray returned no representation", server=self.session.label, obj=obj
                )
            return str(created["id"])

        return reconcile.create_once(
            create,
            lambda: reconcile.find_representations(self.session, upload_key, obj),
            lambda ids: reconcile.delete_representations(self.session, ids, obj),
            "fromXArray",
        )

    def _roll_back(self, upload_key: str, obj: str) -> list[str]:
        """Delete whatever this upload registered (a lost answer included)."""
        try:
            found = reconcile.find_representations(self.session, upload_key, obj)
        except LablinkError as exc:
            log.warning("could not look for registrations of %s: %s", upload_key, exc)
            return [f"any representation tagged {upload_key}"]
        return reconcile.delete_representations(self.session, found, obj)


def _delete_dataset(store: GrantedStore) -> None:
    """Remove a written Dataset nothing will register (best effort: we are failing)."""
    try:
        asyncio.run(store.delete_dir(""))
    except Exception as exc:
        log.warning("could not delete the unregistered Dataset %s: %s", store.label, exc)


@dataclass(frozen=True)
class _DatasetGrant:
    """Asks for the grant of the Dataset at ``bucket/key``: a grant source that pickles."""

    session: MikroSession
    bucket: str
    key: str
    obj: str

    def __call__(self) -> S3Grant:
        answer = self.session.graphql(queries.REQUEST_CREDENTIALS, obj=self.obj)["request"]
        return granted(answer, self.bucket, self.key, server=self.session.label, obj=self.obj)


def _channel(described: list[dict[str, Any]], index: int) -> Channel:
    """Channel ``index`` as the OMERO metadata describes it, or a numbered one."""
    view = described[index] if index < len(described) else {}
    return Channel(
        name=view.get("name") or f"Channel {index}", color=parse_color(view.get("color"))
    )


def _omero(request: UploadRequest) -> dict[str, Any]:
    size = request.pixel_size
    return {
        "physicalSize": {d: size.get(d) for d in ("x", "y", "z")},
        "channels": [{"name": c.name, "color": _hex(c.color)} for c in request.channels],
    }


def _hex(rgb: tuple[float, float, float] | None) -> str | None:
    return None if rgb is None else "#" + "".join(f"{round(v * 255):02x}" for v in rgb)
