"""The mikro protocol, both generations: GraphQL for metadata and grants, zarr on S3 for pixels.

``server`` composes the rest: ``session`` (GraphQL over the transport), ``queries`` (the
documents), one module per generation behind ``generation.Generation`` (``representations`` for
generation 1, ``images`` for generation 2), ``datalayer`` (zarr on S3 with granted credentials)
and ``blocks`` (streamed zarr writes, chunk layouts, pyramids).
"""

from napari_lablink.client.mikro.server import MikroServer

__all__ = ["MikroServer"]
