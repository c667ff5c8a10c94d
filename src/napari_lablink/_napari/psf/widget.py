"""The "PSF acquisition" dock widget: glue between the acquisition core and napari.

Threads. Nothing here acquires or analyses: the engine (``acquisition.engine``) and the PSF
analyzer own those threads. The one blocking call the widget needs (connecting a backend, or
closing one it switched away from) is a background job of the widget's serial
:class:`~napari_lablink._napari.workers.Workers`, so they run in order; the core's callbacks
reach the Qt thread through the same ``Workers`` (``on_main``). The display is pulled, not
pushed: a ``QTimer`` at ~25 Hz redraws from the engine's newest data, so the camera's rate never
reaches the Qt thread.

Lifetime. Everything that must stop when the widget goes (the timer, every connection, the
jobs, the analyzer, the engine and so the backend) is owned by ``_Resources``: it is closed from
``closeEvent``, from the widget's ``destroyed`` signal (the viewer closing deletes its dock
widgets) and when the application quits.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.connections import Connections, close_with
from napari_lablink._napari.psf.backends import BackendFactory, default_backends
from napari_lablink._napari.psf.beads import BeadSource
from napari_lablink._napari.psf.display import BEADS_LAYER, LiveStackDisplay
from napari_lablink._napari.psf.form import AcquisitionForm
from napari_lablink._napari.psf.plots import AlignmentPlots
from napari_lablink._napari.psf.table import PSFTable
from napari_lablink._napari.workers import Workers
from napari_lablink.acquisition import (
    AcquisitionEngine,
    BackendInfo,
    EngineState,
    PSFAnalyzer,
    PSFResult,
)
from napari_lablink.acquisition.backends.optics import WidefieldPSF
from napari_lablink.acquisition.backends.simulated import SimulatedMicroscope
from napari_lablink.acquisition.export import write_psf_csv, write_stack
from napari_lablink.acquisition.pacing import PacedStacks
from napari_lablink.acquisition.report import write_psf_report

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["PSFWidget"]

log = logging.getLogger(__name__)
REDRAW_INTERVAL_MS = 40  # ~25 Hz: smooth to the eye, half of what software OpenGL manages
# The table and bead markers follow the PSF results at most this often: refilling them costs
# tens of ms, and at hundreds of frames/s results arrive faster than anyone can read them.
PSF_UPDATE_INTERVAL_S = 0.5
PSF_ANALYSIS_INTERVAL_S = 0.5  # per channel; see acquisition.pacing


class _Resources:
    """Jobs, engines and connections of one widget; closing it stops all of them."""

    def __init__(self) -> None:
        self.analyzer = PSFAnalyzer()
        self.workers = Workers(serial=True)
        self.links = Connections()
        self.engine_links = Connections()  # to the current engine: undone on a backend switch
        self.engine: AcquisitionEngine | None = None
        self.retired: set[AcquisitionEngine] = set()  # switched away from, closing in a job
        self.timer: QTimer | None = None
        self.closed = False

    def retire_engine(self) -> None:
        """Let go of the current engine; a job closes it before the next one connects."""
        old, self.engine = self.engine, None
        self.engine_links.clear()
        self.analyzer.detach()
        if old is not None:
            self.retired.add(old)
            self.workers.start(
                lambda _task: old.close(), finished=lambda: self.retired.discard(old)
            )

    def close(self, *_: object) -> None:
        """Stop everything and wait for every thread to end. Idempotent, any order of calls."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            with contextlib.suppress(RuntimeError):  # already deleted with the widget
                self.timer.stop()
        self.engine_links.close()
        self.links.close()
        self.workers.close(wait=True)
        self.analyzer.close()
        for engine in [*self.retired, self.engine]:
            if engine is not None:
                engine.close()


