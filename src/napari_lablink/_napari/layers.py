"""RemoteImage -> napari layer data: the one place that decides how a server image looks in napari.

Every reader ends here, so every server gets the same treatment: size-1 axes squeezed, one layer
per channel, physical scale in micrometres, channel names, colours and contrast limits from the
server, multiscale when there is a pyramid, and the source URI (never a credential) in metadata.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
from napari.utils.colormaps import Colormap

from napari_lablink.client.models import RemoteImage

__all__ = ["VISIBLE_AT_FIRST", "layer_data"]

LayerDataTuple = tuple[Any, dict[str, Any], str]

#: Used for channels the server gives no colour for, in napari's own multichannel order.
_FALLBACK_COLORS = (
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
    (0.0, 1.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0),
)


#: Channels shown when an image opens; the others are added hidden (a 40-channel FOV drawn
#: additively is white noise, and every visible channel is fetched).
VISIBLE_AT_FIRST = 4

#: napari's own black-to-colour colormaps: a channel of one of these colours gets its name.
_NAMED_RAMPS = {
    (0, 0, 255): "blue",
    (0, 255, 255): "cyan",
    (255, 255, 255): "gray",
    (0, 255, 0): "green",
    (255, 0, 255): "magenta",
    (255, 0, 0): "red",
    (255, 255, 0): "yellow",
}


def _colormap(rgb: tuple[float, float, float]) -> Colormap | str:
    """napari's named ramp of that colour, else a black-to-colour ramp named by its hex colour
    (so equal colours share a name)."""
    key = tuple(round(v * 255) for v in rgb)
    if key in _NAMED_RAMPS:
        return _NAMED_RAMPS[key]
    name = "#" + "".join(f"{round(v * 255):02x}" for v in rgb)
    return Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=name, display_name=name)


def _squeeze(image: RemoteImage) -> tuple[list[da.Array], tuple[str, ...]]:
    """Drop size-1 axes other than c, y and x (a 2-D image must stay 2-D)."""
    keep = [
        i
        for i, (dim, n) in enumerate(zip(image.dims, image.shape, strict=True))
        if n > 1 or dim in ("c", "y", "x")
    ]
    index = tuple(slice(None) if i in keep else 0 for i in range(len(image.dims)))
    return [level[index] for level in image.levels], tuple(image.dims[i] for i in keep)


def layer_data(image: RemoteImage) -> list[LayerDataTuple]:
    """napari layer data tuples for ``image``: one layer per channel (or one RGB layer)."""
    levels, dims = _squeeze(image)
    spatial = tuple(d for d in dims if d != "c")
    metadata = {
        "lablink": {
            "uri": image.uri,
            "name": image.name,
            "dims": spatial,
            "server_metadata": image.server_metadata,
        }
    }
    common: dict[str, Any] = {
        "scale": tuple(image.pixel_size.get(d, 1.0) for d in spatial),
        "metadata": metadata,
    }
    if image.pixel_size:
        common["units"] = tuple("um" if d in image.pixel_size else "pixel" for d in spatial)
        common["axis_labels"] = spatial
    multiscale = len(levels) > 1
    has_c = "c" in dims
    n_channels = levels[0].shape[0] if has_c else 1

    def data_of(arrays: list[da.Array]) -> Any:
        return arrays if multiscale else arrays[0]

    if image.is_rgb and has_c:
        moved = [da.moveaxis(level, 0, -1) for level in levels]
        return [(data_of(moved), {**common, "name": image.name, "rgb": True}, "image")]

    channels = image.channels or []
    names = [channels[i].name if i < len(channels) else f"Channel {i}" for i in range(n_channels)]
    if image.is_labels:
        out = []
        for i in range(n_channels):
            arrays = [level[i] for level in levels] if has_c else levels
            name = image.name if n_channels == 1 else f"{image.name} {names[i]}"
            out.append((data_of(arrays), {**common, "name": name}, "labels"))
        return out

    if not has_c or n_channels == 1:
        arrays = [level[0] for level in levels] if has_c else levels
        kwargs = {**common, "name": image.name}
        if channels and channels[0].color:
            kwargs["colormap"] = _colormap(channels[0].color)
        if channels and channels[0].contrast_limits:
            kwargs["contrast_limits"] = channels[0].contrast_limits
        return [(data_of(arrays), kwargs, "image")]

    colors = [
        (channels[i].color if i < len(channels) and channels[i].color else None)
        or _FALLBACK_COLORS[i % len(_FALLBACK_COLORS)]
        for i in range(n_channels)
    ]
    kwargs = {
        **common,
        "channel_axis": 0,
        "name": names,
        "colormap": [_colormap(c) for c in colors],
        "blending": "additive",
    }
    if n_channels > VISIBLE_AT_FIRST:
        kwargs["visible"] = [i < VISIBLE_AT_FIRST for i in range(n_channels)]
    limits = [c.contrast_limits for c in channels[:n_channels]]
    if len(limits) == n_channels and all(limits):
        kwargs["contrast_limits"] = limits
    return [(data_of(levels), kwargs, "image")]
