"""What a mikro generation does, so the server class never asks which generation it talks to.

mikro changed its data model once: generation 1 keeps "representations" (xarray Datasets in zarr
v2), generation 2 "images" (zarr v3 arrays with scale views). Each generation lists, opens and
uploads its own kind of object behind the :class:`Generation` interface; the URI's kind
(``representation`` or ``image``) names the generation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dask.array as da

from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.upload import Progress

__all__ = ["Generation", "Listed", "UploadRequest"]


@dataclass(frozen=True)
class Listed:
    """One object of a listing, as the server described it."""

    object_id: str
    name: str
    tags: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    channels: tuple[str, ...] = ()
    #: Micrometres per pixel along z, y, x where the listing says it.
    pixel_size: dict[str, float] = field(default_factory=dict)
    #: Ids of the objects that are this one's pyramid levels: a browser lists them under it.
    levels: tuple[str, ...] = ()


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


class Generation(Protocol):
    """One generation of the mikro API: its queries, its storage layout, its registration."""

    #: The URI kind of its objects: ``representation`` or ``image``.
    kind: str

    def search(self, query: str, offset: int, limit: int) -> list[Listed]:
        """``limit`` objects from ``offset`` that match the search text ``query``."""
        ...

    def open(self, object_id: str, endpoint: str, uri: str) -> RemoteImage:
        """The object ``object_id``, its pixels read lazily from the S3 ``endpoint``; ``uri`` is
        what the image is to be called by."""
        ...

    def upload(
        self,
        request: UploadRequest,
        endpoint: str,
        *,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> str:
        """Write ``request`` to the S3 ``endpoint``, then register it; returns the new id.

        On any failure or cancellation nothing is registered on the server.
        """
        ...
