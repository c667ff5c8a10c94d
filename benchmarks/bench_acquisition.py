"""Acquisition core: engine throughput and PSF analysis, each against the seed's way of doing it.

Engine. One simulated camera (512 x 512 uint16 with noise, 41-plane stacks) feeds both sides
from the same camera thread:

- plugin: ``AcquisitionEngine``, which copies each frame straight into a preallocated stack
  slot (and the live stack) on the camera thread;
- baseline: the seed notebook's approach: every frame is put on a ``queue.Queue`` (as a new
  array, as pycromanager hands over) and another thread drains the queue into a stack.

Sustained rate: the camera is paced at rising frame rates (its ring buffer holds 64 frames);
the highest rate at which every frame reached the stack (no drops) with bounded memory (the
seed's queue not growing by a stack or more) is reported. Free-running (the camera as fast as
the consumer lets it), the frame-to-stack latency (95th percentile) and memory growth. The
engine does both of its copies (stack slot and live stack) on the camera thread; the seed's
pipeline splits its two copies over two threads, which can raise its free-running rate on an
idle machine at the cost of latency and of memory that grows as soon as the drain falls behind.

PSF. A 41 x 256 x 256 stack with 10 beads of known PSF: ``analyze_stack`` (bead finding and
fits) against a full 3-D Gaussian ``curve_fit`` per bead, as napari-psf-analysis does it,
given the beads' positions. Both report their worst FWHM error against the ground truth.

``python benchmarks/bench_acquisition.py [--seconds S]``
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from pathlib import Path

import numpy as np

try:
    from ._bench import bench
except ImportError:
    from _bench import bench

from napari_lablink.acquisition import (
    AcquisitionEngine,
    FrameInfo,
    PSFOptions,
    SimulatedMicroscope,
    StackPlan,
    analyze_stack,
)
from napari_lablink.acquisition.backends.simulated import FWHM_PER_SIGMA

SHAPE = (512, 512)
PLAN = StackPlan(0.0, 10.0, 41)
RATES = (1000, 2000, 3000, 4000, 5000, 6000, 8000)
BOUNDED_MB = 16.0


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 1024**2


# -- engine ------------------------------------------------------------------------------------


def engine_run(seconds: float, frame_rate_hz: float | None) -> dict[str, float]:
    sim = SimulatedMicroscope(frame_shape=SHAPE, n_beads=10, frame_rate_hz=frame_rate_hz)
    with AcquisitionEngine(sim) as engine:
        engine.start(PLAN)
        engine.wait_for_stacks(3, timeout=30)  # warm: planes rendered, buffers touched
        before, mem0, t0 = engine.stats(), rss_mb(), time.perf_counter()
        time.sleep(seconds)
        after, mem1, t1 = engine.stats(), rss_mb(), time.perf_counter()
        engine.stop()
        engine.wait(30)
    frames = after.frames - before.frames
    dropped = after.frames_dropped - before.frames_dropped
    return {
        "fps": frames / (t1 - t0),
        "latency_p95_ms": after.latency_p95_ms,
        "memory_mb": mem1 - mem0,
        "dropped": dropped,
        "bounded": mem1 - mem0 < BOUNDED_MB,
    }


class SeedQueueSink:
    """The seed notebook's pipeline: camera thread -> queue.Queue -> drain thread -> stack."""

    def __init__(self, plan: StackPlan) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.stack = np.zeros((plan.n_slices, *SHAPE), np.uint16)
        self.n_slices = plan.n_slices
        self.placed = 0
        self.expected_next = 0
        self.dropped = 0
        self.latencies: list[float] = []
        self.running = True
        self.max_backlog = 0
        self.done = threading.Event()
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def frame(self, image: np.ndarray, info: FrameInfo) -> None:
        if info.frame_number > self.expected_next:
            self.dropped += info.frame_number - self.expected_next
        self.expected_next = info.frame_number + 1
        # place_data(): [channel, z, np.ravel(image)], z = frame count modulo slices
        self.queue.put([0, info.frame_number % self.n_slices, np.ravel(image).copy(), info])
        self.max_backlog = max(self.max_backlog, self.queue.qsize())

    def finished(self, error: BaseException | None = None) -> None:
        self.done.set()

    def _drain(self) -> None:
        while self.running:
            try:
                _, z, pixels, info = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            # display_napari(): reshape, write into the stack
            self.stack[z] = np.reshape(pixels, SHAPE)
            self.latencies.append(time.perf_counter() - info.timestamp)
            self.placed += 1


