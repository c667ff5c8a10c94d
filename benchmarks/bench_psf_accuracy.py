"""PSF accuracy on realistic optics: the plugin against napari-psf-analysis, over a grid.

Bead stacks come from the simulated microscope's ``WidefieldPSF`` (psfmodels' vectorial model:
NA, immersion and sample index, depth below the coverslip; pixel integration, background,
Poisson and read noise), so the true FWHM along x, y and z through each bead's maximum is
known. The grid spans NA 0.8-1.45, pixels 0.065-0.2 um, z steps 0.1-0.5 um, depths 0-10 um
with an index mismatch, low and high signal and bead pairs 1.0, 1.4 and 2.0 um apart; every
bead sits at a random sub-pixel, sub-plane position.

- plugin: ``analyze_stack`` on the whole stack (finds the beads itself);
- baseline: napari-psf-analysis 1.2's per-bead fits (1-D z and 2-D yx Gaussians, its default
  2 x 2 x 6 um box), given the true bead positions as the points a user would click.

Per configuration and axis: the median |error| in % over the beads each found. Also the fit
time per bead, and per configuration the beads found / missed / spurious as comment lines.

``python benchmarks/bench_psf_accuracy.py [--seeds N] [NAME ...]``

napari-psf-analysis pins an older napari, so it is best kept out of the project's environment:
a venv with only ``pip install --no-deps napari-psf-analysis`` and a ``.pth`` file pointing at
the project environment's site-packages runs this script with both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from ._bench import bench
except ImportError:
    from _bench import bench

from napari_lablink.acquisition import WidefieldPSF, analyze_stack
from napari_lablink.acquisition.backends.bead_grid import BeadConfig, bead_sample

OIL = {"immersion_index": 1.515, "sample_index": 1.515}
OIL_INTO_WATER = {"immersion_index": 1.515, "sample_index": 1.33}
WATER = {"immersion_index": 1.33, "sample_index": 1.33}
AIR_INTO_WATER = {"immersion_index": 1.0, "sample_index": 1.33}
HIGH, LOW = 20000.0, 1000.0

GRID = [
    BeadConfig("na1.45_oil_px0.065_dz0.1_high", WidefieldPSF(1.45, **OIL), 0.065, 0.1, HIGH),
    BeadConfig("na1.45_oil_px0.065_dz0.1_low", WidefieldPSF(1.45, **OIL), 0.065, 0.1, LOW),
    BeadConfig("na1.4_oil_px0.1_dz0.2_high", WidefieldPSF(1.4, **OIL), 0.1, 0.2, HIGH),
    BeadConfig("na1.4_oil_px0.1_dz0.2_low", WidefieldPSF(1.4, **OIL), 0.1, 0.2, LOW),
    BeadConfig("na1.2_water_px0.1_dz0.25_high", WidefieldPSF(1.2, **WATER), 0.1, 0.25, HIGH),
    BeadConfig("na1.2_water_px0.1_dz0.25_low", WidefieldPSF(1.2, **WATER), 0.1, 0.25, LOW),
    BeadConfig("na1.0_water_px0.13_dz0.3_high", WidefieldPSF(1.0, **WATER), 0.13, 0.3, HIGH),
    BeadConfig("na0.8_water_px0.2_dz0.4_high", WidefieldPSF(0.8, **WATER), 0.2, 0.4, HIGH),
    BeadConfig("na0.8_water_px0.2_dz0.4_low", WidefieldPSF(0.8, **WATER), 0.2, 0.4, LOW),
    BeadConfig(
        "na0.8_air_depth5_px0.2_dz0.5_high",
        WidefieldPSF(0.8, depth_um=5.0, **AIR_INTO_WATER),
        0.2,
        0.5,
        HIGH,
    ),
    BeadConfig(
        "na1.45_oil_depth3_px0.1_dz0.2_high",
        WidefieldPSF(1.45, depth_um=3.0, **OIL_INTO_WATER),
        0.1,
        0.2,
        HIGH,
    ),
    BeadConfig(
        "na1.45_oil_depth10_px0.1_dz0.2_high",
        WidefieldPSF(1.45, depth_um=10.0, **OIL_INTO_WATER),
        0.1,
        0.2,
        HIGH,
    ),
    *(
        BeadConfig(
            f"na1.2_water_px0.1_dz0.2_pair{d}",
            WidefieldPSF(1.2, **WATER),
            0.1,
            0.2,
            HIGH,
            pair_um=d,
        )
        for d in (1.0, 1.4, 2.0)
    ),
]


def baseline_fwhms(stack: np.ndarray, points: np.ndarray, config: BeadConfig) -> np.ndarray:
    """napari-psf-analysis's FWHM x, y, z per bead (its 2-D yx and 1-D z fits), and seconds."""
    from napari_psf_analysis.psf_analysis.extract.BeadExtractor import BeadExtractor
    from napari_psf_analysis.psf_analysis.image import Calibrated3DImage
    from napari_psf_analysis.psf_analysis.psf import PSF

    spacing = (config.z_step_um, config.pixel_size_um, config.pixel_size_um)
    image = Calibrated3DImage(data=stack, spacing=spacing)
    # its default box, 2 x 2 x 6 um, shortened in z to fit the stack
    depth = min(6.0, 0.9 * (stack.shape[0] - 1) * config.z_step_um)
    beads = BeadExtractor(image, patch_size=(depth, 2.0, 2.0)).extract_beads(points)
    rows = []
    for bead in beads:
        start = time.perf_counter()
        psf = PSF(image=bead)
        try:
            psf.analyze()
        except Exception:  # a failed fit is skipped, as users ask of it
            continue
        elapsed = time.perf_counter() - start
        record = psf.get_record()
        centre = np.array(bead.offset) + np.array(bead.data.shape) / 2
        rows.append(
            (
                *(centre[1:] * config.pixel_size_um),
                record.yx_fit.x_fwhm,
                record.yx_fit.y_fwhm,
                record.z_fit.z_fwhm,
                elapsed,
            )
        )
    return np.array(rows).reshape(-1, 6)


