"""Files the PSF widget writes: the PSF table as CSV, the last stack as OME-TIFF or OME-Zarr.

Plain functions of a path, so tests and scripts call them without file dialogs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
import zarr

from napari_lablink.acquisition.psf import BeadFit, PSFResult

__all__ = ["write_psf_csv", "write_stack", "write_stack_ome_tiff", "write_stack_ome_zarr"]

_COLUMNS = ("channel", *BeadFit.__dataclass_fields__, "status")


def write_psf_csv(results: Sequence[PSFResult], path: str | Path, channels: Sequence[str]) -> Path:
    """One row per bead and channel, then one ``mean`` row per channel (as in the table).

    The mean row carries the standard deviations in its status, so the spread of the beads is
    kept with the numbers it qualifies.
    """
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        for result in results:
            name = channels[result.channel] if result.channel < len(channels) else result.channel
            for row in result.rows():
                writer.writerow({"channel": name, **row})
            s = result.summary
            writer.writerow(
                {
                    "channel": name,
                    "bead": "mean",
                    "fwhm_x_um": s.fwhm_x_um,
                    "fwhm_y_um": s.fwhm_y_um,
                    "fwhm_z_um": s.fwhm_z_um,
                    "signal_to_background": s.signal_to_background,
                    "r_squared": s.r_squared,
                    "status": (
                        f"{s.n_beads} fitted, {s.n_failed} failed; std x/y/z "
                        f"{s.fwhm_x_std_um:.4f}/{s.fwhm_y_std_um:.4f}/{s.fwhm_z_std_um:.4f} um"
                    ),
                }
            )
    return path


def write_stack_ome_tiff(
    stacks: Sequence[np.ndarray],
    path: str | Path,
    *,
    channels: Sequence[str],
    pixel_size_um: float,
    z_step_um: float,
) -> Path:
    """Write (z, y, x) stacks, one per channel, as one CZYX OME-TIFF with physical sizes."""
    if len(stacks) != len(channels) or not stacks:
        raise ValueError(f"need one stack per channel, got {len(stacks)} for {len(channels)}")
    path = Path(path)
    data = np.stack([np.asarray(s) for s in stacks])
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": pixel_size_um,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": pixel_size_um,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": abs(z_step_um) or 1.0,
            "PhysicalSizeZUnit": "µm",
            "Channel": {"Name": list(channels)},
        },
    )
    return path


def write_stack_ome_zarr(
    stacks: Sequence[np.ndarray],
    path: str | Path,
    *,
    channels: Sequence[str],
    pixel_size_um: float,
    z_step_um: float,
) -> Path:
    """Write (z, y, x) stacks as one CZYX OME-Zarr image (NGFF 0.4, read by napari-ome-zarr).

    One chunk per plane, the scale in micrometres and the channel names in ``omero``.
    """
    if len(stacks) != len(channels) or not stacks:
        raise ValueError(f"need one stack per channel, got {len(stacks)} for {len(channels)}")
    path = Path(path)
    data = np.stack([np.asarray(s) for s in stacks])
    space = {"type": "space", "unit": "micrometer"}
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": path.stem,
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "z", **space},
                {"name": "y", **space},
                {"name": "x", **space},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {
                            "type": "scale",
                            "scale": [1.0, abs(z_step_um) or 1.0, pixel_size_um, pixel_size_um],
                        }
                    ],
                }
            ],
        }
    ]
    root.attrs["omero"] = {"channels": [{"label": name, "active": True} for name in channels]}
    array = root.create_array(
        "0", shape=data.shape, chunks=(1, 1, *data.shape[2:]), dtype=data.dtype
    )
    array[:] = data
    return path


def write_stack(
    stacks: Sequence[np.ndarray],
    path: str | Path,
    *,
    channels: Sequence[str],
    pixel_size_um: float,
    z_step_um: float,
) -> Path:
    """OME-Zarr for a ``.zarr`` path, OME-TIFF otherwise."""
    if str(path).rstrip("/").endswith(".zarr"):
        writer = write_stack_ome_zarr
    else:
        writer = write_stack_ome_tiff
    return writer(stacks, path, channels=channels, pixel_size_um=pixel_size_um, z_step_um=z_step_um)
