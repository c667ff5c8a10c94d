"""Run statistics, updated on the acquisition thread for a few hundred nanoseconds per frame.

Counters are plain ints (atomic under the GIL); rates and latencies come from small ring
buffers, so a snapshot from another thread is cheap and never blocks the writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

_RING = 1024  # power of two


@dataclass(frozen=True)
class AcquisitionStats:
    """A snapshot for the widget's readout.

    ``frames_per_second`` is over the most recent frames (up to 1024, at most the last 2 s);
    ``frames_dropped`` counts frames the camera skipped (gaps in its frame numbers);
    latencies are from the frame leaving the camera to its copy being in the stack buffer.
    """

    run_id: int
    running: bool
    elapsed_s: float
    frames: int
    frames_dropped: int
    frames_late: int
    stacks_completed: int
    frames_per_second: float
    mean_frames_per_second: float
    stacks_per_second: float
    latency_mean_ms: float
    latency_p95_ms: float
    latency_max_ms: float


class RunStats:
    """Mutable statistics of one run; the engine's ``stats()`` turns it into a snapshot."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.t_start = time.perf_counter()
        self.t_end: float | None = None
        self.frames = 0
        self.frames_dropped = 0
        self.frames_late = 0
        self.stacks_completed = 0
        self._next_frame_number = 0
        self._arrivals = np.zeros(_RING)
        self._latencies = np.zeros(_RING)
        self._stack_times = np.zeros(64)

    def frame(self, frame_number: int, t_camera: float, t_written: float) -> None:
        gap = frame_number - self._next_frame_number
        if gap > 0:
            self.frames_dropped += gap
        if frame_number >= self._next_frame_number:
            self._next_frame_number = frame_number + 1
        i = self.frames & (_RING - 1)
        self._arrivals[i] = t_written
        self._latencies[i] = t_written - t_camera
        self.frames += 1

    def stack(self, t: float) -> None:
        self._stack_times[self.stacks_completed % len(self._stack_times)] = t
        self.stacks_completed += 1

    def end(self) -> None:
        if self.t_end is None:
            self.t_end = time.perf_counter()

    def snapshot(self) -> AcquisitionStats:
        now = time.perf_counter() if self.t_end is None else self.t_end
        n = min(self.frames, _RING)
        fps = lat_mean = lat_p95 = lat_max = 0.0
        if n:
            arrivals = self._arrivals[:n]
            recent = arrivals[arrivals >= now - 2.0]
            if len(recent) >= 2 and now - recent.max() < 1.0:
                fps = (len(recent) - 1) / max(recent.max() - recent.min(), 1e-9)
            lat = self._latencies[:n] * 1e3
            lat_mean, lat_p95, lat_max = (
                float(lat.mean()),
                float(np.percentile(lat, 95)),
                float(lat.max()),
            )
        m = min(self.stacks_completed, len(self._stack_times))
        stacks_ps = 0.0
        if m >= 2:
            times = self._stack_times[:m]
            stacks_ps = (m - 1) / max(times.max() - times.min(), 1e-9)
        elapsed = now - self.t_start
        return AcquisitionStats(
            run_id=self.run_id,
            running=self.t_end is None,
            elapsed_s=elapsed,
            frames=self.frames,
            frames_dropped=self.frames_dropped,
            frames_late=self.frames_late,
            stacks_completed=self.stacks_completed,
            frames_per_second=fps,
            mean_frames_per_second=self.frames / elapsed if elapsed > 0 else 0.0,
            stacks_per_second=stacks_ps,
            latency_mean_ms=lat_mean,
            latency_p95_ms=lat_p95,
            latency_max_ms=lat_max,
        )
