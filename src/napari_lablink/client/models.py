"""The common image description every reader produces.

A :class:`RemoteImage` is all napari needs to show an image from any server: its dims, lazy pixel
pyramid, physical pixel size and channels. Protocol modules build one; the napari glue turns it
into layers. So a new server kind needs only a protocol module.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DIMS", "Channel", "RemoteImage"]

#: The axes a RemoteImage may have, in the order it keeps them.
DIMS = ("c", "t", "z", "y", "x")


class Channel(BaseModel):
    """One channel's display description: napari turns it into a layer's name and colormap."""

    model_config = ConfigDict(frozen=True)

    name: str
    #: RGB in 0..1, or None to let the viewer pick.
    color: tuple[float, float, float] | None = None
    contrast_limits: tuple[float, float] | None = None
    emission_wavelength: float | None = None
    excitation_wavelength: float | None = None


class RemoteImage(BaseModel):
    """An image on a server, opened lazily: only metadata has been read.

    ``levels`` is the pyramid, full resolution first, as dask arrays with ``dims`` as axes and the
    server's chunking; ``pixel_size`` maps spatial dims to micrometres (absent: unknown).
    ``server_metadata`` holds the server's own description of the image (never credentials).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    uri: str
    name: str
    dims: tuple[str, ...]
    levels: list[da.Array] = Field(min_length=1)
    pixel_size: dict[str, float] = Field(default_factory=dict)
    channels: list[Channel] = Field(default_factory=list)
    is_labels: bool = False
    is_rgb: bool = False
    server_metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dims")
    @classmethod
    def _dims_in_order(cls, dims: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(dims)) != len(dims) or any(d not in DIMS for d in dims):
            raise ValueError(f"dims must be distinct names out of {DIMS}, got {dims}")
        if list(dims) != sorted(dims, key=DIMS.index):
            raise ValueError(f"dims must be in the order c, t, z, y, x, got {dims}")
        return dims

    @model_validator(mode="after")
    def _consistent(self) -> RemoteImage:
        for level in self.levels:
            if level.ndim != len(self.dims):
                raise ValueError(f"level of shape {level.shape} does not have dims {self.dims}")
        if self.channels and "c" in self.dims and len(self.channels) != self.shape[0]:
            raise ValueError(f"{len(self.channels)} channels described for shape {self.shape}")
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = np.dtype(self.levels[0].dtype)
        return dtype

    @property
    def multiscale(self) -> bool:
        return len(self.levels) > 1

    @property
    def data(self) -> xr.DataArray:
        """Full resolution as a lazy ``xarray.DataArray`` with named dims and physical coords."""
        coords: dict[str, Any] = {
            dim: np.arange(n) * self.pixel_size[dim]
            for dim, n in zip(self.dims, self.shape, strict=True)
            if dim in self.pixel_size
        }
        if "c" in self.dims and self.channels:
            coords["c"] = [c.name for c in self.channels]
        return xr.DataArray(
            self.levels[0],
            dims=self.dims,
            coords=coords,
            name=self.name,
            attrs={"uri": self.uri, "pixel_size_um": dict(self.pixel_size)},
        )

    def __repr__(self) -> str:
        return (
            f"RemoteImage(uri={self.uri!r}, name={self.name!r}, dims={self.dims}, "
            f"shape={self.shape}, dtype={self.dtype}, levels={len(self.levels)})"
        )
