"""``File > Open Sample > Lablink``: data to try the plugin on without any server.

Both samples are generated on the spot, deterministically:

- a bead z-stack from the acquisition core's simulated microscope with realistic optics, whose
  PSF is known (the FWHMs are in the layer's metadata and the true bead centres come as a
  points layer), so the PSF tools can be checked against the truth;
- a small MIBItiff of a few ion-count channels, written with the format module to a temporary
  file and read back, so it is exactly what opening a MIBItiff from disk gives.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from scipy import ndimage

from napari_lablink._napari.layers import LayerDataTuple, layer_data
from napari_lablink.acquisition.backends.optics import WidefieldPSF
from napari_lablink.acquisition.backends.simulated import SimulatedMicroscope
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.formats.mibitiff import read_mibitiff, write_mibitiff

__all__ = ["BEAD_PSF", "BEAD_Z_STEP_UM", "bead_stack", "mibitiff_sample"]

#: The sample's optics (an NA 1.3 objective at 520 nm, integrated over each camera pixel):
#: ``BEAD_PSF.fwhm_um(BEAD_PIXEL_UM)`` is what a PSF measurement of the bead stack should find.
BEAD_PSF = WidefieldPSF(na=1.3, wavelength_um=0.52)
BEAD_PIXEL_UM = 0.1
BEAD_Z_STEP_UM = 0.1
BEAD_FRAME = (160, 160)
BEAD_PLANES = 41  # 0 to 4 um

#: (mass, target, where it is expressed, counts per pixel there): a slice of a real MIBI panel.
MIBI_PANEL: tuple[tuple[int, str, str, float], ...] = (
    (89, "dsDNA", "nucleus", 6.0),
    (141, "Pan-Keratin", "tumour", 3.0),
    (150, "CD45", "immune", 3.0),
    (144, "CD8", "cd8", 2.5),
    (197, "Au", "slide", 3.0),
)
MIBI_SIZE = 256
MIBI_FOV_UM = 200.0


def bead_stack() -> list[LayerDataTuple]:
    """A (z, y, x) uint16 stack of fluorescent beads and the true bead centres."""
    microscope = SimulatedMicroscope(
        frame_shape=BEAD_FRAME,
        pixel_size_um=BEAD_PIXEL_UM,
        psf=BEAD_PSF,
        n_beads=6,
        bead_z_range_um=(1.6, 2.4),
        seed=11,
    )
    truth = microscope.ground_truth()
    stack = microscope.render_stack(np.arange(BEAD_PLANES) * BEAD_Z_STEP_UM)
    scale = (BEAD_Z_STEP_UM, BEAD_PIXEL_UM, BEAD_PIXEL_UM)
    psf = {
        "fwhm_x_um": truth.fwhm_x_um,
        "fwhm_y_um": truth.fwhm_y_um,
        "fwhm_z_um": truth.fwhm_z_um,
        "pixel_size_um": truth.pixel_size_um,
        "z_step_um": BEAD_Z_STEP_UM,
        "background": truth.background,
        "beads_zyx_um": truth.beads_zyx_um.round(4).tolist(),
    }
    low, high = np.percentile(stack, [1, 99.99])
    image: dict[str, Any] = {
        "name": "Simulated beads",
        "scale": scale,
        "units": ("um", "um", "um"),
        "axis_labels": ("z", "y", "x"),
        "colormap": "gray",
        "contrast_limits": (float(low), float(high)),
        "metadata": {"lablink": {"sample": "beads", "psf_truth": psf}},
    }
    points: dict[str, Any] = {
        "name": "Bead centres (truth)",
        "size": 0.6,
        "symbol": "ring",
        "face_color": "#ffcc00",
        "border_width": 0,
        "units": ("um", "um", "um"),
        "axis_labels": ("z", "y", "x"),
        "visible": False,
    }
    return [(stack, image, "image"), (truth.beads_zyx_um.copy(), points, "points")]


def mibitiff_sample() -> list[LayerDataTuple]:
    """A 256 x 256 MIBItiff of five channels, one additive layer per channel."""
    counts = _mibi_counts(np.random.default_rng(3))
    channels = [(mass, target) for mass, target, _, _ in MIBI_PANEL]
    metadata = {"run": "sample-run", "fov_id": "FOV1", "fov_name": "Lablink sample FOV"}
    with tempfile.TemporaryDirectory(prefix="lablink-sample-") as folder:
        path = Path(folder) / "sample_mibi.tiff"
        write_mibitiff(path, counts, channels, metadata, fov_size_um=MIBI_FOV_UM)
        image = read_mibitiff(path)
    pixel = image.pixel_size_um
    remote = RemoteImage(
        uri="sample:mibitiff",
        name=str(image.metadata.get("fov_name") or "MIBItiff sample"),
        dims=("c", "y", "x"),
        levels=[da.from_array(image.data, chunks=(1, *image.data.shape[1:]))],
        pixel_size={"y": pixel, "x": pixel} if pixel else {},
        channels=[Channel(name=name) for name in image.names],
        server_metadata=dict(image.metadata),
    )
    out = []
    for data, kwargs, kind in layer_data(remote):
        # The reader's keys, so saving the layers as a MIBItiff keeps the FOV's metadata.
        kwargs["metadata"]["lablink"]["mibitiff"] = dict(image.metadata)
        kwargs["metadata"]["lablink"]["sample"] = "mibitiff"
        out.append((np.asarray(data), kwargs, kind))
    return out


def _mibi_counts(rng: np.random.Generator) -> np.ndarray:
    """Poisson ion counts of cells (Voronoi cells round a jittered grid) of three types."""
    size = MIBI_SIZE
    step = 16
    grid = np.stack(np.meshgrid(*[np.arange(step // 2, size, step)] * 2, indexing="ij"), -1)
    centres = grid.reshape(-1, 2) + rng.uniform(-4, 4, size=(grid.size // 2, 2))
    yy, xx = np.mgrid[:size, :size]
    distance = np.full((size, size), np.inf)
    nearest = np.zeros((size, size), int)
    for index, (cy, cx) in enumerate(centres):
        d = np.hypot(yy - cy, xx - cx)
        closer = d < distance
        distance[closer], nearest[closer] = d[closer], index
    smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)), 24)
    tissue = smooth > np.quantile(smooth, 0.25)  # a quarter of the FOV is bare slide
    tumour_cell = np.hypot(*(centres - size * 0.3).T) < size * 0.3
    kind = np.where(tumour_cell, 2, rng.choice([0, 1], size=len(centres), p=[0.6, 0.4]))
    cell = (distance < 6.5) & tissue
    nucleus = (distance < 3.5) & tissue
    membrane = cell & (distance > 4.5)
    cell_kind = kind[nearest]
    masks = {
        "nucleus": nucleus,
        "tumour": cell & ~nucleus & (cell_kind == 2),
        "immune": membrane & (cell_kind < 2),
        "cd8": membrane & (cell_kind == 1),
        "slide": ~tissue,
    }
    planes = [rng.poisson(np.where(masks[where], rate, 0.05)) for _, _, where, rate in MIBI_PANEL]
    return np.stack(planes).astype(np.uint16)
