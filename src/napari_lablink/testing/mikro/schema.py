"""The GraphQL schemas of both mikro generations, as far as docs/protocols/mikro.md has them.

They hold exactly the documented fields and arguments, so a client asking for anything else
fails here as it would on a real server (whose schemas are far larger but differ between
versions: asking only for the documented fields is what keeps a client working on all of them).
Types and nullability follow the real servers' schemas (graphene for generation 1,
strawberry for generation 2): for example ``representation`` is nullable, so an unknown id gives
``{"data": {"representation": null}, "errors": [...]}``, while generation 2's ``image`` is
non-null, so an unknown id gives ``{"data": null, "errors": [...]}``.
"""

from __future__ import annotations

from functools import cache

from graphql import GraphQLSchema, build_schema

from napari_lablink.testing.mikro.roi_schema import (
    GEN1_ROI_SDL,
    GEN2_ROI_SDL,
    install_gen1,
    install_gen2,
)

GEN1_SDL = """
schema {
  query: Query
  mutation: Mutation
}

"A zarr store on S3, as the string <bucket>/<key>."
scalar Store

"The store path <bucket>/<key> of an xarray Dataset the client wrote."
scalar XArrayInput

type Credentials {
  accessKey: String!
  secretKey: String!
  sessionToken: String!
  status: String!
}

type PhysicalSize {
  x: Float
  y: Float
  z: Float
  t: Float
  c: Float
}

type OmeroChannel {
  name: String
  color: String
}

type Omero {
  physicalSize: PhysicalSize
  scale: [Float]
  channels: [OmeroChannel]
}

type Sample {
  id: ID!
  name: String!
}

enum RepresentationVariety {
  MASK
  VOXEL
  RGB
  UNKNOWN
}

type Representation {
  id: ID!
  name: String
  store: Store
  shape: [Int!]
  dims: [String!]
  variety: RepresentationVariety!
  tags: [String]
  omero: Omero
  sample: Sample
  origins: [Representation!]!
}

enum RepresentationVarietyInput {
  MASK
  VOXEL
  RGB
  UNKNOWN
}

input PhysicalSizeInput {
  x: Float
  y: Float
  z: Float
  t: Float
  c: Float
}

input ChannelInput {
  name: String
  color: String
  emmissionWavelength: Float
  excitationWavelength: Float
}

input OmeroRepresentationInput {
  physicalSize: PhysicalSizeInput
  scale: [Float]
  channels: [ChannelInput]
}

type Query {
  request: Credentials
  representation(id: ID!): Representation
  representations(name: String, tags: [String], limit: Int, offset: Int): [Representation]
}

type DeleteRepresentationResult {
  id: String
}

type Mutation {
  deleteRepresentation(id: ID!): DeleteRepresentationResult
  fromXArray(
    xarray: XArrayInput!
    name: String
    variety: RepresentationVarietyInput
    tags: [String]
    origins: [ID]
    omero: OmeroRepresentationInput
  ): Representation
}
"""

