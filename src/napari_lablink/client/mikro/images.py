"""mikro generation 2: images, each a zarr v3 array with dimension names, plus a pyramid.

Every store (the full image and each pyramid level) has its own grant. An upload asks for an
upload grant per store, writes zarr v3 arrays, closes every store with ``finishZarrUpload``
(``valid: false`` when anything failed, so the server discards it) and only then registers the
images with ``fromArrayLike``; a pyramid's levels are registered as scale views of the full
image. A registration whose answer is lost is looked up by the upload's key before it is sent
again (:mod:`.reconcile`), and a failed upload deletes what it registered.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import zarr
from zarr.errors import NodeNotFoundError
from zarr.types import AnyArray

from napari_lablink.client import outages
from napari_lablink.client.colors import wavelength_to_rgb
from napari_lablink.client.errors import (
    LablinkError,
    NotFoundError,
    ProtocolError,
    UploadError,
    malformed_answers,
    mark_upload_failure,
)
from napari_lablink.client.mikro import queries, reconcile, render
from napari_lablink.client.mikro.blocks import plane_chunks, pyramid_shapes, write_blocks
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

__all__ = ["Images"]

log = logging.getLogger(__name__)


class Images:
    """Generation 2 of a mikro server."""

    kind = "image"

    def __init__(self, session: MikroSession) -> None:
        self.session = session

    # -- reading --------------------------------------------------------------------------------

    def search(self, query: str, offset: int, limit: int) -> list[Listed]:
        """Images by the server's own search over the text ``query``, with what a browser shows
        of each (channels, pixel size) and the ids of its pyramid levels."""
        variables = {
            "filters": {"search": query} if query.strip() else None,
            "pagination": {"offset": offset, "limit": limit},
        }
        found = self.session.graphql(queries.LIST_IMAGES, variables, obj="images")["images"]
        listed = []
        for item in found or []:
            store = item.get("store") or {}
            listed.append(
                Listed(
                    object_id=str(item["id"]),
                    name=item.get("name") or f"image {item['id']}",
                    tags=reconcile.user_tags(item.get("tags")),
                    shape=tuple(store["shape"]) if store.get("shape") else None,
                    dtype=store.get("dtype"),
                    channels=tuple(
                        str(v["name"]) for v in item.get("channelViews") or [] if v.get("name")
                    ),
                    pixel_size=_pixel_size(item.get("affineTransformationViews") or []),
                    levels=tuple(
                        str(v["image"]["id"])
                        for v in item.get("derivedScaleViews") or []
                        if v.get("image")
                    ),
                )
            )
        return listed

    def open(self, object_id: str, endpoint: str, uri: str) -> RemoteImage:
        obj = f"image {object_id}"
        label = self.session.label
        image = self.session.graphql(queries.GET_IMAGE, {"id": object_id}, obj=obj)["image"]
        if image is None:
            raise NotFoundError("No such image", server=label, obj=obj)
        views = sorted(
            (v for v in image.get("derivedScaleViews") or [] if v.get("image")),
            key=lambda v: (v.get("scaleX") or 1) * (v.get("scaleY") or 1),
        )
        store_ids = [image["store"]["id"]] + [v["image"]["store"]["id"] for v in views]
        # Each level needs its own grant; ask for them together so a pyramid opens in one round.
        with ThreadPoolExecutor(max_workers=min(8, len(store_ids))) as pool:
            arrays = list(pool.map(lambda sid: self._open_store(endpoint, sid, obj), store_ids))
        full = arrays[0]
        dims = tuple(full.metadata.dimension_names or ())  # type: ignore[union-attr]
        if not dims and full.ndim == len(DIMS):
            dims = DIMS
        if len(dims) != full.ndim or any(d not in DIMS for d in dims):
            raise ProtocolError(
                f"The array's dimension names {dims} are not among {DIMS}", server=label, obj=obj
            )
        order = sorted(range(len(dims)), key=lambda i: DIMS.index(dims[i]))
        levels = []
        for n, array in enumerate(arrays):
            if array.ndim != full.ndim:
                raise ProtocolError(
                    f"Pyramid level {n} has {array.ndim} dims, not {full.ndim}",
                    server=label,
                    obj=obj,
                )
            level = lazy_array(
                array,
                f"mikro-{image['store']['id']}-{store_ids[n]}",
                source=outages.source(label),
                image=image.get("name") or obj,
            )
            if order != list(range(len(dims))):
                level = level.transpose(order)
            levels.append(level)
        dims = tuple(dims[i] for i in order)
        pixel_size = _pixel_size(image.get("affineTransformationViews") or [])
        return RemoteImage(
            uri=uri,
            name=image.get("name") or obj,
            dims=dims,
            levels=levels,
            # A spacing along an axis of one plane means nothing (and would not round-trip).
            pixel_size={
                d: s for d, s in pixel_size.items() if d in dims and full.shape[dims.index(d)] > 1
            },
            channels=_channels(
                image.get("channelViews") or [],
                image.get("rgbContexts") or [],
                levels[0].shape,
                dims,
            ),
            # Generation 2 has no "variety": a label image is one that carries mask views.
            is_labels=bool(image.get("maskViews") or image.get("instanceMaskViews")),
            server_metadata={
                "id": image.get("id"),
                "name": image.get("name"),
                "tags": list(reconcile.user_tags(image.get("tags"))),
                "store": {k: image["store"].get(k) for k in ("id", "path", "shape", "dtype")},
                "pyramid": [v["image"]["id"] for v in views],
            },
        )

    def _open_store(self, endpoint: str, store_id: str, obj: str) -> AnyArray:
        store = GrantedStore(endpoint, _AccessGrant(self.session, store_id, obj))
        try:
            return zarr.open_array(store, mode="r", zarr_format=3)
        except NodeNotFoundError:
            raise missing_data(store, self.session.label, obj) from None

    # -- writing --------------------------------------------------------------------------------

    def upload(
        self,
        request: UploadRequest,
        endpoint: str,
        *,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> str:
        """Upload every level, close the stores, then register the full image and its levels.

        Every registration carries the upload's key tag, so a registration whose answer was
        lost is looked up instead of sent twice. If anything fails, what was registered is
        deleted again and every store not in use is finished invalid; the error says whether
        anything stayed registered.
        """
        obj = f"new image {request.name!r}"
        key = reconcile.new_key()
        data = request.data
        _refuse_empty(data, self.session.label, obj)
        shapes = [tuple(data.shape), *(pyramid_shapes(data.shape) if request.pyramid else [])]
        stores: list[_Store] = []
        registered: list[str] = []
        try:
            with malformed_answers(self.session.label, obj):
                targets = []
                for shape in shapes:
                    chunks = plane_chunks(shape)
                    grant = self.session.graphql(
                        queries.REQUEST_ZARR_UPLOAD,
                        {"input": {"shape": list(shape), "chunks": list(chunks), "version": "3"}},
                        obj=obj,
                        # A lost answer leaves an empty store nobody knows of; asking again is
                        # harmless.
                        idempotent=True,
                    )["requestZarrUpload"]
                    stores.append(_Store(grant))
                    self._check_size(grant, shape, data.dtype.itemsize, obj)
                    renewal = _UploadRenewal(self.session, grant["store"], endpoint, obj)
                    targets.append(
                        _upload_array(endpoint, grant, shape, chunks, data.dtype, renewal)
                    )
                # Each source block is computed once; the pyramid levels are derived from it.
                write_blocks(
                    data,
                    targets[0],
                    levels=targets[1:],
                    labels=request.labels,
                    progress=progress,
                    cancel=cancel,
                )
                for store in stores:
                    self.session.graphql(
                        queries.FINISH_ZARR_UPLOAD,
                        {"input": {"storeId": store.grant["store"], "valid": True}},
                        obj=obj,
                        idempotent=True,  # finishing a store twice changes nothing
                    )
                    store.finished = True
                for n, store in enumerate(stores):
                    scale = None if n == 0 else (registered[0], 2**n)
                    registered.append(self._register(request, key, store, obj, scale))
        except BaseException as exc:
            remains = self._roll_back(request, key, registered, len(stores), obj)
            self._abandon(stores, obj)
            if isinstance(exc, LablinkError):
                mark_upload_failure(exc, remains)
                raise
            if not isinstance(exc, Exception):
                raise
            failure = write_failure(
                exc, lambda e: write_failed(e, self.session.scrub, endpoint, obj), endpoint, obj
            )
            raise mark_upload_failure(failure, remains) from exc
        return registered[0]

    def _register(
        self,
        request: UploadRequest,
        key: str,
        store: _Store,
        obj: str,
        scale: tuple[str, int] | None,
    ) -> str:
        """``fromArrayLike`` once, whatever happens to its answers."""
        payload = _registration(request, store.grant["store"], scale)
        payload["tags"] = [*payload["tags"], key]

        def create() -> str:
            created = self.session.graphql(
                queries.FROM_ARRAY_LIKE, {"input": payload}, obj=obj, idempotent=False
            )["fromArrayLike"]
            if not created or not created.get("id"):
                raise ProtocolError(
                    "fromArrayLike returned no image", server=self.session.label, obj=obj
                )
            return str(created["id"])

        image_id = reconcile.create_once(
            create,
            lambda: reconcile.find_images(self.session, payload["name"], key, obj),
            lambda ids: reconcile.delete_images(self.session, ids, obj),
            "fromArrayLike",
        )
        store.registered = True
        return image_id

    def _roll_back(
        self, request: UploadRequest, key: str, registered: list[str], levels: int, obj: str
    ) -> list[str]:
        """Delete what this upload registered, also what a lost answer may have registered
        (found by the upload key); returns what could not be deleted."""
        ids = list(registered)
        if len(ids) < levels:  # a registration may have happened without our knowing
            names = [_level_name(request.name, n) for n in range(len(ids), levels)]
            try:
                for name in names:
                    ids += [i for i in reconcile.find_images(self.session, name, key, obj)]
            except LablinkError as exc:
                log.warning("could not look for registrations of %s: %s", key, exc)
                return [*ids, f"any image tagged {key}"]
        if not ids:
            return []
        # Scale levels first: the full image is what users find, and what they must not find
        # without its levels.
        return reconcile.delete_images(self.session, list(reversed(ids)), obj)

    def _check_size(
        self, grant: dict[str, Any], shape: tuple[int, ...], itemsize: int, obj: str
    ) -> None:
        limit = grant.get("maxBytes")
        nbytes = math.prod(shape) * itemsize
        if limit and nbytes > int(limit):
            raise UploadError(
                f"The image is {nbytes / 2**20:.0f} MiB; the server accepts at most "
                f"{int(limit) / 2**20:.0f} MiB per store",
                server=self.session.label,
                obj=obj,
                hint="Upload a smaller region or ask the server's administrator to raise the limit",
            )

    def _abandon(self, stores: list[_Store], obj: str) -> None:
        """Tell the server to discard every store no image uses (best effort: we are failing)."""
        for store in stores:
            if store.registered:
                continue
            try:
                self.session.graphql(
                    queries.FINISH_ZARR_UPLOAD,
                    {"input": {"storeId": store.grant["store"], "valid": False}},
                    obj=obj,
                    idempotent=True,
                )
            except LablinkError as exc:
                log.warning("could not abandon store %s: %s", store.grant.get("store"), exc)


def _pixel_size(views: list[dict[str, Any]]) -> dict[str, float]:
    for view in views:
        sizes = {d: view.get(f"pixelSize{d.upper()}") for d in ("x", "y", "z")}
        if any(sizes.values()):
            return {d: float(s) for d, s in sizes.items() if s}
    return {}


def _channels(
    views: list[dict[str, Any]],
    contexts: list[dict[str, Any]],
    shape: tuple[int, ...],
    dims: tuple[str, ...],
) -> list[Channel]:
    """Channel descriptions from channel views, coloured by the RGB views of ``contexts``
    (else by emission wavelength).

    A channel view's ``cMin``/``cMax`` are the (inclusive) channel indices it describes; views
    without them describe the remaining channels in order.
    """
    count = shape[dims.index("c")] if "c" in dims else 0
    looks = render.channel_looks(contexts, count)
    assigned: dict[int, dict[str, Any]] = {}
    unbound = []
    for view in views:
        c_min, c_max = view.get("cMin"), view.get("cMax")
        if c_min is None:
            unbound.append(view)
            continue
        for index in range(int(c_min), int(c_max if c_max is not None else c_min) + 1):
            assigned.setdefault(index, view)
    free = iter(unbound)
    channels = []
    for i in range(count):
        view = assigned.get(i) or next(free, None) or {}
        emission = view.get("emissionWavelength")
        colour, limits = looks.get(i, (None, None))
        channels.append(
            Channel(
                name=view.get("name") or f"Channel {i}",
                color=colour or wavelength_to_rgb(emission),
                contrast_limits=limits,
                emission_wavelength=emission,
                excitation_wavelength=view.get("excitationWavelength"),
            )
        )
    return channels


@dataclass(frozen=True)
class _AccessGrant:
    """Asks for a read grant of one store: a grant source that pickles, for dask's workers."""

    session: MikroSession
    store_id: str
    obj: str

    def __call__(self) -> S3Grant:
        label = self.session.label
        access = self.session.graphql(
            queries.REQUEST_ZARR_ACCESS, {"input": {"storeId": self.store_id}}, obj=self.obj
        )["requestZarrAccess"]
        bucket, key = access.get("bucket"), access.get("key")
        if not bucket or not key:
            raise ProtocolError(
                "The zarr access grant names no bucket or key", server=label, obj=self.obj
            )
        return granted(access, bucket, key, expires_at=_expiry(access), server=label, obj=self.obj)


