"""Demo data for the stand-in MIBItracker: FOVs of a 28-channel panel that look like MIBI data.

MIBI channels are ion counts: mostly zeros and ones, a few counts per pixel where a marker sits,
in cell-shaped patterns (nuclear, membrane or cytoplasmic) that differ by cell type. The demo
draws cells as a jittered tessellation inside a tissue mask, gives each a type (tumour,
T cells, B cells, macrophages, ...) and samples every channel as Poisson counts from low rates,
so contrast limits, colormaps and sparse rendering are exercised as with real data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["PANEL", "Seedable", "seed_demo"]


class Seedable(Protocol):
    """The part of the stand-in's seeding API the demo uses.

    The demo depends on this rather than on ``TrackerStandIn``, whose ``seed_demo`` calls the
    demo: so the two modules do not import each other.
    """

    def add_project(self, name: str) -> int: ...

    def add_tissue(self, organ: str) -> int: ...

    def add_run(
        self, label: str, name: str | None = None, *, fov_size: float | None, project: int | None
    ) -> int: ...

    def add_image(
        self,
        run: int | str,
        number: str,
        channels: Mapping[str, tuple[int | None, np.ndarray]],
        fov_size_um: float,
        *,
        description: str | None,
        settings: Mapping[str, Mapping[str, Any]] | None,
        panel: str | None,
        tissue: int | None,
        coordinates: tuple[float, float] | None,
    ) -> int: ...


#: (mass, target, compartment, counts per pixel where expressed). Compartments: "nucleus",
#: "membrane", "cytoplasm", "matrix" (outside cells), "tissue" and "slide" (elemental channels).
PANEL: tuple[tuple[int, str, str, float], ...] = (
    (23, "Na", "tissue", 0.6),
    (28, "Si", "slide", 0.3),
    (89, "dsDNA", "nucleus", 6.0),
    (113, "Vimentin", "cytoplasm", 2.0),
    (115, "SMA", "cytoplasm", 2.5),
    (139, "CD163", "membrane", 2.0),
    (141, "Pan-Keratin", "cytoplasm", 3.0),
    (142, "CD45RO", "membrane", 1.5),
    (143, "CD3", "membrane", 2.5),
    (144, "CD8", "membrane", 2.5),
    (145, "CD4", "membrane", 2.0),
    (146, "CD20", "membrane", 3.0),
    (147, "CD68", "cytoplasm", 2.5),
    (148, "Ki67", "nucleus", 3.0),
    (149, "HLA-DR", "membrane", 2.0),
    (150, "CD45", "membrane", 3.0),
    (151, "CD31", "membrane", 2.5),
    (152, "PD-1", "membrane", 1.2),
    (153, "FoxP3", "nucleus", 2.0),
    (154, "CD11c", "membrane", 1.5),
    (155, "Beta-catenin", "membrane", 1.5),
    (156, "E-cadherin", "membrane", 2.0),
    (158, "Collagen1", "matrix", 1.0),
    (159, "CD56", "membrane", 1.5),
    (160, "Granzyme B", "cytoplasm", 1.5),
    (165, "H3K27me3", "nucleus", 2.0),
    (181, "Ta", "slide", 0.2),
    (197, "Au", "slide", 4.0),
)

#: Cell types: (share of immune/stroma cells, markers). Tumour cells fill the tumour region.
_CELL_TYPES: dict[str, tuple[float, tuple[str, ...]]] = {
    "tumour": (0.0, ("Pan-Keratin", "E-cadherin", "Beta-catenin")),
    "cd4_t": (0.22, ("CD45", "CD3", "CD4", "CD45RO")),
    "cd8_t": (0.14, ("CD45", "CD3", "CD8", "Granzyme B", "PD-1")),
    "treg": (0.04, ("CD45", "CD3", "CD4", "FoxP3")),
    "b_cell": (0.18, ("CD45", "CD20", "HLA-DR")),
    "macrophage": (0.12, ("CD45", "CD68", "CD163", "HLA-DR")),
    "dendritic": (0.04, ("CD45", "CD11c", "HLA-DR")),
    "nk": (0.03, ("CD45", "CD56", "Granzyme B")),
    "endothelial": (0.08, ("CD31", "Vimentin")),
    "fibroblast": (0.15, ("Vimentin", "SMA")),
}
_ALWAYS = ("dsDNA", "H3K27me3")
_PALETTE = (
    ("Cyan", "#00FFFF"),
    ("Yellow", "#FFFF00"),
    ("Magenta", "#FF00FF"),
    ("Green", "#00FF00"),
    ("Orange", "#FFA500"),
    ("Violet", "#8F00FF"),
    ("Red", "#FF0000"),
    ("Blue", "#0000FF"),
)
_UM_PER_PIXEL = 400.0 / 512  # 400 µm across 512 pixels, a common MIBI field of view


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Standardised smooth noise; broad fields are drawn coarse and zoomed, which is fast."""
    coarse = max(1, min(size, int(size * 4 / sigma)))
    field = ndimage.gaussian_filter(
        rng.standard_normal((coarse, coarse)), sigma * coarse / size, mode="wrap"
    )
    field = ndimage.zoom(field, size / coarse, order=1, mode="grid-wrap")[:size, :size]
    return (field - field.mean()) / field.std()


