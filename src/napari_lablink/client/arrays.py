"""Checks on an array's shape before an upload turns its axes into ``c, t, z, y, x``.

Without axis names an upload follows napari's conventions, under which a ``(y, x, 3)`` colour
image is a stack of 3-pixel-wide planes. Both mikro generations store whatever they are given, so
a photo uploaded without ``rgb=True`` would come back as hundreds of useless slivers. Refusing it
before anything is written costs the user one argument; storing it costs a broken image on the
server.
"""

from __future__ import annotations

from collections.abc import Sequence

from napari_lablink.client.errors import AmbiguousArrayError

__all__ = ["COLOUR_SAMPLES", "check_upload_array", "looks_like_rgb"]

#: Samples per pixel of RGB and RGBA images.
COLOUR_SAMPLES = (3, 4)


def looks_like_rgb(shape: Sequence[int]) -> bool:
    """Whether ``shape`` reads as a colour image: 3 or 4 samples last, behind a wider plane.

    A real z-stack of 3 or 4 pixels wide planes is rare; a colour image is common. Requiring the
    axis before the samples to be wider keeps tiny test stacks such as ``(3, 3, 3)`` out of it.
    """
    return len(shape) >= 3 and shape[-1] in COLOUR_SAMPLES and shape[-2] > max(COLOUR_SAMPLES)


def check_upload_array(
    shape: Sequence[int], *, dims: Sequence[str] | None = None, rgb: bool = False
) -> None:
    """Refuse shapes an upload would store as something else than the user meant.

    ``dims`` are the axis names the caller gave (an xarray's own count as given): named axes
    are taken as named, so ``dims=("z", "y", "x")`` uploads even a colour-looking array as planes.
    """
    shape = tuple(int(n) for n in shape)
    if rgb:
        if not shape or shape[-1] not in COLOUR_SAMPLES:
            raise AmbiguousArrayError(
                f"rgb=True needs 3 or 4 colour samples on the last axis; this array has shape "
                f"{shape}",
                hint="Move the colour axis last, or upload without rgb=True",
            )
        return
    if dims is None and looks_like_rgb(shape):
        spatial = " x ".join(str(n) for n in shape[:-1])
        raise AmbiguousArrayError(
            f"This array of shape {shape} looks like a colour image ({shape[-1]} samples per "
            f"pixel), but without rgb=True it would be stored as {shape[-3]} planes of "
            f"{shape[-2]} x {shape[-1]} pixels",
            hint=f"Pass rgb=True to upload a colour image of {spatial} pixels, or name the axes "
            f"(dims=('z', 'y', 'x')) to upload it as planes",
        )