@dataclass(frozen=True)
class _UploadRenewal:
    """Renews the upload grant of one store while its upload runs (``refreshZarrUpload``).

    A new ``requestZarrUpload`` would be a new store; this keeps writing into the same one. A
    server without the mutation cannot renew: the upload then fails cleanly instead of writing
    half an image into a second store.
    """

    session: MikroSession
    store_id: str
    endpoint: str
    obj: str

    def __call__(self) -> S3Grant:
        try:
            answer = self.session.graphql(
                queries.REFRESH_ZARR_UPLOAD,
                {"input": {"storeId": self.store_id}},
                obj=self.obj,
                idempotent=False,
            )["refreshZarrUpload"]
        except ProtocolError:
            raise UploadError(
                "S3 refused the upload grant (it may have expired) and the server cannot renew it",
                server=self.endpoint,
                obj=self.obj,
                hint="Nothing was registered; upload a smaller image or ask for longer grants",
            ) from None
        return self.grant(answer)

    def grant(self, answer: dict[str, Any] | None) -> S3Grant:
        """The S3 grant in an upload grant of this store."""
        if not answer or answer.get("store", self.store_id) != self.store_id:
            raise ProtocolError(
                "The renewed upload grant is for another store",
                server=self.session.label,
                obj=self.obj,
            )
        return granted(
            answer,
            answer["bucket"],
            answer["key"],
            expires_at=_expiry(answer),
            server=self.session.label,
            obj=self.obj,
        )