def errors(found_yx_um: np.ndarray, fwhms: np.ndarray, truth, tolerance_um: float):
    """Relative errors (x, y, z) of the found beads matched to a true one; counts."""
    beads = truth.beads_zyx_um[:, 1:]
    errs, matched, spurious = [], set(), 0
    true = np.array([truth.fwhm_x_um, truth.fwhm_y_um, truth.fwhm_z_um])
    for yx, fwhm in zip(found_yx_um, fwhms, strict=True):
        distance = np.hypot(*(beads - yx).T)
        j = int(np.argmin(distance))
        if distance[j] > tolerance_um or j in matched:
            spurious += 1
            continue
        matched.add(j)
        errs.append(fwhm / true - 1)
    return np.array(errs).reshape(-1, 3), len(matched), spurious


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    plugin_ms: list[float] = []
    baseline_ms: list[float] = []
    for config in GRID:
        if args.names and not any(n in config.name for n in args.names):
            continue
        ours, theirs = [], []
        counts = np.zeros(4, dtype=int)  # found, missed, spurious, failed
        for seed in range(args.seeds):
            scope, z = bead_sample(config, seed)
            stack = scope.render_stack(z)
            truth = scope.ground_truth()
            result = analyze_stack(stack, pixel_size_um=config.pixel_size_um, z_positions_um=z)
            found = np.array([(b.y_um, b.x_um) for b in result.beads]).reshape(-1, 2)
            fwhm = np.array([(b.fwhm_x_um, b.fwhm_y_um, b.fwhm_z_um) for b in result.beads])
            e, n, spurious = errors(found, fwhm.reshape(-1, 3), truth, 0.5 * truth.fwhm_x_um)
            ours.append(e)
            counts += (n, len(truth.beads_zyx_um) - n, spurious, len(result.failures))
            if result.beads:
                plugin_ms.append(1000 * result.analysis_s / len(result.beads))
            planes = np.interp(truth.beads_zyx_um[:, 0], z, np.arange(len(z)))
            points = np.column_stack([planes, truth.beads_zyx_um[:, 1:] / config.pixel_size_um])
            rows = baseline_fwhms(stack, points, config)
            e, _, _ = errors(rows[:, :2], rows[:, 2:5], truth, 0.5 * truth.fwhm_x_um)
            theirs.append(e)
            baseline_ms.extend(1000 * rows[:, 5])
        mine, base = np.concatenate(ours), np.concatenate(theirs)
        print(
            f"# {config.name}: found {counts[0]}, missed {counts[1]}, spurious {counts[2]}, "
            f"failed fits {counts[3]}; napari-psf-analysis measured {len(base)}",
            flush=True,
        )
        for k, axis in enumerate("xyz"):
            value = 100 * float(np.median(np.abs(mine[:, k]))) if len(mine) else float("nan")
            ref = 100 * float(np.median(np.abs(base[:, k]))) if len(base) else float("nan")
            bench(f"psf_accuracy_{config.name}_{axis}", value, "%", ref)
    bench("psf_time_per_bead", float(np.median(plugin_ms)), "ms", float(np.median(baseline_ms)))


if __name__ == "__main__":
    main()