def seed_run(seconds: float, frame_rate_hz: float | None) -> dict[str, float]:
    sim = SimulatedMicroscope(frame_shape=SHAPE, n_beads=10, frame_rate_hz=frame_rate_hz)
    sink = SeedQueueSink(PLAN)
    sim.connect()
    sim.start(PLAN, sink)
    while sink.placed < 3 * PLAN.n_slices:
        time.sleep(0.01)
    placed0, dropped0, mem0, t0 = sink.placed, sink.dropped, rss_mb(), time.perf_counter()
    n0 = len(sink.latencies)
    time.sleep(seconds)
    placed1, dropped1, mem1, t1 = sink.placed, sink.dropped, rss_mb(), time.perf_counter()
    backlog = sink.queue.qsize()
    latencies = sink.latencies[n0:]
    sim.stop()
    sink.running = False
    sink.drain.join()
    frames = placed1 - placed0
    dropped = dropped1 - dropped0
    return {
        "fps": frames / (t1 - t0),
        "latency_p95_ms": float(np.percentile(latencies, 95)) * 1e3 if latencies else 0.0,
        "memory_mb": mem1 - mem0,
        "dropped": dropped,
        "bounded": mem1 - mem0 < BOUNDED_MB and backlog < PLAN.n_slices,
        "backlog": sink.max_backlog,
    }


def sustained(run, seconds: float) -> float:
    """Highest paced rate delivered without drops and with bounded memory."""
    best = 0.0
    for rate in RATES:
        result = run(seconds, float(rate))
        ok = result["dropped"] == 0 and result["bounded"]
        print(
            f"#   {run.__name__} at {rate} frames/s: {result['fps']:.0f} into the stack, "
            f"{result['dropped']} dropped, memory {result['memory_mb']:+.1f} MB"
            + ("" if ok else " -> not sustained"),
            flush=True,
        )
        if not ok:
            break
        best = float(rate)
    return best


def bench_engine(seconds: float) -> None:
    plugin_rate, seed_rate = sustained(engine_run, seconds), sustained(seed_run, seconds)
    bench("engine_sustained_frames_per_s_512x512", plugin_rate, "frames/s", seed_rate)
    free, seed_free = engine_run(seconds, None), seed_run(seconds, None)
    print(
        f"# free-running: plugin {free['fps']:.0f} frames/s, seed {seed_free['fps']:.0f} "
        f"frames/s (its queue peaked at {seed_free['backlog']} frames)",
        flush=True,
    )
    bench("engine_latency_p95_512x512", free["latency_p95_ms"], "ms", seed_free["latency_p95_ms"])
    bench("engine_memory_growth_512x512", free["memory_mb"], "MB", seed_free["memory_mb"])


# -- PSF ---------------------------------------------------------------------------------------


def curve_fit_3d(stack: np.ndarray, centre: np.ndarray, half: tuple[int, int, int]) -> np.ndarray:
    """napari-psf-analysis style: a 3-D Gaussian fitted with curve_fit (numerical Jacobian)."""
    from scipy.optimize import curve_fit

    z, y, x = (round(float(c)) for c in centre)
    hz, hy, hx = half
    win = stack[
        max(z - hz, 0) : z + hz + 1, max(y - hy, 0) : y + hy + 1, max(x - hx, 0) : x + hx + 1
    ].astype(float)
    grid = np.indices(win.shape).reshape(3, -1).astype(float)

    def model(coords, a, z0, y0, x0, sz, sy, sx, b):
        zz, yy, xx = coords
        return (
            a
            * np.exp(-0.5 * (((zz - z0) / sz) ** 2 + ((yy - y0) / sy) ** 2 + ((xx - x0) / sx) ** 2))
            + b
        )

    b0 = float(np.median(win))
    p0 = [win.max() - b0, *(np.array(win.shape) / 2), 2.0, 1.5, 1.5, b0]
    params, _ = curve_fit(model, grid, win.ravel(), p0=p0, maxfev=20000)
    return np.abs(params[4:7])  # sigmas in samples (z, y, x)


