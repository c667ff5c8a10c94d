"""A simulated microscope: fluorescent beads imaged through a known 3-D PSF.

It exists so the demo, the tests and the benchmarks have a camera whose answer is known: bead
positions and the PSF's FWHM along x, y and z are ground truth, so the PSF analysis can be
checked against them. The DemoCamera of Micro-Manager does not image beads, so it cannot.

Speed is the other constraint (the engine benchmark wants >= 1000 frames/s at 512 x 512).
Measured here: drawing Poisson noise for a whole 512 x 512 frame costs ~4 ms, and numpy's
Poisson sampler ~100 ns per pixel even for the bead windows alone. So a frame is a view of a
precomputed background-noise pool at a random offset (no copy at all), with small windows
around the beads written in and put back afterwards; in those windows shot and read noise are
drawn on every frame from expected photon counts computed once per plane, as a Gaussian with
variance = mean where every count is above 50 photons (exact Poisson below). About 50 us per
frame. Background noise is therefore shifted-correlated between frames, which no PSF
measurement sees.

Two PSFs: ``PSFModel``, a separable Gaussian sampled at the pixel centres (so a Gaussian fit
recovers its sigma exactly; cheap, for speed tests), and ``WidefieldPSF`` (``optics``), real
objective optics integrated over each pixel, for PSF numbers that hold on a microscope.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from napari_lablink.acquisition.backends.optics import WidefieldPSF
from napari_lablink.acquisition.types import (
    BackendInfo,
    CameraError,
    FrameInfo,
    FrameSink,
    StackPlan,
    ZMode,
)

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_WINDOW_SIGMAS = 4.5  # beyond this a Gaussian is below 4e-5 of its peak: under the noise
_POOL_FRAMES = 3  # the background pool holds this many frames' worth of noise
_GAUSSIAN_LIMIT = 50.0  # photons; above this Poisson noise is drawn as a Gaussian


@dataclass(frozen=True)
class PSFModel:
    """A separable 3-D Gaussian PSF, described by its full widths at half maximum.

    ``asymmetry`` in (-1, 1) makes the axial profile lopsided (sigma above focus
    ``s * (1 + a)``, below ``s * (1 - a)``) while keeping its FWHM; ``tilt`` shifts the lateral
    centre along x by ``tilt`` micrometres per micrometre of defocus (a tilted PSF).
    """

    fwhm_x_um: float = 0.35
    fwhm_y_um: float = 0.35
    fwhm_z_um: float = 1.0
    asymmetry: float = 0.0
    tilt: float = 0.0

    def __post_init__(self) -> None:
        if min(self.fwhm_x_um, self.fwhm_y_um, self.fwhm_z_um) <= 0:
            raise ValueError("PSF widths must be positive")
        if not -1.0 < self.asymmetry < 1.0:
            raise ValueError(f"asymmetry must lie in (-1, 1), got {self.asymmetry}")

    @property
    def sigmas_um(self) -> tuple[float, float, float]:
        """(z, y, x) standard deviations."""
        return (
            self.fwhm_z_um / FWHM_PER_SIGMA,
            self.fwhm_y_um / FWHM_PER_SIGMA,
            self.fwhm_x_um / FWHM_PER_SIGMA,
        )

    def axial(self, defocus_um: np.ndarray | float) -> np.ndarray:
        """Relative intensity at a defocus (stage z minus bead z)."""
        sz = self.sigmas_um[0]
        d = np.asarray(defocus_um, dtype=np.float64)
        s = np.where(d >= 0, sz * (1.0 + self.asymmetry), sz * (1.0 - self.asymmetry))
        return np.exp(-0.5 * (d / s) ** 2)

    def fwhm_um(self, pixel_size_um: float) -> tuple[float, float, float]:
        """(x, y, z) widths: pixels are sampled at their centres, so the pixel size is moot."""
        return self.fwhm_x_um, self.fwhm_y_um, self.fwhm_z_um

    def window_radius_um(self) -> float:
        return _WINDOW_SIGMAS * max(self.sigmas_um[1:])

    def visible(self, defocus_um: np.ndarray) -> np.ndarray:
        return np.asarray(self.axial(defocus_um) > 1e-3)

    def render(
        self, defocus_um: float, dy_um: np.ndarray, dx_um: np.ndarray, pixel_size_um: float
    ) -> np.ndarray:
        """Relative intensity at pixels centred (dy, dx) from the bead (peak 1 in focus)."""
        _, sy, sx = self.sigmas_um
        gy = np.exp(-0.5 * (dy_um / sy) ** 2)
        gx = np.exp(-0.5 * ((dx_um - self.tilt * defocus_um) / sx) ** 2)
        values: np.ndarray = self.axial(defocus_um) * gy * gx
        return values


OpticalPSF = PSFModel | WidefieldPSF


@dataclass(frozen=True)
class GroundTruth:
    """What a perfect PSF measurement of one channel would report."""

    beads_zyx_um: np.ndarray
    amplitudes: np.ndarray
    fwhm_x_um: float
    fwhm_y_um: float
    fwhm_z_um: float
    background: float
    pixel_size_um: float
    bead_fwhm_xyz_um: np.ndarray  # (beads, 3): every bead is imaged through the same optics


@dataclass
class _Plane:
    """Expected photon counts in the bead windows of one plane, flattened for one draw."""

    windows: list[tuple[slice, slice]]
    expected: np.ndarray  # float64, all windows concatenated
    splits: list[int] = field(default_factory=list)


class SimulatedMicroscope:
    """Camera, z stage and bead sample in one object; implements the ``Backend`` protocol.

    ``frame_rate_hz=None`` runs as fast as the consumer takes frames; otherwise frames are due at
    fixed times and, like a camera ring buffer of ``ring_frames`` frames, frames the consumer
    is too late for are dropped (the frame counter jumps, so the engine counts them).
    ``fail_at_frame`` makes the camera fail when it reaches that frame number, to exercise the
    error path the way a real camera can (cable pulled, driver error).
    """

    name = "simulated"

    def __init__(
        self,
        *,
        frame_shape: tuple[int, int] = (512, 512),
        pixel_size_um: float = 0.1,
        psf: OpticalPSF | None = None,
        channel_psfs: dict[str, OpticalPSF] | None = None,
        beads_zyx_um: np.ndarray | None = None,
        n_beads: int = 10,
        bead_z_range_um: tuple[float, float] = (4.0, 6.0),
        amplitude: float = 2000.0,
        amplitude_spread: float = 0.2,
        bead_amplitudes: np.ndarray | None = None,
        background: float = 100.0,
        offset_adu: float = 100.0,
        read_noise: float = 2.0,
        bit_depth: int = 16,
        noise: bool = True,
        frame_rate_hz: float | None = None,
        ring_frames: int = 64,
        reference_exposure_ms: float = 10.0,
        fail_at_frame: int | None = None,
        seed: int = 0,
    ) -> None:
        if not 1 <= bit_depth <= 16:
            raise ValueError(f"bit_depth must be between 1 and 16, got {bit_depth}")
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.pixel_size_um = float(pixel_size_um)
        self.psf: OpticalPSF = psf or PSFModel()
        self.channel_psfs = dict(channel_psfs or {})
        self.amplitude_mean = float(amplitude)
        self.background = float(background)
        self.offset_adu = float(offset_adu)
        self.read_noise = float(read_noise)
        self.bit_depth = int(bit_depth)
        self.noise = bool(noise)
        self.frame_rate_hz = frame_rate_hz
        self.ring_frames = int(ring_frames)
        self.reference_exposure_ms = float(reference_exposure_ms)
        self.fail_at_frame = fail_at_frame
        self._rng = np.random.default_rng(seed)
        if beads_zyx_um is None:
            beads_zyx_um = self._random_beads(n_beads, bead_z_range_um)
        self.beads_zyx_um = np.asarray(beads_zyx_um, dtype=np.float64).reshape(-1, 3)
        n = len(self.beads_zyx_um)
        spread = self._rng.uniform(1 - amplitude_spread, 1 + amplitude_spread, n)
        self.amplitudes = self.amplitude_mean * spread
        if bead_amplitudes is not None:
            self.amplitudes = np.asarray(bead_amplitudes, dtype=np.float64).reshape(n)
        self.stage_z_um = 0.0
        self._pool = self._background_pool(1.0)
        self._pool_scale = 1.0
        self._planes: dict[tuple[str, float, float], _Plane] = {}
        self._pending_shape: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- ground truth -------------------------------------------------------------------------

    def psf_for(self, channel: str) -> OpticalPSF:
        return self.channel_psfs.get(channel, self.psf)

    def ground_truth(self, channel: str = "default") -> GroundTruth:
        """Bead positions (z: where each is sharpest), peak photons and the true FWHMs."""
        fx, fy, fz = self.psf_for(channel).fwhm_um(self.pixel_size_um)
        return GroundTruth(
            beads_zyx_um=self.beads_zyx_um.copy(),
            amplitudes=self.amplitudes.copy(),
            fwhm_x_um=fx,
            fwhm_y_um=fy,
            fwhm_z_um=fz,
            background=self.background + self.offset_adu,
            pixel_size_um=self.pixel_size_um,
            bead_fwhm_xyz_um=np.tile([fx, fy, fz], (len(self.beads_zyx_um), 1)),
        )

    # -- Backend protocol ---------------------------------------------------------------------

    def connect(self) -> BackendInfo:
        # realistic optics compute (and cache) their PSF table on first use, about a second:
        # here, on the connecting thread, rather than in the first stack's frames
        for psf in (self.psf, *self.channel_psfs.values()):
            psf.fwhm_um(self.pixel_size_um)
        return BackendInfo(
            name=self.name,
            frame_shape=self.frame_shape,
            dtype=np.dtype(np.uint16),
            bit_depth=self.bit_depth,
            pixel_size_um=self.pixel_size_um,
            channels=tuple(self.channel_psfs) or ("default",),
            details={"beads": str(len(self.beads_zyx_um)), "noise": str(self.noise)},
        )

    def start(self, plan: StackPlan, sink: FrameSink) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the simulated microscope is already running; stop it first")
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(plan, sink), name="lablink-sim-camera", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def close(self) -> None:
        self.stop()

    def set_frame_shape(self, shape: tuple[int, int]) -> None:
        """Change the camera ROI; a running camera switches at its next frame, as real ones do."""
        self._pending_shape = (int(shape[0]), int(shape[1]))
        if self._thread is None:
            self._apply_frame_shape()

    def _apply_frame_shape(self) -> None:
        if self._pending_shape is not None:
            self.frame_shape, self._pending_shape = self._pending_shape, None
            self._pool = self._background_pool(self._pool_scale)
            self._planes.clear()

    # -- rendering ----------------------------------------------------------------------------

    def render_frame(
        self, z_um: float, channel: str = "default", exposure_ms: float | None = None
    ) -> np.ndarray:
        """One camera frame (a new array) with the stage at ``z_um``."""
        return self._render_into(np.empty(self.frame_shape, np.uint16), z_um, channel, exposure_ms)

    def render_stack(
        self, z_positions_um: np.ndarray, channel: str = "default", exposure_ms: float | None = None
    ) -> np.ndarray:
        """A (z, y, x) stack, as the camera would see it plane by plane."""
        out = np.empty((len(z_positions_um), *self.frame_shape), np.uint16)
        for i, z in enumerate(z_positions_um):
            self._render_into(out[i], float(z), channel, exposure_ms)
        return out

    def _render_into(
        self, out: np.ndarray, z_um: float, channel: str, exposure_ms: float | None
    ) -> np.ndarray:
        with self._frame_in_pool(z_um, channel, exposure_ms) as frame:
            np.copyto(out, frame)
        return out

    @contextmanager
    def _frame_in_pool(
        self, z_um: float, channel: str, exposure_ms: float | None
    ) -> Iterator[np.ndarray]:
        """A frame drawn in place: a view of the noise pool with the bead windows written in.

        No full-frame copy (the most expensive step otherwise): the windows' pool pixels are
        saved first and put back when the block ends, so the frame is only valid inside it.
        """
        scale = 1.0 if exposure_ms is None else exposure_ms / self.reference_exposure_ms
        pool = self._pool_for(scale)
        h, w = self.frame_shape
        start = int(self._rng.integers(0, pool.size - h * w + 1)) if self.noise else 0
        frame = pool[start : start + h * w].reshape(h, w)
        plane = self._plane(channel, z_um, scale)
        saved = [frame[window].copy() for window in plane.windows]
        if plane.expected.size:
            counts = self._sample(plane.expected)
            for (rows, cols), part in zip(
                plane.windows, np.split(counts, plane.splits), strict=True
            ):
                frame[rows, cols] = part.reshape(rows.stop - rows.start, cols.stop - cols.start)
        try:
            yield frame
        finally:
            for window, pixels in zip(reversed(plane.windows), reversed(saved), strict=True):
                frame[window] = pixels

    def _sample(self, expected: np.ndarray) -> np.ndarray:
        """Photon counts -> ADU: Poisson shot noise, Gaussian read noise, offset, bit depth.

        Above ~50 photons everywhere, Poisson noise is drawn as its Gaussian limit (variance =
        mean): 5x cheaper than numpy's Poisson sampler, and indistinguishable after rounding.
        """
        if self.noise and expected.size and expected.min() >= _GAUSSIAN_LIMIT:
            values = self._rng.standard_normal(expected.shape)
            values *= np.sqrt(expected + self.read_noise**2)
            values += expected
        elif self.noise:
            values = self._rng.poisson(expected).astype(np.float64)
            values += self._rng.normal(0.0, self.read_noise, expected.shape)
        else:
            values = expected.copy()
        values += self.offset_adu
        np.rint(values, out=values)
        np.clip(values, 0, 2**self.bit_depth - 1, out=values)
        return values.astype(np.uint16)

    def _pool_for(self, scale: float) -> np.ndarray:
        if scale != self._pool_scale:
            self._pool = self._background_pool(scale)
            self._pool_scale = scale
        return self._pool

    def _background_pool(self, scale: float) -> np.ndarray:
        n = self.frame_shape[0] * self.frame_shape[1]
        size = n * _POOL_FRAMES if self.noise else n
        return self._sample(np.full(size, self.background * scale))

    def _plane(self, channel: str, z_um: float, scale: float) -> _Plane:
        key = (channel, round(z_um, 9), scale)
        plane = self._planes.get(key)
        if plane is None:
            if len(self._planes) > 4096:  # bounded memory when z positions keep changing
                self._planes.clear()
            plane = self._planes[key] = self._compute_plane(self.psf_for(channel), z_um, scale)
        return plane

    def _compute_plane(self, psf: OpticalPSF, z_um: float, scale: float) -> _Plane:
        px = self.pixel_size_um
        h, w = self.frame_shape
        r = int(np.ceil(psf.window_radius_um() / px))
        defocus = z_um - self.beads_zyx_um[:, 0]
        peak = self.amplitudes * scale
        # centres in pixel coordinates (pixel i covers [i - 0.5, i + 0.5))
        cy = self.beads_zyx_um[:, 1] / px
        cx = self.beads_zyx_um[:, 2] / px
        visible = np.flatnonzero(psf.visible(defocus))
        windows: list[tuple[slice, slice]] = []
        parts: list[np.ndarray] = []
        for b in visible:
            iy, ix = round(cy[b]), round(cx[b])
            r0, r1 = max(iy - r, 0), min(iy + r + 1, h)
            c0, c1 = max(ix - r, 0), min(ix + r + 1, w)
            if r0 >= r1 or c0 >= c1:
                continue
            rows = np.arange(r0, r1)[:, None]
            cols = np.arange(c0, c1)[None, :]
            window = np.full((r1 - r0, c1 - c0), self.background * scale)
            # every visible bead contributes to this window, so overlapping beads add up
            for j in visible:
                if abs(cy[j] - cy[b]) > 2 * r + 1 or abs(cx[j] - cx[b]) > 2 * r + 1:
                    continue
                dy, dx = (rows - cy[j]) * px, (cols - cx[j]) * px
                window += peak[j] * psf.render(float(defocus[j]), dy, dx, px)
            windows.append((slice(r0, r1), slice(c0, c1)))
            parts.append(window.reshape(-1))
        sizes = np.cumsum([p.size for p in parts])[:-1].tolist()
        expected = np.concatenate(parts) if parts else np.empty(0)
        return _Plane(windows=windows, expected=expected, splits=sizes)

    def _random_beads(self, n: int, z_range: tuple[float, float]) -> np.ndarray:
        """Positions at least 12 lateral FWHMs apart and 16 px from the edges."""
        h, w = self.frame_shape
        px = self.pixel_size_um
        margin = 16 * px
        min_dist = 12 * max(self.psf.fwhm_um(px)[:2])
        beads: list[tuple[float, float, float]] = []
        for _ in range(200 * max(n, 1)):
            if len(beads) == n:
                break
            y = self._rng.uniform(margin, h * px - margin)
            x = self._rng.uniform(margin, w * px - margin)
            if all((y - by) ** 2 + (x - bx) ** 2 >= min_dist**2 for _, by, bx in beads):
                beads.append((self._rng.uniform(*z_range), y, x))
        return np.array(beads, dtype=np.float64).reshape(-1, 3)

    # -- the camera thread --------------------------------------------------------------------

    def _run(self, plan: StackPlan, sink: FrameSink) -> None:
        error: BaseException | None = None
        try:
            self._acquire(plan, sink)
        except BaseException as exc:  # the sink decides what the user sees
            error = exc
        finally:
            sink.finished(error)

    def _acquire(self, plan: StackPlan, sink: FrameSink) -> None:
        z_positions = plan.z_positions_um
        n_z, n_c = plan.n_slices, plan.n_channels
        per_cycle = n_z * n_c
        total = None if plan.n_stacks is None else plan.n_stacks * per_cycle
        period = self._frame_period(plan)
        ring = self.ring_frames
        t0 = time.perf_counter()
        k = 0
        while not self._stop.is_set() and (total is None or k < total):
            due = t0 + k * period
            if period:
                wait = due - time.perf_counter()
                if wait > 0:
                    if self._stop.wait(wait):
                        break
                else:
                    # the consumer is late: frames older than the ring buffer are overwritten
                    behind = int(-wait / period)
                    if behind >= ring:
                        k += behind - ring + 1
                        continue
            if self.fail_at_frame is not None and k >= self.fail_at_frame:
                raise CameraError(
                    f"simulated camera failure at frame {k} (fail_at_frame={self.fail_at_frame})"
                )
            if self._pending_shape is not None:
                self._apply_frame_shape()
            c = (k // n_z) % n_c
            z_index = k % n_z
            self.stage_z_um = float(z_positions[z_index])
            with self._frame_in_pool(self.stage_z_um, plan.channels[c], plan.exposure_ms) as frame:
                stamp = due if period else time.perf_counter()  # read out: latency starts
                if plan.z_mode is ZMode.STAGE:
                    info = FrameInfo(
                        frame_number=k,
                        timestamp=stamp,
                        channel=c,
                        z_index=z_index,
                        stack_index=k // per_cycle,
                        z_um=self.stage_z_um,
                    )
                else:
                    info = FrameInfo(frame_number=k, timestamp=stamp)
                sink.frame(frame, info)
            k += 1

    def _frame_period(self, plan: StackPlan) -> float:
        period = 0.0 if self.frame_rate_hz is None else 1.0 / self.frame_rate_hz
        if plan.exposure_ms is not None and self.frame_rate_hz is not None:
            period = max(period, plan.exposure_ms / 1000.0)
        return period
