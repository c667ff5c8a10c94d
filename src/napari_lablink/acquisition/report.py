"""A PSF report on one page: what a microscopist files with an alignment or a service visit.

Views of the stack (XY maximum projection, XZ and YZ through the brightest bead), the x, y and
z profiles of that bead with the fitted curves, the average PSF, the table of beads, the
alignment read-outs and the settings. Drawn with matplotlib's object API (no pyplot, so no
GUI backend and no global state): PNG, or PDF for a ``.pdf`` path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from napari_lablink.acquisition.psf.results import PSFResult
from napari_lablink.acquisition.psf.theory import Optics

__all__ = ["write_psf_report"]

_COLUMNS = ("bead", "x", "y", "z", "FWHM x", "FWHM y", "FWHM z", "S/B", "Q")


def _f(value: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def write_psf_report(
    path: str | Path,
    result: PSFResult,
    stack: np.ndarray,
    *,
    settings: Mapping[str, str] | None = None,
    optics: Optics | None = None,
    title: str = "PSF report",
) -> Path:
    """Write the report of ``result`` (measured on ``stack``, (z, y, x)) to ``path``."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf"):
        raise ValueError(f"a PSF report is a .png or .pdf file, not {path.name!r}")
    stack = np.asarray(stack, dtype=float)
    fig = Figure(figsize=(11.7, 8.3), dpi=110)  # A4 landscape
    fig.suptitle(title, fontsize=14, x=0.02, ha="left")
    grid = fig.add_gridspec(3, 4, height_ratios=(1.2, 1.0, 1.1), hspace=0.45, wspace=0.3)
    _views(fig, grid, result, stack)
    _profiles(fig, grid, result, optics)
    _average(fig, grid, result)
    _table(fig, grid, result)
    _text(fig, grid, result, settings or {}, optics)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower()[1:])
    return path


def _views(fig: Figure, grid: object, result: PSFResult, stack: np.ndarray) -> None:
    px, dz = result.pixel_size_um, abs(result.z_step_um) or 1.0
    nz, ny, nx = stack.shape
    lo, hi = float(np.median(stack)), float(stack.max())
    bead = result.beads[0] if result.beads else None
    y = round(bead.y_px) if bead else ny // 2
    x = round(bead.x_px) if bead else nx // 2
    views = (
        ("XY (max projection)", stack.max(axis=0), (0, nx * px, ny * px, 0)),
        (
            "XZ through bead %s" % (bead.bead if bead else "-"),
            stack[:, y, :],
            (0, nx * px, nz * dz, 0),
        ),
        (
            "YZ through bead %s" % (bead.bead if bead else "-"),
            stack[:, :, x].T,
            (0, nz * dz, ny * px, 0),
        ),
    )
    for i, (name, image, extent) in enumerate(views):
        ax = fig.add_subplot(grid[0, i])  # type: ignore[index]
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=extent, aspect="equal")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            for b in result.beads:
                ax.plot(b.x_um, b.y_um, "o", mfc="none", mec="y", ms=8)
                ax.annotate(
                    str(b.bead),
                    (b.x_um, b.y_um),
                    color="y",
                    fontsize=7,
                    xytext=(5, 5),
                    textcoords="offset points",
                )


def _profiles(fig: Figure, grid: object, result: PSFResult, optics: Optics | None) -> None:
    a = result.alignment
    bead = None if a is None or not result.beads else a.bead(result.beads[0].bead)
    ideal = optics.fwhm_um() if optics is not None else None
    for i, axis in enumerate(("x", "y", "z")):
        ax = fig.add_subplot(grid[1, i])  # type: ignore[index]
        ax.set_title(f"{axis} profile", fontsize=9)
        ax.set_xlabel(f"{axis} (µm)", fontsize=8)
        ax.tick_params(labelsize=7)
        if bead is None:
            continue
        p = getattr(bead, axis)
        fine = np.linspace(p.position_um.min(), p.position_um.max(), 300)
        ax.plot(p.position_um, p.values, "o", ms=3, label="data")
        label = f"fit, FWHM {p.fwhm_um:.3f} µm"
        if ideal is not None:
            label += f" (ideal {ideal[i]:.3f})"
        ax.plot(fine, p.model(fine), "-", lw=1.2, label=label)
        ax.legend(fontsize=7, loc="upper right")


def _average(fig: Figure, grid: object, result: PSFResult) -> None:
    a = result.alignment
    ax = fig.add_subplot(grid[0, 3])  # type: ignore[index]
    ax.set_title("average PSF: XY | XZ | YZ", fontsize=9)
    ax.axis("off")
    if a is None or a.average_psf is None:
        return
    avg = a.average_psf
    cz, cy, cx = (n // 2 for n in avg.shape)
    dz, px, _ = a.voxel_um
    # axial cuts resampled to the lateral pixel so the three keep their proportions
    stretch = max(round(dz / px), 1)
    xz = np.repeat(avg[:, cy, :], stretch, axis=0)
    yz = np.repeat(avg[:, :, cx].T, stretch, axis=1)
    height = max(avg.shape[1], xz.shape[0])
    panels = [avg[cz], xz, yz]
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 2))) for p in panels]
    ax.imshow(np.hstack(padded), cmap="magma", vmin=0, vmax=max(float(avg.max()), 1e-6))
    ax.text(0, height + 2, f"{a.n_averaged} beads registered and averaged", fontsize=7, va="top")


def _table(fig: Figure, grid: object, result: PSFResult) -> None:
    ax = fig.add_subplot(grid[2, :3])  # type: ignore[index]
    ax.axis("off")
    rows = [
        [
            str(b.bead),
            _f(b.x_um, 2),
            _f(b.y_um, 2),
            _f(b.z_um, 2),
            _f(b.fwhm_x_um),
            _f(b.fwhm_y_um),
            _f(b.fwhm_z_um),
            _f(b.signal_to_background, 1),
            _f(b.quality, 2),
        ]
        for b in result.beads[:12]
    ]
    s = result.summary
    rows.append(
        [
            "mean",
            "",
            "",
            "",
            _f(s.fwhm_x_um),
            _f(s.fwhm_y_um),
            _f(s.fwhm_z_um),
            _f(s.signal_to_background, 1),
            _f(s.quality, 2),
        ]
    )
    table = ax.table(cellText=rows, colLabels=_COLUMNS, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.1)
    note = f"{s.n_beads} beads fitted, {s.n_failed} failed"
    if len(result.beads) > 12:
        note += f"; the first 12 of {len(result.beads)} shown"
    ax.set_title(note, fontsize=8)


def _text(
    fig: Figure,
    grid: object,
    result: PSFResult,
    settings: Mapping[str, str],
    optics: Optics | None,
) -> None:
    ax = fig.add_subplot(grid[1:, 3])  # type: ignore[index]
    ax.axis("off")
    lines = ["Settings"] + [f"  {k}: {v}" for k, v in settings.items()]
    if optics is not None:
        fx, _, fz = optics.fwhm_um()
        lines += ["", f"Ideal FWHM: lateral {fx:.3f} µm, axial {fz:.3f} µm"]
    a = result.alignment
    if a is not None:
        tilt_y, tilt_x = a.focus_tilt
        lines += [
            "",
            "Alignment",
            f"  axial asymmetry {_f(a.axial_asymmetry, 2)}",
            f"  astigmatism {_f(a.astigmatism_um, 2)} µm",
            f"  drift with z x {_f(a.drift_x)}, y {_f(a.drift_y)} µm/µm",
            f"  focus tilt x {_f(tilt_x)}, y {_f(tilt_y)} µm/µm",
        ]
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace")
