"""Putting images on the stand-in mikro server from the server side.

Data is written with zarr/xarray and admin credentials (not with the plugin's client) and then
registered through the same backend calls client uploads use, so seeded data passes the same
checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_lablink.testing.demo_data import cell_stack, tissue_plane
from napari_lablink.testing.mikro import zarr_io
from napari_lablink.testing.mikro.backend import MikroBackend


def add_representation(
    backend: MikroBackend,
    array: np.ndarray,
    name: str,
    *,
    physical_size: Mapping[str, float | None] | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
    variety: str = "VOXEL",
    tags: Sequence[str] = (),
    chunks: Sequence[int] | None = None,
) -> str:
    array = zarr_io.as_5d(np.asarray(array), "a representation")
    chunks = chunks or zarr_io.gen1_default_chunks(array.shape, array.dtype.itemsize)
    bucket, key = backend.config.gen1_bucket, f"{uuid.uuid4()}.zarr"
    zarr_io.write_gen1_dataset(backend.s3, bucket, key, array, chunks)
    omero = None
    if physical_size is not None or channels is not None:
        omero = {
            "physicalSize": None if physical_size is None else dict(physical_size),
            "scale": None,
            "channels": None if channels is None else [dict(c) for c in channels],
        }
    representation = backend.register_representation(
        f"{bucket}/{key}", name=name, variety=variety, tags=tags, origins=None, omero=omero
    )
    return representation.id


def add_image(
    backend: MikroBackend,
    array: np.ndarray,
    name: str,
    *,
    chunks: Sequence[int] | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
    pixel_size: tuple[float, float, float] | None = None,
    pyramid_levels: int = 1,
    tags: Sequence[str] = (),
    labels: bool = False,
) -> str:
    """Upload ``array`` as a generation-2 image; levels > 1 become derived scale images.

    ``labels``: every level gets a mask view of itself, which marks a label image."""
    array = zarr_io.as_5d(np.asarray(array), "an image")
    if pyramid_levels < 1:
        raise ValueError(f"pyramid_levels must be at least 1, not {pyramid_levels}")
    chunks = tuple(chunks or zarr_io.gen2_default_chunks(array.shape))
    channel_views = _channel_views(channels, array.shape[0])
    base_id = ""
    level = array
    for index in range(pyramid_levels):
        factor = 2**index
        if index:
            level = zarr_io.downsample_yx(level)
        store = backend.new_store(level.shape, chunks, "3")
        level_chunks = tuple(min(c, s) for c, s in zip(chunks, level.shape, strict=True))
        zarr_io.write_gen2_array(backend.s3, store.s3_bucket, store.key, level, level_chunks)
        image = backend.register_image(
            store.id,
            name=name if not index else f"{name} (1:{factor})",
            tags=tags,
            channel_views=channel_views,
            transformation_views=_affine(pixel_size, factor),
            scale_views=[]
            if not index
            else [{"parent": base_id, "scaleX": factor, "scaleY": factor, "scaleZ": 1.0}],
            mask_views=[{"referenceView": None}] if labels else None,
        )
        base_id = base_id or image.id
    return base_id


def _channel_views(
    channels: Sequence[Mapping[str, Any]] | None, count: int
) -> list[dict[str, Any]]:
    if channels is None:
        return []
    if len(channels) != count:
        raise ValueError(f"{len(channels)} channel descriptions for {count} channels")
    return [{"cMin": i, "cMax": i, **dict(channel)} for i, channel in enumerate(channels)]


def _affine(pixel_size: tuple[float, float, float] | None, factor: int) -> list[dict[str, Any]]:
    if pixel_size is None:
        return []
    x, y, z = pixel_size
    matrix = [[x * factor, 0, 0, 0], [0, y * factor, 0, 0], [0, 0, z, 0], [0, 0, 0, 1]]
    return [{"affineMatrix": matrix}]


DEMO_CHANNELS = [
    {"name": "DAPI", "color": "rgb(0,128,255)", "emission": 461.0, "excitation": 358.0},
    {"name": "Beads", "color": "rgb(0,255,0)", "emission": 510.0, "excitation": 488.0},
    {"name": "Actin", "color": "rgb(255,0,255)", "emission": 603.0, "excitation": 578.0},
]


def seed_demo(backend: MikroBackend) -> dict[str, str]:
    """The demo content; returns ids under stable names (see MikroStandIn.seed_demo)."""
    stack, labels = cell_stack((3, 1, 16, 256, 256))
    gen1_channels = [
        {
            "name": c["name"],
            "color": c["color"],
            "emmissionWavelength": c["emission"],
            "excitationWavelength": c["excitation"],
        }
        for c in DEMO_CHANNELS
    ]
    gen2_channels = [
        {
            "name": c["name"],
            "emissionWavelength": c["emission"],
            "excitationWavelength": c["excitation"],
        }
        for c in DEMO_CHANNELS
    ]
    physical = {"x": 0.2, "y": 0.2, "z": 0.5, "t": None, "c": None}
    ids = {
        "cells_gen1": add_representation(
            backend,
            stack,
            "Cells 3D",
            physical_size=physical,
            channels=gen1_channels,
            tags=["demo"],
        ),
        "cells_gen2": add_image(
            backend,
            stack,
            "Cells 3D",
            channels=gen2_channels,
            pixel_size=(0.2, 0.2, 0.5),
            tags=["demo"],
        ),
        "tissue_pyramid": add_image(
            backend,
            tissue_plane((2, 1, 1, 2048, 2048)),
            "Tissue pyramid",
            chunks=(1, 1, 1, 512, 512),
            channels=[
                {"name": "Autofluorescence", "emissionWavelength": 520.0},
                {"name": "Marker", "emissionWavelength": 670.0},
            ],
            pixel_size=(0.325, 0.325, 1.0),
            pyramid_levels=3,
            tags=["demo", "pyramid"],
        ),
        "nuclei_labels_gen1": add_representation(
            backend,
            labels,
            "Nuclei labels",
            physical_size=physical,
            channels=[{"name": "Nuclei", "color": None}],
            variety="MASK",
            tags=["demo", "labels"],
        ),
    }
    return ids
