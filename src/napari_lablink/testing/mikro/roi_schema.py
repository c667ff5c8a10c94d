"""The ROI part of both mikro schemas: types, inputs, mutations, queries and the subscription.

Appended to each generation's schema as type extensions, so the image schemas stay as they are.
The names are the real servers': generation 1 takes ``RoiTypeInput`` (``ELLIPSIS``) but answers
``ROIType`` (``ELLIPSE``); generation 2 keeps vertices as ``[c, t, z, y, x]`` lists.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema

__all__ = ["GEN1_ROI_SDL", "GEN2_ROI_SDL", "install_gen1", "install_gen2"]

GEN1_ROI_SDL = """
extend schema {
  subscription: Subscription
}

scalar DateTime
scalar GenericScalar

enum ROIType { ELLIPSE POLYGON LINE RECTANGLE PATH UNKNOWN FRAME SLICE POINT }
enum RoiTypeInput { ELLIPSIS POLYGON LINE RECTANGLE PATH UNKNOWN FRAME SLICE POINT }

type User {
  id: ID!
}

type Vector {
  x: Float
  y: Float
  z: Float
  t: Float
  c: Float
}

input InputVector {
  x: Float
  y: Float
  z: Float
  t: Float
  c: Float
}

type ROI {
  id: ID!
  type: ROIType!
  label: String
  color: String
  tags: [String]
  vectors: [Vector]
  representation: Representation
  creator: User
  createdAt: DateTime
}

type DeleteROIResult {
  id: ID
}

type RoiEvent {
  create: ROI
  update: ROI
  delete: ID
}

extend type Representation {
  rois: [ROI]
}

extend type Query {
  rois(
    representation: ID
    type: [RoiTypeInput]
    ids: [ID]
    tags: [String]
    creator: ID
    limit: Int
    offset: Int
  ): [ROI]
  roi(id: ID!): ROI
}

extend type Mutation {
  createROI(
    representation: ID!
    vectors: [InputVector]!
    type: RoiTypeInput!
    label: String
    tags: [String]
    creator: ID
    meta: GenericScalar
    createdWhile: ID
  ): ROI
  createROIS(
    representation: ID!
    vectorsList: [[InputVector]]!
    type: RoiTypeInput!
    labels: [String]
    tags: [String]
  ): [ROI]
  deleteROI(id: ID!): DeleteROIResult
}

type Subscription {
  rois(representation: ID!): RoiEvent
}
"""

GEN2_ROI_SDL = """
extend schema {
  subscription: Subscription
}

scalar DateTime
"A vertex [c, t, z, y, x] in pixel coordinates."
scalar FiveDVector
scalar FourDVector

enum RoiKind {
  ELLIPSIS POLYGON LINE RECTANGLE SPECTRAL_RECTANGLE TEMPORAL_RECTANGLE CUBE SPECTRAL_CUBE
  TEMPORAL_CUBE HYPERCUBE SPECTRAL_HYPERCUBE PATH FRAME SLICE POINT
}

enum RoiKindChoices {
  ELLIPSIS POLYGON LINE RECTANGLE SPECTRAL_RECTANGLE TEMPORAL_RECTANGLE CUBE SPECTRAL_CUBE
  TEMPORAL_CUBE HYPERCUBE SPECTRAL_HYPERCUBE PATH FRAME SLICE POINT UNKNOWN
}

type User {
  sub: String!
}

type ROI {
  id: ID!
  image: Image!
  kind: RoiKind!
  vectors: [FiveDVector!]!
  createdAt: DateTime!
  creator: User
  pinned: Boolean!
  name: String!
}

type RoiEvent {
  create: ROI
  update: ROI
  delete: ID
}

input ROIFilter {
  image: ID
  images: [ID!]
  ids: [ID!]
  kind: RoiKindChoices
  label: String
  search: String
  pinned: Boolean
  minX: Float
  maxX: Float
  minY: Float
  maxY: Float
  minZ: Float
  maxZ: Float
  minT: Float
  maxT: Float
}

input RoiInput {
  image: ID!
  vectors: [FiveDVector!]!
  kind: RoiKind!
}

input UpdateRoiInput {
  roi: ID!
  vectors: [FiveDVector!]
  kind: RoiKind
}

input DeleteRoiInput {
  id: ID!
}

input PinROIInput {
  id: ID!
  pin: Boolean!
}

extend type Image {
  rois(filters: ROIFilter): [ROI!]!
}

extend type Query {
  rois(filters: ROIFilter, pagination: OffsetPaginationInput): [ROI!]!
  roi(id: ID!): ROI!
}

extend type Mutation {
  createRoi(input: RoiInput!): ROI!
  updateRoi(input: UpdateRoiInput!): ROI!
  deleteRoi(input: DeleteRoiInput!): ID!
  pinRoi(input: PinROIInput!): ROI!
}

type Subscription {
  rois(image: ID!): RoiEvent!
}
"""


def _five_d(value: Any) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != 5
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise GraphQLError(f"FiveDVector must be a list of five numbers [c, t, z, y, x]: {value!r}")
    return [float(v) for v in value]


def _four_d(value: Any) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise GraphQLError(f"FourDVector must be a list of four numbers: {value!r}")
    return [float(v) for v in value]


def _same(value: Any) -> Any:
    return value


def _json_scalar(schema: GraphQLSchema, name: str, parse: Any) -> None:
    scalar = schema.type_map[name]
    assert isinstance(scalar, GraphQLScalarType)
    # graphql-core 3.2 calls parse_value/serialize, 3.3 coerce_input_value/coerce_output_value.
    scalar.parse_value = scalar.coerce_input_value = parse  # type: ignore[method-assign]
    scalar.serialize = scalar.coerce_output_value = _same  # type: ignore[method-assign]


def _nested(schema: GraphQLSchema, type_name: str, field: str, method: str) -> None:
    """Resolve ``type_name.field`` through the request's root (one per stand-in instance)."""

    def resolve(source: dict[str, Any], info: Any, **arguments: Any) -> Any:
        return getattr(info.root_value, method)(source["id"], **arguments)

    schema.type_map[type_name].fields[field].resolve = resolve  # type: ignore[attr-defined]


def install_gen1(schema: GraphQLSchema) -> GraphQLSchema:
    """Wire the generation-1 ROI fields that hang off other types."""
    _json_scalar(schema, "GenericScalar", lambda value: value)
    _nested(schema, "Representation", "rois", "representation_rois")
    return schema


def install_gen2(schema: GraphQLSchema) -> GraphQLSchema:
    """Wire generation 2's vector scalars and ``Image.rois``."""
    _json_scalar(schema, "FiveDVector", _five_d)
    _json_scalar(schema, "FourDVector", _four_d)
    _nested(schema, "Image", "rois", "image_rois")
    return schema