def worst_error(fwhm_zyx: np.ndarray, truth: tuple[float, float, float]) -> float:
    return float(np.max(np.abs(fwhm_zyx / np.array(truth) - 1.0)))


def bench_psf(repeat: int) -> None:
    sim = SimulatedMicroscope(frame_shape=(256, 256), n_beads=10, seed=1)
    z = np.linspace(0.0, 10.0, 41)
    stack = sim.render_stack(z)
    truth = sim.ground_truth()
    truth_zyx = (truth.fwhm_z_um, truth.fwhm_y_um, truth.fwhm_x_um)
    step, px = z[1] - z[0], truth.pixel_size_um

    def plugin(method: str = "separable"):
        return analyze_stack(
            stack, pixel_size_um=px, z_positions_um=z, options=PSFOptions(method=method)
        )

    centres = np.stack(
        [
            truth.beads_zyx_um[:, 0] / step,
            truth.beads_zyx_um[:, 1] / px,
            truth.beads_zyx_um[:, 2] / px,
        ],
        axis=1,
    )

    def baseline() -> np.ndarray:
        return np.array([curve_fit_3d(stack, c, (8, 8, 8)) for c in centres])

    def median_ms(fn, n: int) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    plugin()  # warm imports and caches
    t_plugin = median_ms(plugin, repeat)
    t_3d = median_ms(lambda: plugin("gaussian3d"), repeat)
    t_base = median_ms(baseline, max(repeat // 4, 2))
    result, result_3d = plugin(), plugin("gaussian3d")
    scale = np.array([step, px, px]) * FWHM_PER_SIGMA
    base_fwhm = baseline() * scale
    err = max(
        worst_error(np.array([b.fwhm_z_um, b.fwhm_y_um, b.fwhm_x_um]), truth_zyx)
        for b in result.beads
    )
    err_3d = max(
        worst_error(np.array([b.fwhm_z_um, b.fwhm_y_um, b.fwhm_x_um]), truth_zyx)
        for b in result_3d.beads
    )
    err_base = max(worst_error(f, truth_zyx) for f in base_fwhm)
    mean_err = worst_error(
        np.array([result.summary.fwhm_z_um, result.summary.fwhm_y_um, result.summary.fwhm_x_um]),
        truth_zyx,
    )
    bench("psf_analysis_41x256x256_10beads", t_plugin, "ms", t_base)
    bench("psf_analysis_gaussian3d_41x256x256_10beads", t_3d, "ms", t_base)
    bench("psf_worst_bead_fwhm_error", err * 100, "%", err_base * 100)
    bench("psf_worst_bead_fwhm_error_gaussian3d", err_3d * 100, "%", err_base * 100)
    print(
        f"# PSF: {len(result.beads)}/{len(centres)} beads found and fitted "
        f"(separable, incl. bead finding) in {t_plugin:.1f} ms; mean FWHM error "
        f"{mean_err * 100:.2f}%, worst bead {err * 100:.2f}%; 3-D refinement {t_3d:.1f} ms, "
        f"worst bead {err_3d * 100:.2f}%; curve_fit 3-D per bead (positions given) "
        f"{t_base:.0f} ms, worst bead {err_base * 100:.2f}%",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per engine run")
    parser.add_argument("--repeat", type=int, default=15, help="PSF analysis repetitions")
    args = parser.parse_args()
    bench_engine(args.seconds)
    bench_psf(args.repeat)


if __name__ == "__main__":
    main()
