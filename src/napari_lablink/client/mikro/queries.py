"""The GraphQL documents napari-lablink sends to mikro, both generations.

They ask only for fields both the real servers and the stand-ins are known to have: a field the
real server lacks fails the whole operation there, so nothing is asked for "just in case".
"""

from __future__ import annotations

# -- generation 1: representations ----------------------------------------------------------------

GET_REPRESENTATION = """
query GetRepresentation($id: ID!) {
  representation(id: $id) {
    id name store shape dims variety tags
    omero { physicalSize { x y z t c } scale channels { name color } }
    sample { id name }
    origins { id }
  }
}"""

LIST_REPRESENTATIONS = """
query Representations($name: String, $tags: [String], $limit: Int, $offset: Int) {
  representations(name: $name, tags: $tags, limit: $limit, offset: $offset) { id name shape tags }
}"""

#: S3 credentials for the whole bucket, for reading and writing alike.
REQUEST_CREDENTIALS = """
query Request { request { accessKey secretKey sessionToken status } }"""

FROM_XARRAY = """
mutation FromXArray($xarray: XArrayInput!, $name: String, $variety: RepresentationVarietyInput,
                    $tags: [String], $origins: [ID], $omero: OmeroRepresentationInput) {
  fromXArray(xarray: $xarray, name: $name, variety: $variety, tags: $tags,
             origins: $origins, omero: $omero) { id name store shape dims variety }
}"""

# -- generation 2: images -------------------------------------------------------------------------

GET_IMAGE = """
query GetImage($id: ID!) {
  image(id: $id) {
    id name tags
    store { id path bucket key shape chunks dtype dimensionNames version }
    channelViews { id name emissionWavelength excitationWavelength cMin cMax }
    affineTransformationViews { id affineMatrix pixelSizeX pixelSizeY pixelSizeZ }
    derivedScaleViews {
      id scaleX scaleY scaleZ scaleT scaleC image { id store { id shape chunks dtype } }
    }
    maskViews { id }
    instanceMaskViews { id }
    rgbContexts {
      id name views { id cMin cMax colorMap contrastLimitMin contrastLimitMax active baseColor }
    }
  }
}"""

LIST_IMAGES = """
query Images($filters: ImageFilter, $pagination: OffsetPaginationInput) {
  images(filters: $filters, pagination: $pagination) {
    id name tags store { shape dtype }
    channelViews { name cMin cMax }
    affineTransformationViews { pixelSizeX pixelSizeY pixelSizeZ }
    derivedScaleViews { image { id } }
  }
}"""

REQUEST_ZARR_ACCESS = """
mutation RequestZarrAccess($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) {
    accessKey secretKey sessionToken bucket key path expiresIn
  }
}"""

REQUEST_ZARR_UPLOAD = """
mutation RequestZarrUpload($input: RequestZarrUploadInput!) {
  requestZarrUpload(input: $input) {
    accessKey secretKey sessionToken bucket key path store expiresIn maxBytes
  }
}"""

#: New credentials for a store whose upload is still under way (uploads may outlive a grant).
REFRESH_ZARR_UPLOAD = """
mutation RefreshZarrUpload($input: RefreshZarrUploadInput!) {
  refreshZarrUpload(input: $input) {
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

# -- looking up and rolling back uploads ----------------------------------------------------------

#: Images by exact name, with their tags: where an upload's key tag is looked for.
FIND_IMAGES = """
query FindImages($filters: ImageFilter, $pagination: OffsetPaginationInput) {
  images(filters: $filters, pagination: $pagination) { id name tags }
}"""

DELETE_IMAGE = """
mutation DeleteImage($input: DeleteImageInput!) { deleteImage(input: $input) }"""

DELETE_REPRESENTATION = """
mutation DeleteRepresentation($id: ID!) { deleteRepresentation(id: $id) { id } }"""
