"""Opening reads metadata only, and a plane's graph holds that plane's chunks, at any size."""

from __future__ import annotations

import numpy as np
import zarr
from dask.base import collections_to_expr

import napari_lablink

TIB = (1, 1, 512, 32768, 32768)  # uint16: 1 TiB in 524,288 chunks of 1024 x 1024
SMALL = (1, 1, 2, 2048, 2048)  # 8 chunks
CHUNKS = (1, 1, 1, 1024, 1024)


def empty_image(mikro, shape: tuple[int, ...]) -> str:
    """An image whose store holds only its metadata (every chunk is the fill value)."""
    backend = mikro._backend  # seeding below the GraphQL API: no upload could write 1 TiB
    store = backend.new_store(shape, CHUNKS, "3")
    zarr.create_array(
        mikro.s3.zarr_store(store.s3_bucket, store.key),
        shape=shape,
        chunks=CHUNKS,
        dtype=np.uint16,
        fill_value=7,
        dimension_names=list("ctzyx"),
    )
    image = backend.register_image(
        store.id,
        name="huge",
        tags=(),
        channel_views=(),
        transformation_views=(),
        scale_views=(),
    )
    return image.id


def plane_tasks(level) -> tuple[int, np.ndarray]:
    """How many tasks reading a 2048 x 2048 corner of one plane takes, and its pixels."""
    plane = level[0, 0, 1, :2048, :2048]
    graph = collections_to_expr([plane]).optimize().__dask_graph__()
    return len(graph), plane.compute()


def test_a_1_tib_image_opens_metadata_only_and_plane_graphs_do_not_grow(mikro_clean) -> None:
    huge_id, small_id = empty_image(mikro_clean, TIB), empty_image(mikro_clean, SMALL)
    with napari_lablink.connect(
        f"mikro+http://{mikro_clean.uri_authority}/mikro",
        token=mikro_clean.token,
        s3=mikro_clean.s3_endpoint,
    ) as server:
        mikro_clean.s3.reset_requests()
        huge = server.get(mikro_clean.image_uri(huge_id)).levels[0]
        assert huge.shape == TIB and huge.npartitions == 524288
        assert mikro_clean.s3.count("GET", "/c/") == 0  # metadata only
        (layer,) = huge.dask.layers.values()
        assert not layer.is_materialized() and len(huge.dask) == 524288
        small = server.get(mikro_clean.image_uri(small_id)).levels[0]
        huge_tasks, huge_plane = plane_tasks(huge)
        small_tasks, small_plane = plane_tasks(small)
    assert huge_tasks == small_tasks <= 8  # four chunk reads and their assembly, at any size
    np.testing.assert_array_equal(huge_plane, np.full((2048, 2048), 7, np.uint16))
    np.testing.assert_array_equal(small_plane, huge_plane)
