"""The mikro stand-in's behaviour, independent of GraphQL: grants, uploads, registrations.

Both GraphQL generations and the seeding API call these methods, so seeded data goes through
the same checks as data a client uploads.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from napari_lablink.testing.mikro import zarr_io
from napari_lablink.testing.mikro.state import (
    STORE_DISCARDED,
    STORE_PENDING,
    STORE_POPULATED,
    AffineTransformationView,
    ChannelView,
    Image,
    MaskView,
    MikroError,
    MikroState,
    ReferenceView,
    Representation,
    RGBContext,
    RGBView,
    ScaleView,
    ZarrStore,
)
from napari_lablink.testing.s3.server import S3Scope, S3StandIn

VARIETIES = ("MASK", "VOXEL", "RGB", "UNKNOWN")


@dataclass
class MikroConfig:
    """Deployment facts a real server reads from its settings."""

    #: Generation 1 keeps Datasets at "<gen1_bucket>/<uuid>.zarr"; store strings name it.
    gen1_bucket: str = "zarr"
    #: Generation 2's physical S3 bucket (what grants name) ...
    gen2_bucket: str = "mikro-zarr"
    #: ... and the logical datalayer name ``store.bucket`` shows instead.
    gen2_logical_bucket: str = "zarr"
    credential_ttl: float = 3600.0
    #: The most an upload may hold (GraphQL Int, so below 2**31).
    max_upload_bytes: int = 1 << 30


class MikroBackend:
    def __init__(self, s3: S3StandIn, config: MikroConfig) -> None:
        if not 0 < config.max_upload_bytes < 2**31:
            raise ValueError("max_upload_bytes must be positive and below 2**31 (a GraphQL Int)")
        self.s3 = s3
        self.config = config
        self.state = MikroState()

    def ensure_buckets(self) -> None:
        self.s3.create_bucket(self.config.gen1_bucket)
        self.s3.create_bucket(self.config.gen2_bucket)

    @property
    def expires_in(self) -> int:
        return math.ceil(self.config.credential_ttl)

    # -- generation 1 ------------------------------------------------------------------------

    def gen1_credentials(self) -> dict[str, Any]:
        """Unscoped STS credentials, as generation 1's ``request`` hands them out."""
        return self.s3.issue_credentials(self.config.credential_ttl)

    def register_representation(
        self,
        store: str,
        *,
        name: str | None,
        variety: str | None,
        tags: Sequence[str] | None,
        origins: Sequence[str] | None,
        omero: dict[str, Any] | None,
    ) -> Representation:
        bucket, key = _split_store(store)
        facts = zarr_io.read_gen1_dataset(self.s3, bucket, key)
        origin_ids = [self.state.representation(o).id for o in origins or () if o is not None]
        variety = variety or "UNKNOWN"
        if variety not in VARIETIES:
            raise MikroError(f"variety must be one of {VARIETIES}, not {variety!r}")
        representation = Representation(
            id=self.state.new_id("representation"),
            name=name or key.removesuffix(".zarr"),
            store=f"{bucket}/{key}",
            shape=facts["shape"],
            dims=facts["dims"],
            variety=variety,
            tags=[t for t in tags or () if t is not None],
            omero=omero,
            origins=origin_ids,
        )
        with self.state.lock:
            self.state.representations[representation.id] = representation
        return representation

    def delete_representation(self, id: str) -> str:
        """Forget a representation; its Dataset stays on S3, as on the real server."""
        with self.state.lock:
            representation = self.state.representation(id)
            del self.state.representations[representation.id]
        return representation.id

    def find_representations(
        self, name: str | None, tags: Sequence[str] | None, limit: int | None, offset: int | None
    ) -> list[Representation]:
        with self.state.lock:
            found = list(self.state.representations.values())
        if name:
            found = [r for r in found if name.lower() in r.name.lower()]
        wanted = {t for t in tags or () if t}
        if wanted:
            found = [r for r in found if wanted.intersection(r.tags)]
        return _page(found, offset, limit)

    # -- generation 2 ------------------------------------------------------------------------

    def access_grant(self, store_id: str | None) -> tuple[ZarrStore, dict[str, Any]]:
        """Read-only credentials for one store's prefix."""
        if not store_id:
            raise MikroError("requestZarrAccess needs input.storeId (the id of image.store)")
        store = self.state.store(store_id)
        if store.state == STORE_DISCARDED:
            raise MikroError(f"ZarrStore {store.id} was discarded; it holds no data.")
        scope = [S3Scope(store.s3_bucket, store.key)]
        return store, self.s3.issue_credentials(self.config.credential_ttl, scope=scope)

    def upload_grant(
        self, shape: Sequence[int] | None, chunks: Sequence[int] | None, version: str | None
    ) -> tuple[ZarrStore, dict[str, Any]]:
        """A new, empty store and credentials that may write below its key."""
        store = self.new_store(shape, chunks, version)
        scope = [S3Scope(store.s3_bucket, store.key, write=True)]
        return store, self.s3.issue_credentials(self.config.credential_ttl, scope=scope)

    def refresh_upload_grant(self, store_id: str) -> tuple[ZarrStore, dict[str, Any]]:
        """New credentials for a store whose upload is still under way (not yet finished)."""
        store = self.state.store(store_id)
        if store.state != STORE_PENDING:
            raise MikroError(f"ZarrStore {store.id} is {store.state}; its upload is over.")
        scope = [S3Scope(store.s3_bucket, store.key, write=True)]
        return store, self.s3.issue_credentials(self.config.credential_ttl, scope=scope)

    def new_store(
        self, shape: Sequence[int] | None, chunks: Sequence[int] | None, version: str | None
    ) -> ZarrStore:
        store = ZarrStore(
            id=self.state.new_id("store"),
            bucket=self.config.gen2_logical_bucket,
            s3_bucket=self.config.gen2_bucket,
            key=uuid.uuid4().hex,
            max_bytes=self.config.max_upload_bytes,
            shape=list(shape or []),
            chunks=list(chunks or []),
            version=version,
        )
        with self.state.lock:
            self.state.stores[store.id] = store
        return store

    def finish_upload(self, store_id: str, valid: bool) -> ZarrStore:
        store = self.state.store(store_id)
        if not valid:
            self.s3.delete_prefix(store.s3_bucket, store.key + "/")
            store.state = STORE_DISCARDED
            return store
        if store.state == STORE_DISCARDED:
            raise MikroError(f"ZarrStore {store.id} was discarded (valid: false); upload anew.")
        size = sum(self.s3.list_objects(store.s3_bucket, store.key + "/").values())
        if size > store.max_bytes:
            raise MikroError(
                f"ZarrStore {store.id} holds {size} bytes, more than the {store.max_bytes} "
                "bytes (maxBytes) its upload grant allows."
            )
        facts = zarr_io.read_gen2_array(self.s3, store.s3_bucket, store.key)
        store.shape = facts["shape"]
        store.chunks = facts["chunks"]
        store.dtype = facts["dtype"]
        store.dimension_names = facts["dimension_names"]
        store.version = facts["version"]
        store.state = STORE_POPULATED
        return store

    def register_image(
        self,
        store_id: str,
        *,
        name: str,
        tags: Sequence[str] | None,
        channel_views: Sequence[dict[str, Any]] | None,
        transformation_views: Sequence[dict[str, Any]] | None,
        scale_views: Sequence[dict[str, Any]] | None,
        mask_views: Sequence[dict[str, Any]] | None = None,
        instance_mask_views: Sequence[dict[str, Any]] | None = None,
        rgb_views: Sequence[dict[str, Any]] | None = None,
    ) -> Image:
        """Register a populated store as an image; mask views make it a label image.

        A mask view names the view it labels (``referenceView``); without one it labels the image
        itself, through a reference view the server creates for it. RGB views go into one
        "Default" render context; without any, the server makes its own (see
        :meth:`_default_rgb_context`).
        """
        store = self.state.store(store_id)
        if store.state != STORE_POPULATED:
            # The real server reads the store's metadata here too (store.fill_info).
            self.finish_upload(store.id, True)
        channels = store.shape[0]
        views = [self._channel_view(view, channels) for view in channel_views or ()]
        affines = [self._affine_view(view) for view in transformation_views or ()]
        scales = [self._scale_view(view) for view in scale_views or ()]
        image_id = self.state.new_id("image")
        masks = [
            self._mask_view(view, image_id, instance)
            for instance, given in ((False, mask_views), (True, instance_mask_views))
            for view in given or ()
        ]
        if rgb_views is not None:
            context = RGBContext(
                self.state.new_id("view"), "Default", [self._rgb_view(v) for v in rgb_views]
            )
        else:
            context = self._default_rgb_context(channels)
        image = Image(
            id=image_id,
            name=name,
            store=store.id,
            tags=list(tags or []),
            channel_views=views,
            affine_views=affines,
            mask_views=masks,
            rgb_contexts=[context],
        )
        with self.state.lock:
            self.state.images[image.id] = image
            for view in scales:
                view.image = image.id
                self.state.scale_views.append(view)
        return image

    def delete_image(self, id: str) -> str:
        """Delete an image, the scale views that name it and its store's data.

        The real server flags the store as orphaned and frees it later; here it goes at once,
        so what an upload left behind is visible as stores that are neither referenced nor
        discarded.
        """
        with self.state.lock:
            image = self.state.image(id)
            del self.state.images[image.id]
            self.state.scale_views = [
                v for v in self.state.scale_views if image.id not in (v.image, v.parent)
            ]
            store = self.state.stores.get(image.store)
        if store is not None and not any(i.store == store.id for i in self.state.images.values()):
            self.s3.delete_prefix(store.s3_bucket, store.key + "/")
            store.state = STORE_DISCARDED
        return image.id

    def find_images(
        self, filters: dict[str, Any] | None, offset: int, limit: int | None
    ) -> list[Image]:
        with self.state.lock:
            found = list(self.state.images.values())
        filters = filters or {}
        if filters.get("ids") is not None:
            wanted = {str(i) for i in filters["ids"]}
            found = [image for image in found if image.id in wanted]
        if filters.get("search"):
            words = filters["search"].lower().split()
            found = [i for i in found if all(w in i.name.lower() for w in words)]
        if filters.get("name"):
            found = [i for i in found if _str_lookup(i.name, filters["name"])]
        return _page(found, offset, None if limit is None or limit < 0 else limit)

    def _channel_view(self, view: dict[str, Any], channels: int) -> ChannelView:
        c_min, c_max = view.get("cMin"), view.get("cMax")
        for bound in (c_min, c_max):
            if bound is not None and not 0 <= bound < channels:
                raise MikroError(
                    f"channel view {view.get('name')!r}: cMin/cMax select channel indices of "
                    f"the image (0..{channels - 1}), got cMin={c_min}, cMax={c_max}"
                )
        if c_min is not None and c_max is not None and c_min > c_max:
            raise MikroError(f"channel view {view.get('name')!r}: cMin {c_min} > cMax {c_max}")
        return ChannelView(
            id=self.state.new_id("view"),
            name=view.get("name"),
            emission_wavelength=view.get("emissionWavelength"),
            excitation_wavelength=view.get("excitationWavelength"),
            c_min=c_min,
            c_max=c_max,
        )

    def _rgb_view(self, view: dict[str, Any]) -> RGBView:
        """An RGB view as the real server stores one: what was sent, active unless said otherwise.
        A view without a colorMap is stored there as ``gray``, which its own enum cannot answer
        later; the stand-in refuses it at once."""
        if view.get("context") is not None:
            raise MikroError(f"RGBRenderContext matching query does not exist: {view['context']}")
        if view.get("colorMap") is None:
            raise MikroError("an RGB view needs a colorMap (the server's default is no ColorMap)")
        return RGBView(
            id=self.state.new_id("view"),
            c_min=view.get("cMin"),
            c_max=view.get("cMax"),
            color_map=view["colorMap"],
            gamma=view.get("gamma"),
            contrast_limit_min=view.get("contrastLimitMin"),
            contrast_limit_max=view.get("contrastLimitMax"),
            active=view.get("active") is not False,  # null or missing: active
            base_color=list(view["baseColor"]) if view.get("baseColor") else None,
        )

    def _default_rgb_context(self, channels: int) -> RGBContext:
        """What the real server makes for an image registered without RGB views: red, green and
        blue for three channels, else viridis for each channel with only the first active."""
        white = [255, 255, 255, 255]
        if channels == 3:
            maps, name = ["RED", "GREEN", "BLUE"], "RGB"
        else:
            maps, name = ["VIRIDIS"] * channels, "Default"
        views = [
            RGBView(
                id=self.state.new_id("view"),
                c_min=i,
                c_max=i + 1,
                color_map=color_map,
                gamma=None,
                contrast_limit_min=None,
                contrast_limit_max=None,
                active=channels == 3 or i == 0,
                base_color=list(white),
            )
            for i, color_map in enumerate(maps)
        ]
        return RGBContext(self.state.new_id("view"), name, views)

    def _mask_view(self, view: dict[str, Any], image_id: str, instance: bool) -> MaskView:
        reference = view.get("referenceView")
        if reference is None:
            own = ReferenceView(self.state.new_id("view"), image_id)
            with self.state.lock:
                self.state.reference_views[own.id] = own
            reference = own.id
        else:
            reference = self.state.reference_view(reference).id
        return MaskView(self.state.new_id("view"), reference, instance, view.get("labels"))

    def _affine_view(self, view: dict[str, Any]) -> AffineTransformationView:
        matrix: Any = view.get("affineMatrix")
        valid = (
            isinstance(matrix, list)
            and len(matrix) == 4
            and all(isinstance(row, list) and len(row) == 4 for row in matrix)
            and all(_is_number(v) for row in matrix for v in row)
        )
        if not valid:
            raise MikroError(f"affineMatrix must be a 4x4 list of numbers, got {matrix!r}")
        return AffineTransformationView(
            id=self.state.new_id("view"),
            affine_matrix=[[float(v) for v in row] for row in matrix],
            stage=view.get("stage"),
        )

    def _scale_view(self, view: dict[str, Any]) -> ScaleView:
        parent = view.get("parent")
        if parent is None:
            raise MikroError("a scale view needs parent (the id of the full-resolution image)")
        parent_id = self.state.image(parent).id
        factors = [view.get(f"scale{axis}") or 1.0 for axis in "XYZTC"]
        if any(f <= 0 for f in factors):
            raise MikroError(f"scale factors must be positive, got {factors}")
        return ScaleView(self.state.new_id("view"), "", parent_id, *map(float, factors))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_store(store: str) -> tuple[str, str]:
    bucket, _, key = (store or "").partition("/")
    if "://" in store or not bucket or not key.strip("/"):
        raise MikroError(
            f"xarray must be the store path '<bucket>/<key>' (for example 'zarr/<uuid>.zarr'), "
            f"not {store!r}"
        )
    return bucket, key.strip("/")


def _page(items: list[Any], offset: int | None, limit: int | None) -> list[Any]:
    start = max(0, offset or 0)
    return items[start:] if limit is None else items[start : start + max(0, limit)]


def _str_lookup(value: str, lookup: dict[str, Any]) -> bool:
    """strawberry-django's StrFilterLookup: every given operator must match."""
    checks = {
        "exact": lambda v, a: v == a,
        "iExact": lambda v, a: v.lower() == a.lower(),
        "contains": lambda v, a: a in v,
        "iContains": lambda v, a: a.lower() in v.lower(),
        "inList": lambda v, a: v in a,
        "startsWith": lambda v, a: v.startswith(a),
        "iStartsWith": lambda v, a: v.lower().startswith(a.lower()),
        "endsWith": lambda v, a: v.endswith(a),
        "iEndsWith": lambda v, a: v.lower().endswith(a.lower()),
        "isNull": lambda v, a: (v is None) == a,
    }
    return all(checks[op](value, arg) for op, arg in lookup.items() if arg is not None)
