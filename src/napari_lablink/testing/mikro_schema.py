"""The GraphQL schemas of both mikro generations, as far as protocols/mikro.md documents them.

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

type Mutation {
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

type Image {
  id: ID!
  name: String!
  tags: [String!]!
  store: ZarrStore!
  channelViews: [ChannelView!]!
  affineTransformationViews: [AffineTransformationView!]!
  derivedScaleViews: [ScaleView!]!
}

type ZarrAccessGrant {
  accessKey: String!
  secretKey: String!
  sessionToken: String!
  bucket: String!
  key: String!
  path: String!
  expiresIn: Int!
  datalayer: String!
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

input FromArrayLikeInput {
  array: ArrayLike!
  name: String!
  tags: [String!]
  channelViews: [PartialChannelViewInput!]
  transformationViews: [PartialAffineTransformationViewInput!]
  scaleViews: [PartialScaleViewInput!]
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
}
"""


@cache
def gen1_schema() -> GraphQLSchema:
    return build_schema(GEN1_SDL)


@cache
def gen2_schema() -> GraphQLSchema:
    return build_schema(GEN2_SDL)
