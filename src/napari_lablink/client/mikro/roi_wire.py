"""ROIs over the wire, per generation: the GraphQL documents and the vertex layouts.

Generation 1 ties a ROI to a representation and sends vertices as ``{x, y, z, t, c}`` objects
(any may be null: read as 0); it keeps a label and tags, has no update (an edit is a create plus
a delete) and answers ``ELLIPSE`` for what it takes as ``ELLIPSIS``. Generation 2 ties a ROI to
an image and sends ``[c, t, z, y, x]`` lists; it keeps nothing but kind and vertices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from napari_lablink.client.errors import NotFoundError, ProtocolError
from napari_lablink.client.mikro.rois import (
    Roi,
    RoiEvent,
    WireError,
    colour_hex,
    from_wire,
    to_wire,
)
from napari_lablink.client.mikro.session import MikroSession
from napari_lablink.client.models import DIMS

__all__ = ["Gen1Rois", "Gen2Rois", "ImageGeometry", "RoiWire"]

#: ROIs asked for per page.
_PAGE = 500


@dataclass(frozen=True)
class ImageGeometry:
    """What placing ROIs needs of an image: its ``(c, t, z, y, x)`` shape and pixel size."""

    shape: tuple[int, int, int, int, int]
    #: micrometres per pixel along the dims the server knows it for
    pixel_size: dict[str, float]


@dataclass(frozen=True)
class Listing:
    """An image's ROIs, plus a message for every ROI napari cannot show."""

    rois: list[Roi]
    skipped: list[str]


class RoiWire(Protocol):
    """One generation's ROI operations on one server."""

    #: The URI kind of the objects ROIs belong to.
    kind: str
    #: Whether labels and tags survive a round trip.
    keeps_labels: bool
    #: The ``rois`` subscription document; :meth:`subscription_variables` fills it.
    subscription: str

    def geometry(self, object_id: str) -> ImageGeometry: ...

    def list(self, object_id: str) -> Listing: ...

    def create(self, object_id: str, roi: Roi) -> str: ...

    def update(self, object_id: str, roi: Roi) -> str:
        """Move ``roi`` (which has an id) to its vertices; returns its id afterwards."""
        ...

    def delete(self, roi_id: str) -> None: ...

    def subscription_variables(self, object_id: str) -> dict[str, Any]: ...

    def event(self, data: dict[str, Any], object_id: str) -> RoiEvent | None:
        """The event in one subscription answer, or None for one napari cannot show."""
        ...


def _read(kind: str, vertices: list[Any], roi_id: str) -> Roi:
    try:
        return from_wire(kind, vertices)
    except WireError as exc:
        raise WireError(f"ROI {roi_id}: {exc}") from None


# -- generation 1 ---------------------------------------------------------------------------------

_GEN1_FIELDS = "id type label color tags vectors { x y z t c }"
GEN1_GEOMETRY = """
query RoiGeometry($id: ID!) {
  representation(id: $id) { id shape dims omero { physicalSize { x y z t c } } }
}"""
GEN1_LIST = f"""
query Rois($representation: ID, $limit: Int, $offset: Int) {{
  rois(representation: $representation, limit: $limit, offset: $offset) {{ {_GEN1_FIELDS} }}
}}"""
GEN1_CREATE = f"""
mutation CreateROI($representation: ID!, $vectors: [InputVector]!, $type: RoiTypeInput!,
                   $label: String, $tags: [String]) {{
  createROI(representation: $representation, vectors: $vectors, type: $type, label: $label,
            tags: $tags) {{ {_GEN1_FIELDS} }}
}}"""
GEN1_DELETE = """
mutation DeleteROI($id: ID!) { deleteROI(id: $id) { id } }"""
GEN1_SUBSCRIPTION = f"""
subscription Rois($representation: ID!) {{
  rois(representation: $representation) {{
    create {{ {_GEN1_FIELDS} }} update {{ {_GEN1_FIELDS} }} delete
  }}
}}"""


def _gen1_vertex(vector: dict[str, Any] | None) -> list[float]:
    vector = vector or {}
    return [float(vector.get(d) or 0.0) for d in DIMS]


def _gen1_roi(item: dict[str, Any]) -> Roi:
    vertices = [_gen1_vertex(v) for v in item.get("vectors") or []]
    roi = _read(str(item.get("type")), vertices, str(item["id"]))
    return Roi(
        roi.kind,
        roi.vertices,
        id=str(item["id"]),
        label=item.get("label"),
        color=colour_hex(item.get("color")),
        tags=tuple(t for t in item.get("tags") or () if t),
    )


