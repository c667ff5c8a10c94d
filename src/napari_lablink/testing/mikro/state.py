"""What the stand-in mikro server knows: representations, zarr stores, images and their views.

Plain records behind one lock; both GraphQL generations and the seeding API share them. Ids are
decimal strings like the real (Django) servers hand out. Representations count from 1, images
from 1001 and stores from 5001, so an id used with the wrong generation or kind finds nothing
instead of silently finding something else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

STORE_PENDING = "pending"
STORE_POPULATED = "populated"
STORE_DISCARDED = "discarded"


class MikroError(Exception):
    """A GraphQL error answered to the client (its message is the error message)."""


@dataclass
class Representation:
    id: str
    name: str
    store: str  # "<bucket>/<key>", the real S3 bucket
    shape: list[int]
    dims: list[str]
    variety: str
    tags: list[str]
    omero: dict[str, Any] | None
    origins: list[str]


@dataclass
class ZarrStore:
    id: str
    bucket: str  # the logical datalayer name ("zarr"), NOT the S3 bucket
    s3_bucket: str  # where the data really is
    key: str
    max_bytes: int
    shape: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    dtype: str | None = None
    dimension_names: list[str | None] | None = None
    version: str | None = None
    state: str = STORE_PENDING

    @property
    def path(self) -> str:
        return f"s3://{self.s3_bucket}/{self.key}"


@dataclass
class ChannelView:
    id: str
    name: str | None
    emission_wavelength: float | None
    excitation_wavelength: float | None
    c_min: int | None
    c_max: int | None


@dataclass
class RGBView:
    """How the channels ``c_min <= c < c_max`` are rendered; ``color_map`` is the enum's name."""

    id: str
    c_min: int | None
    c_max: int | None
    color_map: str
    gamma: float | None
    contrast_limit_min: float | None
    contrast_limit_max: float | None
    active: bool
    base_color: list[float] | None


@dataclass
class RGBContext:
    """A named group of RGB views that together render an image."""

    id: str
    name: str
    views: list[RGBView]


@dataclass
class AffineTransformationView:
    id: str
    affine_matrix: list[list[float]]
    stage: str | None


@dataclass
class ScaleView:
    """Says "``image`` is ``parent`` downsampled by these factors"."""

    id: str
    image: str
    parent: str
    scale_x: float
    scale_y: float
    scale_z: float
    scale_t: float
    scale_c: float


@dataclass
class ReferenceView:
    """A view other views point at; a mask view names the image it labels through one."""

    id: str
    image: str


@dataclass
class MaskView:
    """Marks its image as a label image of the reference view's image.

    ``instance`` tells an instance mask (each value one object) from a semantic mask (each value
    one class); napari opens both as Labels.
    """

    id: str
    reference_view: str
    instance: bool
    labels: Any = None


@dataclass
class Image:
    id: str
    name: str
    store: str
    tags: list[str]
    channel_views: list[ChannelView] = field(default_factory=list)
    affine_views: list[AffineTransformationView] = field(default_factory=list)
    mask_views: list[MaskView] = field(default_factory=list)
    rgb_contexts: list[RGBContext] = field(default_factory=list)


class MikroState:
    """Thread-safe registry of everything both generations serve."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.representations: dict[str, Representation] = {}
        self.stores: dict[str, ZarrStore] = {}
        self.images: dict[str, Image] = {}
        self.scale_views: list[ScaleView] = []
        self.reference_views: dict[str, ReferenceView] = {}
        self._next = {"representation": 1, "image": 1001, "store": 5001, "view": 1}

    def new_id(self, kind: str) -> str:
        with self.lock:
            value = self._next[kind]
            self._next[kind] = value + 1
            return str(value)

    def representation(self, id: str) -> Representation:
        with self.lock:
            found = self.representations.get(str(id))
        if found is None:
            raise MikroError(f"Representation with id {id!r} does not exist.")
        return found

    def store(self, id: str) -> ZarrStore:
        with self.lock:
            found = self.stores.get(str(id))
        if found is None:
            raise MikroError(f"ZarrStore with id {id!r} does not exist.")
        return found

    def image(self, id: str) -> Image:
        with self.lock:
            found = self.images.get(str(id))
        if found is None:
            raise MikroError(f"Image with id {id!r} does not exist.")
        return found

    def reference_view(self, id: str) -> ReferenceView:
        with self.lock:
            found = self.reference_views.get(str(id))
        if found is None:
            raise MikroError(f"ReferenceView with id {id!r} does not exist.")
        return found

    def derived_scale_views(self, parent: str) -> list[ScaleView]:
        with self.lock:
            return [view for view in self.scale_views if view.parent == parent]
