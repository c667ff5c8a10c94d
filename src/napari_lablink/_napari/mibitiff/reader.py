"""npe2 reader for local MIBItiff files: one additive layer per channel, named ``Target (mass)``.

napari asks every reader about every ``.tif``/``.tiff`` it opens, so :func:`get_mibitiff_reader`
reads one page's tags and declines anything that is not a MIBItiff; napari's own TIFF reader then
takes it. The file goes through a :class:`RemoteImage` and ``layer_data`` so a local MIBItiff
looks exactly like the same image opened from the tracker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from napari_lablink._napari.layers import LayerDataTuple, layer_data
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.formats.mibitiff import MibiImage, is_mibitiff, read_mibitiff

__all__ = ["get_mibitiff_reader", "mibitiff_layer_data", "read_mibitiff_layers"]

_SUFFIXES = (".tif", ".tiff")


def _claims(path: Any) -> bool:
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not text or not text.lower().endswith(_SUFFIXES) or not os.path.isfile(text):
        return False
    try:
        return is_mibitiff(text)
    except OSError:
        return False


def get_mibitiff_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if paths and all(_claims(p) for p in paths):
        return read_mibitiff_layers
    return None


def read_mibitiff_layers(path: str | list[str]) -> list[LayerDataTuple]:
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerDataTuple] = []
    for one in paths:
        layers.extend(mibitiff_layer_data(read_mibitiff(one), os.fspath(one)))
    return layers


def mibitiff_layer_data(image: MibiImage, source: str) -> list[LayerDataTuple]:
    """Layer data tuples of a read MIBItiff; ``source`` (its path) goes into the metadata."""
    planes = image.data
    pixel = image.pixel_size_um
    metadata = {**image.metadata}
    if image.fov_size_um:
        metadata["size"] = image.fov_size_um
    remote = RemoteImage(
        uri=source,
        name=str(metadata.get("fov_name") or os.path.basename(source)),
        dims=("c", "y", "x"),
        levels=[da.from_array(planes, chunks=(1, *planes.shape[1:]))],
        pixel_size={"y": pixel, "x": pixel} if pixel else {},
        channels=[
            Channel(name=name, contrast_limits=_display_range(plane))
            for name, plane in zip(image.names, planes, strict=True)
        ],
        server_metadata=metadata,
    )
    out: list[LayerDataTuple] = []
    for data, kwargs, kind in layer_data(remote):
        # Kept where the writer looks for it, so saving the layers again keeps the FOV's metadata.
        kwargs["metadata"]["lablink"]["mibitiff"] = metadata
        if len(image.names) == 1:  # named after the FOV otherwise: a channel needs its mass
            kwargs["name"] = image.names[0]
        out.append((data, {**kwargs, "blending": "additive"}, kind))
    return out


def _display_range(plane: np.ndarray) -> tuple[float, float]:
    """0 to the 99.5th percentile: MIBI counts are sparse, and the few hot pixels that set the
    maximum would leave the rest of the channel black under napari's min-max default."""
    high = float(np.percentile(plane, 99.5)) if plane.size else 1.0
    return 0.0, max(high, 1.0)