class PSFWidget(QWidget):
    """Acquire z-stacks of beads live, show them with XZ/YZ reslices and measure the PSF.

    ``backends`` maps a name to a factory (default: every backend importable here, the
    simulated microscope first); the first one is connected at once.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        *,
        backends: Mapping[str, BackendFactory] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._factories = dict(backends if backends is not None else default_backends())
        if not self._factories:
            raise ValueError("the PSF widget needs at least one backend")
        self._res = _Resources()
        self._display = LiveStackDisplay(viewer)
        self._results: dict[int, PSFResult] = {}
        self._channels: tuple[str, ...] = ()
        self._colormaps: dict[str, str] = {}
        self._selected_bead: int | None = None
        self._connecting = False
        self._start_when_connected: tuple[int | None] | None = None
        self._psf_pending = False
        self._last_old_run = -1  # results of this run and earlier ones are dropped
        self._marked_world: np.ndarray | None = None
        self._paced: PacedStacks | None = None
        self._psf_shown = 0.0
        self._redraws: list[float] = []

        self.form = AcquisitionForm(list(self._factories))
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.snap_button = QPushButton("Snap")
        self.status = QLabel("not connected")
        self.status.setWordWrap(True)
        self.readout = QLabel("-")
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.psf_channel = QComboBox()
        res = self._res
        self.bead_source = BeadSource(
            viewer, res.links.link, res.links.unlink, ignore=lambda layer: layer.name == BEADS_LAYER
        )
        self.table = PSFTable()
        self.plots = AlignmentPlots()
        self.zoom_button = QPushButton("Zoom to bead")
        self.zoom_button.setToolTip("centre the views on the selected bead, a few µm across")
        self.csv_button = QPushButton("Table (CSV)…")
        self.tiff_button = QPushButton("Stack (OME-TIFF/Zarr)…")
        self.report_button = QPushButton("Report (PNG/PDF)…")

        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.snap_button):
            buttons.addWidget(button)
        channel_row = QHBoxLayout()
        channel_row.addWidget(QLabel("PSF of channel"))
        channel_row.addWidget(self.psf_channel, 1)
        channel_row.addWidget(QLabel("beads"))
        channel_row.addWidget(self.bead_source, 1)
        channel_row.addWidget(self.zoom_button)
        exports = QHBoxLayout()
        exports.addWidget(QLabel("Export"))
        exports.addWidget(self.csv_button)
        exports.addWidget(self.tiff_button)
        exports.addWidget(self.report_button)
        # settings and the alignment plots share the space: a run shows the plots
        self.tabs = QTabWidget()
        self.tabs.addTab(self.form, "settings")
        self.tabs.addTab(self.plots, "alignment")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 3)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.readout)
        layout.addLayout(channel_row)
        layout.addWidget(self.table, 2)
        layout.addLayout(exports)

        link, on_main = res.links.link, res.workers.on_main
        link(self.start_button.clicked, self._on_start)
        link(self.stop_button.clicked, self.stop)
        link(self.snap_button.clicked, self._on_snap)
        link(self.csv_button.clicked, self._on_export_table)
        link(self.tiff_button.clicked, self._on_export_stack)
        link(self.report_button.clicked, self._on_export_report)
        link(self.zoom_button.clicked, self.zoom_to_bead)
        link(self.form.backend_changed, self.select_backend)
        link(self.form.scale_changed, self._on_scale_changed)
        link(self.table.bead_selected, self.select_bead)
        link(self.psf_channel.currentIndexChanged, self._on_psf_channel)
        link(self.bead_source.positions_changed, self._on_marked_beads)
        link(res.analyzer.result_ready, on_main(self._on_psf))
        link(res.analyzer.analysis_failed, on_main(self._on_psf_failed))
        app = QApplication.instance()
        if app is not None:
            link(app.aboutToQuit, res.close)
        close_with(self, res)  # not a link: it must outlive close() itself

        res.timer = QTimer(self)
        res.timer.setInterval(REDRAW_INTERVAL_MS)
        link(res.timer.timeout, self.refresh_display)
        res.timer.start()
        self.select_backend(self.form.backend.currentText())

    # -- public API -----------------------------------------------------------------------------

    @property
    def engine(self) -> AcquisitionEngine | None:
        return self._res.engine

    @property
    def analyzer(self) -> PSFAnalyzer:
        return self._res.analyzer

    @property
    def display(self) -> LiveStackDisplay:
        return self._display

    @property
    def redraw_timer(self) -> QTimer:
        """The display-rate timer (a benchmark stops it to drive redraws itself)."""
        assert self._res.timer is not None
        return self._res.timer

    @property
    def results(self) -> dict[int, PSFResult]:
        """Newest PSF result per channel index."""
        return dict(self._results)

    @property
    def selected_bead(self) -> int | None:
        return self._selected_bead

    @property
    def connecting(self) -> bool:
        return self._connecting

    def select_backend(self, name: str) -> None:
        """Switch to backend ``name``: the old engine is closed, the new one connected (both
        on the widget's worker thread); Start is enabled once it reports its camera."""
        res = self._res
        if res.closed:
            return
        if self.form.backend.currentText() != name:
            self.form.backend.setCurrentText(name)  # re-enters through backend_changed
            return
        res.retire_engine()
        self._display.remove_layers()
        self._clear_results()
        try:
            backend = self._factories[name](self.form.mm_settings())
        except Exception as exc:
            self._report(f"Could not create the {name} backend: {exc}")
            self._set_connecting(False, f"{name}: not available")
            return
        engine = AcquisitionEngine(backend)
        res.engine = engine
        self._paced = PacedStacks(engine, PSF_ANALYSIS_INTERVAL_S)
        link, on_main = res.engine_links.link, res.workers.on_main
        link(engine.stack_completed, self._paced.forward)
        link(engine.state_changed, on_main(lambda s: self._on_state(engine, str(s))))
        link(engine.run_failed, on_main(lambda m: self._on_run_failed(engine, m)))
        self._set_connecting(True, f"connecting to the {name} backend…")
        res.workers.start(
            lambda _task: engine.connect(),
            done=lambda info: self._on_connected(engine, info),
            failed=lambda exc: self._on_connect_failed(
                engine, f"Could not connect to the {engine.backend.name} backend: {exc}"
            ),
        )

    def start(self, n_stacks: int | None = None) -> bool:
        """Acquire stacks until stopped (or ``n_stacks``); False, with a notification, if the
        settings do not make a plan or no backend is ready."""
        engine = self._res.engine
        if engine is None or self._res.closed:
            self._report("No microscope backend is ready: choose one in the backend list.")
            return False
        if self._connecting:  # start once the backend has said which channels it has
            self._start_when_connected = (n_stacks,)
            return True
        try:
            plan = self.form.plan(n_stacks=n_stacks)
        except ValueError as exc:
            self._report(f"Cannot start: {exc}.")
            return False
        self._channels = plan.channels
        self._colormaps = dict(self.form.selected_channels())
        self._clear_results()
        self.psf_channel.blockSignals(True)
        self.psf_channel.clear()
        self.psf_channel.addItems(list(plan.channels))
        self.psf_channel.blockSignals(False)
        assert self._paced is not None  # made with the engine
        self._paced.reset()
        self._res.analyzer.attach(self._paced, pixel_size_um=self.form.pixel_size.value())
        self._apply_marked_beads()
        stats = engine.stats()  # run ids count up; the new run is made on the engine's thread
        self._last_old_run = -1 if stats is None else stats.run_id
        engine.start(plan)
        self._apply_optics()
        self.tabs.setCurrentWidget(self.plots)
        return True

    def snap(self) -> bool:
        """Acquire one stack per channel and stop."""
        return self.start(n_stacks=1)

    def stop(self) -> None:
        if self._res.engine is not None:
            self._res.engine.stop()

    def select_bead(self, index: int) -> None:
        """Reslice through bead ``index`` of the newest PSF result (of the table's channel)."""
        self._selected_bead = index
        result = self._results.get(self.psf_channel.currentIndex())
        if result is not None:
            for bead in result.beads:
                if bead.bead == index:
                    self._display.bead_yx_px = (bead.y_px, bead.x_px)
            self._display.show_beads(result, index)
            if result.alignment is not None:
                self.plots.show_bead(result.alignment, index)
        if self._res.engine is not None:
            self._display.redraw(self._res.engine, force=True)

    def zoom_to_bead(self, width_um: float = 4.0) -> bool:
        """Centre the canvas on the selected bead, ``width_um`` across, at its plane; False
        when no bead is selected yet."""
        result = self._results.get(self.psf_channel.currentIndex())
        bead = (
            None
            if result is None
            else next((b for b in result.beads if b.bead == self._selected_bead), None)
        )
        if bead is None:
            return False
        self._display.zoom_to(bead.z_px, bead.y_um, bead.x_um, width_um)
        return True

    def refresh_display(self) -> bool:
        """One timer tick: build layers for new stacks, redraw if frames arrived, readout."""
        engine = self._res.engine
        if engine is None or self._res.closed:
            return False
        geometry = engine.geometry
        if geometry is None or geometry.channels != self._channels:
            return False
        self._display.ensure_layers(engine, geometry, self._colormaps, self.form.pixel_size.value())
        drawn = self._display.redraw(engine)
        self._show_psf()
        if drawn:
            now = time.perf_counter()
            self._redraws = [t for t in self._redraws if now - t < 1.0] + [now]
        self._update_readout(engine)
        return drawn

    def export_table(self, path: str | Path) -> Path:
        """Write the newest PSF table of every channel to ``path`` as CSV."""
        if not self._results:
            raise ValueError("no PSF results yet: start an acquisition with beads in view")
        results = [self._results[c] for c in sorted(self._results)]
        return write_psf_csv(results, path, self._channels)

    def export_stack(self, path: str | Path) -> Path:
        """Write the newest complete stack of every channel to ``path``: OME-TIFF, or OME-Zarr
        for a ``.zarr`` path."""
        engine = self._res.engine
        geometry = None if engine is None else engine.geometry
        if engine is None or geometry is None:
            raise ValueError("no stack yet: start an acquisition first")
        stacks = []
        for c in range(len(geometry.channels)):
            with engine.lease_newest(c) as view:
                if view is None:
                    raise ValueError("no complete stack yet: wait for the first stack to finish")
                stacks.append(np.array(view.data))
        return write_stack(
            stacks,
            path,
            channels=geometry.channels,
            pixel_size_um=self.form.pixel_size.value(),
            z_step_um=geometry.z_step_um,
        )

    def export_report(self, path: str | Path) -> Path:
        """A PSF report of the table's channel (PNG, or PDF for a ``.pdf`` path): views,
        profiles with fits, the average PSF, the table, read-outs and settings."""
        channel = self.psf_channel.currentIndex()
        result = self._results.get(channel)
        engine = self._res.engine
        if result is None or engine is None:
            raise ValueError("no PSF results yet: start an acquisition with beads in view")
        with engine.lease_newest(channel) as view:
            if view is None:
                raise ValueError("no complete stack yet: wait for the first stack to finish")
            stack = np.array(view.data)
        optics = self.plots.optics()
        settings = {
            "backend": engine.backend.name,
            "channel": self._channels[channel] if channel < len(self._channels) else "?",
            "exposure": f"{self.form.exposure.value():g} ms",
            "z range": f"{self.form.z_start.value():g} to {self.form.z_end.value():g} µm, "
            f"{self.form.slices.value()} planes",
            "pixel size": f"{self.form.pixel_size.value():g} µm",
        }
        if optics is not None:
            settings["objective"] = (
                f"NA {optics.na:g}, λ {optics.wavelength_um:g} µm, n {optics.immersion_index:g}"
            )
        return write_psf_report(path, result, stack, settings=settings, optics=optics)

    def shutdown(self) -> None:
        """Stop acquisition and every thread of this widget (also done on close)."""
        self._res.close()

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)

    # -- slots ----------------------------------------------------------------------------------

    def _on_connected(self, engine: AcquisitionEngine, info: BackendInfo) -> None:
        if engine is not self._res.engine:
            return  # a backend switched away from meanwhile
        self.form.apply_info(info)
        h, w = info.frame_shape
        px = f"{info.pixel_size_um:g} µm pixels" if info.pixel_size_um else "pixel size unknown"
        self._set_connecting(False, f"{info.name}: {w} x {h} {info.dtype}, {px}")
        self._start_pending()

    def _on_connect_failed(self, engine: AcquisitionEngine, message: str) -> None:
        if engine is not self._res.engine:
            return
        self._report(message)
        self._set_connecting(False, message)
        self._start_pending()  # the engine connects again and reports what fails

    def _start_pending(self) -> None:
        pending, self._start_when_connected = self._start_when_connected, None
        if pending is not None:
            self.start(*pending)

    def _on_state(self, engine: AcquisitionEngine, state: str) -> None:
        if engine is not self._res.engine:
            return
        running = state in (EngineState.STARTING, EngineState.RUNNING)
        self.form.set_running(running or state == EngineState.STOPPING)
        self.stop_button.setEnabled(running)
        self.status.setText(f"{engine.backend.name}: {state}")

    def _on_run_failed(self, engine: AcquisitionEngine, message: str) -> None:
        if engine is self._res.engine:
            self._report(message)

    def _on_psf(self, result: PSFResult) -> None:
        """Keep the newest result; the timer shows it (newest wins here too). A result of a
        run before the current one (still being analysed when it restarted) is dropped."""
        if 0 <= result.run_id <= self._last_old_run:
            return
        self._results[result.channel] = result
        if result.channel == self.psf_channel.currentIndex():
            self._psf_pending = True

    def _show_psf(self, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and (not self._psf_pending or now - self._psf_shown < PSF_UPDATE_INTERVAL_S):
            return
        self._psf_pending, self._psf_shown = False, now
        result = self._results.get(self.psf_channel.currentIndex())
        if result is None:
            return
        self._follow_selection(result)
        self.table.show_result(result, self._selected_bead)
        self._display.show_beads(result, self._selected_bead)
        self.plots.add_result(result, self._selected_bead)

    def _clear_results(self) -> None:
        """A new run or backend: nothing of the previous one stays on screen."""
        self._results.clear()
        self._psf_pending = False
        self._last_old_run = -1  # another engine counts its runs afresh
        self._selected_bead = None
        self._display.bead_yx_px = None
        self._display.clear_beads()
        self.table.clear_rows()
        self.plots.clear()

    def _apply_optics(self) -> None:
        """The simulated microscope knows its objective: the reference lines follow it."""
        engine = self._res.engine
        index = self.psf_channel.currentIndex()
        if engine is None or not 0 <= index < len(self._channels):
            return
        backend = engine.backend
        if isinstance(backend, SimulatedMicroscope):
            psf = backend.psf_for(self._channels[index])
            if isinstance(psf, WidefieldPSF):
                self.plots.set_optics(psf.na, psf.wavelength_um, psf.immersion_index)

    def _follow_selection(self, result: PSFResult) -> None:
        """Keep the bead the user looks at selected even if bead numbers change between stacks:
        pick the fitted bead nearest to the previous selection (the brightest at first)."""
        if not result.beads:
            return
        previous = self._display.bead_yx_px
        if previous is None or self._selected_bead is None:
            bead = result.beads[0]
        else:
            y, x = previous
            bead = min(result.beads, key=lambda b: (b.y_px - y) ** 2 + (b.x_px - x) ** 2)
        self._selected_bead = bead.bead
        self._display.bead_yx_px = (bead.y_px, bead.x_px)

    def _on_psf_failed(self, message: str) -> None:
        show_warning(message)

    def _on_marked_beads(self, world: np.ndarray | None) -> None:
        self._marked_world = world
        self._apply_marked_beads()

    def _apply_marked_beads(self) -> None:
        """World micrometres -> stack pixels, with the scale of the plan in the form."""
        world = self._marked_world
        if world is None or not len(world):
            self._res.analyzer.set_positions(None)  # nothing marked (yet): find beads
            return
        world = world[:, -3:]  # the stack's (z, y, x); a 2-D layer gives (y, x)
        px = self.form.pixel_size.value()
        dz = abs(self.form.z_step.value()) or 1.0
        scale = np.array([dz, px, px])[-world.shape[1] :]
        self._res.analyzer.set_positions(world / scale)

    def _on_psf_channel(self, index: int) -> None:
        self.plots.clear()
        self._apply_optics()
        self._show_psf(force=True)

    def _on_scale_changed(self) -> None:
        engine = self._res.engine
        running = engine is not None and engine.state in (EngineState.RUNNING, EngineState.STARTING)
        if running and self._paced is not None:
            self._res.analyzer.attach(self._paced, pixel_size_um=self.form.pixel_size.value())

    def _on_start(self) -> None:
        self.start()

    def _on_snap(self) -> None:
        self.snap()

    def _on_export_table(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export PSF table", "psf.csv", "CSV (*.csv)")
        if path:
            self._export(self.export_table, path)

    def _on_export_stack(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export stack",
            "psf_stack.ome.tif",
            "OME-TIFF (*.ome.tif *.ome.tiff);;OME-Zarr (*.ome.zarr)",
        )
        if path:
            self._export(self.export_stack, path)

    def _on_export_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export PSF report", "psf_report.png", "PNG (*.png);;PDF (*.pdf)"
        )
        if path:
            self._export(self.export_report, path)

    def _export(self, fn: Callable[[str], Path], path: str) -> None:
        try:
            written = fn(path)
        except (ValueError, OSError) as exc:
            self._report(f"Export to {path} failed: {exc}")
        else:
            show_info(f"Saved {written}")

    # -- helpers --------------------------------------------------------------------------------

    def _set_connecting(self, connecting: bool, text: str) -> None:
        self._connecting = connecting
        self.start_button.setEnabled(not connecting)
        self.snap_button.setEnabled(not connecting)
        self.stop_button.setEnabled(False)
        self.status.setText(text)

    def _report(self, message: str) -> None:
        """A failure the user can act on: a napari notification, never a traceback."""
        log.warning("%s", message)
        show_error(message)

    def _update_readout(self, engine: AcquisitionEngine) -> None:
        stats = engine.stats()
        if stats is None:
            return
        parts = [
            f"{stats.frames_per_second:.0f} frames/s",
            f"{stats.frames_dropped} dropped",
            f"{stats.stacks_completed} stacks",
            f"latency {stats.latency_mean_ms:.1f} ms",
            f"display {len(self._redraws)} Hz",
        ]
        result = self._results.get(self.psf_channel.currentIndex())
        if result is not None:
            parts.append(f"PSF fit {result.analysis_s * 1e3:.0f} ms")
        self.readout.setText(" · ".join(parts))
