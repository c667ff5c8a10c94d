"""What every upload needs, whatever the server: named axes, progress, the upload errors.

napari data is ``(..., y, x)``; servers want named axes (mikro: all of ``c, t, z, y, x``).
:func:`to_ctzyx` maps one onto the other by the axis labels when there are any, by napari's
conventions otherwise, and refuses to guess when neither settles it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dask.array as da

from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.models import DIMS

__all__ = ["Progress", "to_ctzyx"]

#: progress(done, total) is called from worker threads after each written block.
Progress = Callable[[int, int], None]

_ALIASES = {
    "c": "c", "ch": "c", "channel": "c", "channels": "c",
    "t": "t", "time": "t",
    "z": "z", "depth": "z", "plane": "z",
    "y": "y", "row": "y", "rows": "y",
    "x": "x", "col": "x", "column": "x", "columns": "x",
}  # fmt: skip
#: napari's usual meaning of unlabelled axes, by number of dimensions.
_CONVENTIONS = {2: ("y", "x"), 3: ("z", "y", "x"), 4: ("t", "z", "y", "x")}


def _axis_name(label: object) -> str | None:
    return _ALIASES.get(str(label).strip().lower())


def to_ctzyx(data: object, dims: Sequence[str] | None = None, *, rgb: bool = False) -> da.Array:
    """``data`` as a lazy 5-D ``(c, t, z, y, x)`` dask array, without copying it.

    ``dims`` names the axes of ``data`` (aliases such as ``channel`` or ``time`` are understood);
    an ``xarray.DataArray`` brings its own. Without names, 2-4 dims follow napari's conventions
    (``y x``, ``z y x``, ``t z y x``) and RGB data has its colour axis last.
    """
    names = list(dims) if dims is not None else None
    if names is None and hasattr(data, "dims") and hasattr(data, "data"):
        names = [str(d) for d in data.dims]  # an xarray.DataArray
        data = data.data
    # name=False: dask would otherwise hash every byte of an in-memory array to name it.
    array: da.Array = (
        data if isinstance(data, da.Array) else da.from_array(data, chunks=-1, name=False)
    )
    if names is None:
        if rgb:
            spatial = _CONVENTIONS.get(array.ndim - 1)
            names = [*spatial, "c"] if spatial else None
        else:
            names = list(_CONVENTIONS.get(array.ndim, ())) or None
    if names is None or len(names) != array.ndim:
        raise ConfigurationError(
            f"Cannot tell which axis of this {array.ndim}-D data is which",
            hint="Set the layer's axis labels (for example layer.axis_labels = "
            "('t', 'c', 'z', 'y', 'x')) or pass dims=... with names among c, t, z, y, x",
        )
    mapped = [_axis_name(n) for n in names]
    if None in mapped or len(set(mapped)) != len(mapped) or not {"y", "x"} <= set(mapped):
        raise ConfigurationError(
            f"The axis labels {tuple(names)} do not name distinct axes among c, t, z, y, x "
            "including y and x",
            hint="Set the layer's axis labels to names such as ('z', 'y', 'x')",
        )
    order = [mapped.index(d) for d in DIMS if d in mapped]
    array = array.transpose(order)
    present = [d for d in DIMS if d in mapped]
    index = tuple(slice(None) if d in present else None for d in DIMS)
    ctzyx: da.Array = array[index]
    return ctzyx