class Gen1Rois:
    """ROIs of generation-1 representations."""

    kind = "representation"
    keeps_labels = True
    subscription = GEN1_SUBSCRIPTION

    def __init__(self, session: MikroSession) -> None:
        self.session = session

    def geometry(self, object_id: str) -> ImageGeometry:
        obj = f"representation {object_id}"
        found = self.session.graphql(GEN1_GEOMETRY, {"id": object_id}, obj=obj)["representation"]
        if found is None:
            raise NotFoundError("No such representation", server=self.session.label, obj=obj)
        dims = list(found.get("dims") or DIMS)
        shape = list(found.get("shape") or [])
        if len(shape) != len(dims):
            raise ProtocolError(
                f"Shape {shape} does not match dims {dims}", server=self.session.label, obj=obj
            )
        sizes = dict(zip(dims, shape, strict=True))
        physical = ((found.get("omero") or {}).get("physicalSize")) or {}
        return ImageGeometry(
            tuple(int(sizes.get(d, 1)) for d in DIMS),  # type: ignore[arg-type]
            {d: float(physical[d]) for d in ("z", "y", "x") if physical.get(d)},
        )

    def list(self, object_id: str) -> Listing:
        rois, skipped, offset = [], [], 0
        while True:
            variables = {"representation": object_id, "limit": _PAGE, "offset": offset}
            page = self.session.graphql(
                GEN1_LIST, variables, obj=f"ROIs of representation {object_id}"
            )["rois"]
            for item in page or []:
                try:
                    rois.append(_gen1_roi(item))
                except WireError as exc:
                    skipped.append(str(exc))
            if len(page or []) < _PAGE:
                return Listing(rois, skipped)
            offset += _PAGE

    def create(self, object_id: str, roi: Roi) -> str:
        kind, vertices, _ = to_wire(roi)
        variables = {
            "representation": object_id,
            "vectors": [dict(zip(DIMS, map(float, v), strict=True)) for v in vertices],
            "type": kind,
            "label": roi.label,
            "tags": list(roi.tags) or None,
        }
        made = self.session.graphql(
            GEN1_CREATE, variables, obj=f"representation {object_id}", idempotent=False
        )["createROI"]
        return str(made["id"])

    def update(self, object_id: str, roi: Roi) -> str:
        # No update on generation 1: create the moved ROI first, so a failure loses nothing.
        new_id = self.create(object_id, roi)
        assert roi.id is not None
        self.delete(roi.id)
        return new_id

    def delete(self, roi_id: str) -> None:
        self.session.graphql(GEN1_DELETE, {"id": roi_id}, obj=f"ROI {roi_id}", idempotent=False)

    def subscription_variables(self, object_id: str) -> dict[str, Any]:
        return {"representation": object_id}

    def event(self, data: dict[str, Any], object_id: str) -> RoiEvent | None:
        return _event(data, _gen1_roi)


# -- generation 2 ---------------------------------------------------------------------------------

_GEN2_FIELDS = "id kind vectors"
GEN2_GEOMETRY = """
query RoiGeometry($id: ID!) {
  image(id: $id) {
    id store { shape dimensionNames } affineTransformationViews { pixelSizeX pixelSizeY pixelSizeZ }
  }
}"""
GEN2_LIST = f"""
query Rois($filters: ROIFilter, $pagination: OffsetPaginationInput) {{
  rois(filters: $filters, pagination: $pagination) {{ {_GEN2_FIELDS} }}
}}"""
GEN2_CREATE = f"""
mutation CreateRoi($input: RoiInput!) {{ createRoi(input: $input) {{ {_GEN2_FIELDS} }} }}"""
GEN2_UPDATE = f"""
mutation UpdateRoi($input: UpdateRoiInput!) {{ updateRoi(input: $input) {{ {_GEN2_FIELDS} }} }}"""
GEN2_DELETE = """
mutation DeleteRoi($input: DeleteRoiInput!) { deleteRoi(input: $input) }"""
GEN2_SUBSCRIPTION = f"""
subscription Rois($image: ID!) {{
  rois(image: $image) {{ create {{ {_GEN2_FIELDS} }} update {{ {_GEN2_FIELDS} }} delete }}
}}"""