GEN2_SDL = """
schema {
  query: Query
  mutation: Mutation
}

"A 4x4 matrix as a list of four rows of four numbers."
scalar FourByFourMatrix

"The id of a zarr store created by requestZarrUpload."
scalar ArrayLike

"A length in micrometres."
scalar Micrometers

"The labels of a mask and their colours (any JSON)."
scalar LabelsLike

type ZarrStore {
  id: ID!
  path: String!
  bucket: String!
  key: String!
  shape: [Int!]!
  chunks: [Int!]!
  dtype: String
  dimensionNames: [String]
  version: String
}

type ChannelView {
  id: ID!
  name: String
  emissionWavelength: Float
  excitationWavelength: Float
  cMin: Int
  cMax: Int
}

"How a channel's intensities map to display colours (the monochrome maps run from black)."
enum ColorMap {
  VIRIDIS
  PLASMA
  INFERNO
  MAGMA
  RED
  GREEN
  BLUE
  INTENSITY
  CYAN
  MAGENTA
  YELLOW
  BLACK
  WHITE
  ORANGE
  PURPLE
  PINK
  BROWN
  GREY
  RAINBOW
  SPECTRAL
  COOL
  WARM
}

"How the channels cMin <= c < cMax are rendered: map, base colour (RGBA 0..255), contrast."
type RGBView {
  id: ID!
  cMin: Int
  cMax: Int
  colorMap: ColorMap!
  gamma: Float
  contrastLimitMin: Float
  contrastLimitMax: Float
  active: Boolean!
  baseColor: [Int!]
}

type RGBContext {
  id: ID!
  name: String!
  views: [RGBView!]!
}

type AffineTransformationView {
  id: ID!
  affineMatrix: FourByFourMatrix!
  pixelSizeX: Micrometers!
  pixelSizeY: Micrometers!
  pixelSizeZ: Micrometers!
}

type ScaleView {
  id: ID!
  scaleX: Float!
  scaleY: Float!
  scaleZ: Float!
  scaleT: Float!
  scaleC: Float!
  image: Image!
}

type ReferenceView {
  id: ID!
  image: Image!
}

type MaskView {
  id: ID!
  referenceView: ReferenceView!
}

type InstanceMaskView {
  id: ID!
  referenceView: ReferenceView!
}

type Image {
  id: ID!
  name: String!
  tags: [String!]!
  store: ZarrStore!
  channelViews: [ChannelView!]!
  affineTransformationViews: [AffineTransformationView!]!
  derivedScaleViews: [ScaleView!]!
  maskViews: [MaskView!]!
  instanceMaskViews: [InstanceMaskView!]!
  rgbContexts: [RGBContext!]!
}

type ZarrAccessGrant {
  accessKey: String!
  secretKey: String!
  sessionToken: String!
  bucket: String!
  key: String!
  path: String!
  expiresIn: Int!
  GRANT_VERSION_FIELD
}

type ZarrUploadGrant {
  accessKey: String!
  secretKey: String!
  sessionToken: String!
  bucket: String!
  key: String!
  path: String!
  store: String!
  expiresIn: Int!
  maxBytes: Int!
}

input StrFilterLookup {
  exact: String
  iExact: String
  contains: String
  iContains: String
  inList: [String!]
  startsWith: String
  iStartsWith: String
  endsWith: String
  iEndsWith: String
  isNull: Boolean
}

input ImageFilter {
  search: String
  ids: [ID!]
  name: StrFilterLookup
}

input OffsetPaginationInput {
  offset: Int! = 0
  limit: Int
}

input RequestZarrAccessInput {
  storeId: String
}

input RequestZarrUploadInput {
  shape: [Int!]
  chunks: [Int!]
  version: String
}

input RefreshZarrUploadInput {
  storeId: String!
}

input FinishZarrUploadInput {
  storeId: String!
  valid: Boolean! = true
}

input PartialChannelViewInput {
  name: String
  emissionWavelength: Float
  excitationWavelength: Float
  cMin: Int
  cMax: Int
}

input PartialRGBViewInput {
  cMin: Int
  cMax: Int
  context: ID
  gamma: Float
  contrastLimitMin: Float
  contrastLimitMax: Float
  rescale: Boolean
  scale: Float
  active: Boolean
  colorMap: ColorMap
  baseColor: [Float!]
}

input PartialAffineTransformationViewInput {
  affineMatrix: FourByFourMatrix!
  stage: ID
}

input PartialScaleViewInput {
  parent: ID
  scaleX: Float
  scaleY: Float
  scaleZ: Float
  scaleT: Float
  scaleC: Float
}

input PartialMaskViewInput {
  referenceView: ID
  labels: LabelsLike
}

input PartialInstanceMaskViewInput {
  referenceView: ID
  labels: LabelsLike
}

input DeleteImageInput {
  id: ID!
}

input FromArrayLikeInput {
  array: ArrayLike!
  name: String!
  tags: [String!]
  channelViews: [PartialChannelViewInput!]
  transformationViews: [PartialAffineTransformationViewInput!]
  scaleViews: [PartialScaleViewInput!]
  maskViews: [PartialMaskViewInput!]
  instanceMaskViews: [PartialInstanceMaskViewInput!]
  rgbViews: [PartialRGBViewInput!]
}

type Query {
  image(id: ID!): Image!
  images(filters: ImageFilter, pagination: OffsetPaginationInput): [Image!]!
}

type Mutation {
  requestZarrAccess(input: RequestZarrAccessInput!): ZarrAccessGrant!
  requestZarrUpload(input: RequestZarrUploadInput!): ZarrUploadGrant!
  refreshZarrUpload(input: RefreshZarrUploadInput!): ZarrUploadGrant!
  finishZarrUpload(input: FinishZarrUploadInput!): ZarrStore!
  fromArrayLike(input: FromArrayLikeInput!): Image!
  deleteImage(input: DeleteImageInput!): ID!
}
"""


@cache
def gen1_schema() -> GraphQLSchema:
    return install_gen1(build_schema(GEN1_SDL + GEN1_ROI_SDL))


#: The one access-grant field that differs: early-2026 commits name the datalayer, v2.0.0 dropped
#: it and added the S3 region.
_GRANT_VERSION_FIELDS = {"2.0.0": "region: String!", "early-2026": "datalayer: String!"}


@cache
def gen2_schema(version: str = "2.0.0") -> GraphQLSchema:
    sdl = GEN2_SDL.replace("GRANT_VERSION_FIELD", _GRANT_VERSION_FIELDS[version])
    return install_gen2(build_schema(sdl + GEN2_ROI_SDL))