def _cells(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel cell label (-1 outside cells), relative distance to the cell centre, centres."""
    radius = 6.5  # pixels, about 10 µm cells at the demo's pixel size
    spacing = 2 * radius * 0.95
    grid = np.arange(spacing / 2, size, spacing)
    centres = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    centres = centres + rng.uniform(-0.35, 0.35, centres.shape) * spacing
    radii = radius * rng.uniform(0.75, 1.25, len(centres))
    yx = np.indices((size, size)).reshape(2, -1).T
    distance, nearest = cKDTree(centres).query(yx)
    relative = (distance / radii[nearest]).reshape(size, size)
    labels = np.where(relative < 1.0, nearest.reshape(size, size), -1)
    return labels, relative, centres


def _fov(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    labels, relative, centres = _cells(rng, size)
    tissue = _smooth_field(rng, size, size / 10) > -1.2  # a few holes in the section
    tumour_region = _smooth_field(rng, size, size / 6) > 0.4
    inside = labels >= 0
    labels = np.where(inside & tissue, labels, -1)
    cy, cx = np.clip(centres.astype(int), 0, size - 1).T
    in_tumour = tumour_region[cy, cx]
    names = [n for n in _CELL_TYPES if n != "tumour"]
    shares = np.array([_CELL_TYPES[n][0] for n in names])
    types = np.where(
        in_tumour & (rng.random(len(centres)) < 0.85),
        "tumour",
        rng.choice(names, size=len(centres), p=shares / shares.sum()),
    )
    brightness = rng.lognormal(0.0, 0.35, len(centres))
    dividing = rng.random(len(centres)) < 0.15
    compartments = {
        "nucleus": relative < 0.5,
        "cytoplasm": (relative >= 0.45) & (relative < 1.0),
        "membrane": (relative > 0.6) & (relative < 1.0),
    }
    matrix = tissue & ~inside & ~tumour_region
    safe_labels = np.maximum(labels, 0)
    channels: dict[str, np.ndarray] = {}
    for _mass, target, compartment, level in PANEL:
        if compartment == "slide":
            rate = np.where(tissue, 0.05, 1.0) * level
        elif compartment == "tissue":
            rate = np.where(tissue, level, 0.02)
        elif compartment == "matrix":
            rate = np.where(matrix, level, 0.0) * (0.5 + np.abs(_smooth_field(rng, size, 3)))
        else:
            expressed = np.array([target in _CELL_TYPES[t][1] for t in types])
            if target in _ALWAYS:
                expressed[:] = True
            if target == "Ki67":
                expressed = dividing
            per_cell = np.where(expressed, brightness, 0.0)
            rate = np.where(labels >= 0, per_cell[safe_labels], 0.0) * compartments[compartment]
            rate = ndimage.gaussian_filter(rate * level, 0.6)
        channels[target] = rng.poisson(rate + 0.03).astype(np.uint16)
    return channels


def _settings(channels: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    settings = {}
    for index, (target, counts) in enumerate(sorted(channels.items())):
        color, hex_code = _PALETTE[index % len(_PALETTE)]
        settings[target] = {
            "color": color,
            "hex": hex_code,
            "brightness": 0.0,
            "blur": 0,
            "intensity_lower": 0,
            "intensity_higher": max(1, int(np.percentile(counts, 99.5))),
        }
    return settings


def seed_demo(standin: Seedable, *, size: int, fovs: int, seed: int) -> dict[str, Any]:
    """Add the demo run to ``standin``; returns the run and image ids for printing and tests."""
    rng = np.random.default_rng(seed)
    project = standin.add_project("Demo project")
    tissue = standin.add_tissue("Tonsil")
    label = f"20240115T0930-demo-{seed}"
    run_id = standin.add_run(label, "Tonsil panel demo", fov_size=None, project=project)
    fov_size = size * _UM_PER_PIXEL
    images = []
    for index in range(1, fovs + 1):
        channels = _fov(rng, size)
        image_id = standin.add_image(
            run_id,
            f"FOV{index}",
            {target: (mass, channels[target]) for mass, target, _, _ in PANEL},
            fov_size,
            description=f"Tonsil_R1C{index}",
            settings=_settings(channels),
            panel="Tonsil panel",
            tissue=tissue,
            coordinates=(1000.0 * index, 2500.0),
        )
        images.append({"id": image_id, "number": f"FOV{index}", "name": f"Tonsil_R1C{index}"})
    return {
        "run": {"id": run_id, "label": label, "name": "Tonsil panel demo"},
        "images": images,
        "channels": [target for _, target, _, _ in PANEL],
        "fov_size_um": fov_size,
        "frame": size,
    }