def _gen2_roi(item: dict[str, Any]) -> Roi:
    vectors = item.get("vectors") or []
    if any(not isinstance(v, list) or len(v) != len(DIMS) for v in vectors):
        raise WireError(f"ROI {item['id']}: vertices are not [c, t, z, y, x] lists")
    roi = _read(str(item.get("kind")), vectors, str(item["id"]))
    return Roi(roi.kind, roi.vertices, id=str(item["id"]))


def _gen2_vectors(roi: Roi) -> tuple[str, list[list[float]]]:
    kind, vertices, _ = to_wire(roi)
    return kind, [[float(x) for x in v] for v in np.asarray(vertices)]


class Gen2Rois:
    """ROIs of generation-2 images."""

    kind = "image"
    keeps_labels = False
    subscription = GEN2_SUBSCRIPTION

    def __init__(self, session: MikroSession) -> None:
        self.session = session

    def geometry(self, object_id: str) -> ImageGeometry:
        obj = f"image {object_id}"
        found = self.session.graphql(GEN2_GEOMETRY, {"id": object_id}, obj=obj)["image"]
        if found is None:
            raise NotFoundError("No such image", server=self.session.label, obj=obj)
        store = found.get("store") or {}
        shape = list(store.get("shape") or [])
        dims = list(store.get("dimensionNames") or DIMS[-len(shape) :])
        if len(dims) != len(shape) or any(d not in DIMS for d in dims):
            raise ProtocolError(
                f"Shape {shape} does not match dims {dims}", server=self.session.label, obj=obj
            )
        sizes = dict(zip(dims, shape, strict=True))
        views = found.get("affineTransformationViews") or []
        pixel_size = {}
        if views:
            view = views[0]
            for d in ("x", "y", "z"):
                value = view.get(f"pixelSize{d.upper()}")
                if value:
                    pixel_size[d] = float(value)
        return ImageGeometry(
            tuple(int(sizes.get(d, 1)) for d in DIMS),  # type: ignore[arg-type]
            pixel_size,
        )

    def list(self, object_id: str) -> Listing:
        rois, skipped, offset = [], [], 0
        while True:
            variables = {
                "filters": {"image": object_id},
                "pagination": {"offset": offset, "limit": _PAGE},
            }
            page = self.session.graphql(GEN2_LIST, variables, obj=f"ROIs of image {object_id}")[
                "rois"
            ]
            for item in page or []:
                try:
                    rois.append(_gen2_roi(item))
                except WireError as exc:
                    skipped.append(str(exc))
            if len(page or []) < _PAGE:
                return Listing(rois, skipped)
            offset += _PAGE

    def create(self, object_id: str, roi: Roi) -> str:
        kind, vectors = _gen2_vectors(roi)
        variables = {"input": {"image": object_id, "vectors": vectors, "kind": kind}}
        made = self.session.graphql(
            GEN2_CREATE, variables, obj=f"image {object_id}", idempotent=False
        )["createRoi"]
        return str(made["id"])

    def update(self, object_id: str, roi: Roi) -> str:
        kind, vectors = _gen2_vectors(roi)
        variables = {"input": {"roi": roi.id, "vectors": vectors, "kind": kind}}
        # Setting the same vertices twice is harmless, so a dropped answer may be retried.
        made = self.session.graphql(GEN2_UPDATE, variables, obj=f"ROI {roi.id}")["updateRoi"]
        return str(made["id"])

    def delete(self, roi_id: str) -> None:
        variables = {"input": {"id": roi_id}}
        self.session.graphql(GEN2_DELETE, variables, obj=f"ROI {roi_id}", idempotent=False)

    def subscription_variables(self, object_id: str) -> dict[str, Any]:
        return {"image": object_id}

    def event(self, data: dict[str, Any], object_id: str) -> RoiEvent | None:
        return _event(data, _gen2_roi)


def _event(data: dict[str, Any], read: Any) -> RoiEvent | None:
    """The ROI event of a ``rois`` subscription answer; None when napari cannot show it."""
    event = data.get("rois") or {}
    if event.get("delete") is not None:
        return RoiEvent("delete", roi_id=str(event["delete"]))
    for name in ("create", "update"):
        item = event.get(name)
        if item:
            try:
                roi = read(item)
            except WireError:
                return None
            return RoiEvent(name, roi_id=roi.id, roi=roi)
    return None