def _expiry(grant: dict[str, Any]) -> float | None:
    """When a grant with ``expiresIn`` (seconds) expires, as ``time.time()``."""
    expires_in = grant.get("expiresIn")
    return time.time() + float(expires_in) if expires_in else None


@dataclass
class _Store:
    """An upload grant for one store, and whether the server has been told it is complete."""

    grant: dict[str, Any]
    finished: bool = False
    #: An image of this upload uses the store (deleting that image frees it).
    registered: bool = False


def _upload_array(
    endpoint: str,
    grant: dict[str, Any],
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    renewal: _UploadRenewal,
) -> AnyArray:
    s3_grant = renewal.grant(grant)
    store = GrantedStore(endpoint, renewal, grant=s3_grant, read_only=False)
    return zarr.create_array(
        store,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        dimension_names=list(DIMS),
        zarr_format=3,
        overwrite=True,
    )


def _level_name(name: str, level: int) -> str:
    """What pyramid level ``level`` is called (level 0 is the full image)."""
    return name if level == 0 else f"{name} (1/{2**level})"


def _refuse_empty(data: da.Array, server: str, obj: str) -> None:
    """A store of zero pixels cannot be written or registered: say so before asking for one."""
    if data.size == 0:
        raise UploadError(
            f"The data has no pixels (shape {tuple(data.shape)})",
            server=server,
            obj=obj,
            hint="Nothing was registered; upload a layer with data",
        )


def _registration(
    request: UploadRequest, store_id: str, scale: tuple[str, int] | None
) -> dict[str, Any]:
    """The ``fromArrayLike`` input of the full image (``scale`` None) or of one pyramid level,
    ``scale`` being the full image's id and the level's factor."""
    size = request.pixel_size
    factor = scale[1] if scale else 1
    payload: dict[str, Any] = {
        "array": store_id,
        "name": _level_name(request.name, 0 if scale is None else factor.bit_length() - 1),
        "tags": list(request.tags),
        "channelViews": [
            {"name": c.name, "cMin": i, "cMax": i, "emissionWavelength": c.emission_wavelength}
            for i, c in enumerate(request.channels)
        ],
    }
    looks = render.rgb_views(request.channels)
    if looks:
        payload["rgbViews"] = looks
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
    if request.labels:
        # A mask view without a reference view labels the image itself: what marks a label
        # image on generation 2 (every pyramid level too, so each opens as labels).
        payload["maskViews"] = [{}]
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
    return payload
