"""The "PSF acquisition" dock widget in a real viewer (under Xvfb) on the simulated microscope.

Real parts throughout: the widget drives the real engine, analyzer and simulated camera; the
failing backend is pymmcore-plus given a configuration file that does not exist.
"""

from __future__ import annotations

import csv
import inspect
import threading

import numpy as np
import pytest
import tifffile
import zarr
from qtpy.QtCore import Qt

from napari_lablink._napari.psf.beads import AUTO
from napari_lablink._napari.psf.display import BEADS_LAYER, FRAMES_LAYER
from napari_lablink._napari.psf.widget import PSFWidget
from napari_lablink.acquisition import (
    AcquisitionEngine,
    EngineState,
    PSFModel,
    PymmcorePlusBackend,
    SimulatedMicroscope,
    StackPlan,
)
from napari_lablink.acquisition.pacing import PacedStacks
from napari_lablink.acquisition.psf import Optics

pytestmark = pytest.mark.viewer

PSFS = {
    "GFP": PSFModel(fwhm_x_um=0.35, fwhm_y_um=0.35, fwhm_z_um=1.0),
    "RFP": PSFModel(fwhm_x_um=0.45, fwhm_y_um=0.42, fwhm_z_um=1.4),
}
BEADS_UM = np.array([(5.0, 3.0, 3.2), (4.6, 9.4, 3.9), (5.3, 3.6, 9.1), (4.8, 9.0, 9.6)])
PIXEL_UM = 0.1
TIMEOUT_MS = 20_000


def simulated(fail_at_frame: int | None = None):
    def factory(settings) -> SimulatedMicroscope:
        return SimulatedMicroscope(
            frame_shape=(128, 128),
            pixel_size_um=PIXEL_UM,
            channel_psfs=PSFS,
            beads_zyx_um=BEADS_UM,
            frame_rate_hz=2000.0,
            ring_frames=100_000,  # a camera that never drops: counts below stay exact under load
            fail_at_frame=fail_at_frame,
        )

    return factory


def lablink_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("lablink")}


@pytest.fixture
def make_widget(make_napari_viewer, qtbot):
    """A viewer with the widget docked, connected and set to a quick 41-plane stack."""

    def make(backends=None, *, wait_connected: bool = True):
        viewer = make_napari_viewer()
        widget = PSFWidget(viewer, backends=backends or {"simulated": simulated()})
        viewer.window.add_dock_widget(widget, name="PSF acquisition")
        if wait_connected:
            qtbot.waitUntil(lambda: not widget.connecting, timeout=TIMEOUT_MS)
        widget.form.exposure.setValue(2.0)
        return viewer, widget

    return make


def test_napari_passes_the_viewer() -> None:
    """napari hands a dock widget the viewer only for a parameter annotated like this."""
    annotation = inspect.signature(PSFWidget.__init__).parameters["viewer"].annotation
    assert annotation == "napari.viewer.Viewer"


def test_stacks_reach_the_analyzer_at_a_readable_pace() -> None:
    """Every stack of a run is published; only those ``interval_s`` apart are analysed."""
    now = [0.0]
    engine = AcquisitionEngine(simulated()(None))
    paced = PacedStacks(engine, interval_s=1.0, clock=lambda: now[0])
    forwarded: list[tuple[int, int]] = []
    paced.stack_completed.connect(lambda view: forwarded.append((view.channel, view.version)))

    def tick(view) -> None:  # a clock advancing 0.4 s per completed stack of each channel
        paced.forward(view)
        if view.channel == 1:
            now[0] += 0.4

    engine.stack_completed.connect(tick)
    with engine:
        engine.start(StackPlan(z_end_um=10, n_slices=11, channels=("GFP", "RFP"), n_stacks=6))
        assert engine.wait(TIMEOUT_MS / 1000)
    # stacks at t = 0, 0.4, ..., 2.0 s: with 1 s between them, those at 0 and 1.2 s pass
    assert forwarded == [(0, 1), (1, 1), (0, 4), (1, 4)]
    paced.reset()
    paced.forward(engine.newest_stack(0))  # a new run's first stack always passes
    assert forwarded[-1] == (0, 6)
    assert paced.geometry is engine.geometry


def test_form_prefilled_from_the_backend(make_widget) -> None:
    _, widget = make_widget()
    form = widget.form
    assert form.pixel_size.value() == pytest.approx(PIXEL_UM)
    assert [name for name, _ in form.selected_channels()] == ["GFP", "RFP"]
    assert [cmap for _, cmap in form.selected_channels()] == ["green", "magenta"]
    assert form.crop_w.maximum() == 128
    plan = form.plan()
    assert plan.z_step_um == pytest.approx(0.25)
    assert plan.n_slices == 41 and plan.channels == ("GFP", "RFP")
    # z step and z range stay consistent in both directions
    form.z_step.setValue(0.5)
    assert form.z_end.value() == pytest.approx(20.0)
    form.slices.setValue(21)
    assert form.z_step.value() == pytest.approx(1.0)


def test_start_shows_layers_that_update_and_stop(make_widget, qtbot) -> None:
    viewer, widget = make_widget(wait_connected=False)
    # the backend connects on the worker thread; its answer waits for the event loop, so a
    # Start pressed now is kept until the backend has said which channels it has
    assert widget.connecting
    assert widget.start()
    names = ["GFP", "GFP XZ", "GFP YZ", "RFP", "RFP XZ", "RFP YZ", FRAMES_LAYER, BEADS_LAYER]
    qtbot.waitUntil(lambda: all(n in viewer.layers for n in names), timeout=TIMEOUT_MS)
    stack, xz, yz = viewer.layers["GFP"], viewer.layers["GFP XZ"], viewer.layers["GFP YZ"]
    engine = widget.engine
    assert tuple(stack.scale) == pytest.approx((0.25, PIXEL_UM, PIXEL_UM))
    assert tuple(xz.scale) == pytest.approx((0.25, PIXEL_UM))
    assert tuple(yz.scale) == pytest.approx((PIXEL_UM, 0.25))
    # XZ below the stack, YZ to its right, neither overlapping it
    assert xz.translate[0] > 128 * PIXEL_UM and xz.translate[1] == 0
    assert yz.translate[1] > 128 * PIXEL_UM and yz.translate[0] == 0
    assert xz.data.shape == (41, 128) and yz.data.shape == (128, 41)
    # the stack layer shows the engine's live buffer itself: nothing stack-sized is copied
    assert np.shares_memory(stack.data, engine.live_stack(0))
    assert stack.colormap.name == "green" and viewer.layers["RFP"].colormap.name == "magenta"

    before = np.array(xz.data)
    frames = engine.stats().frames
    qtbot.waitUntil(lambda: not np.array_equal(before, xz.data), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: "frames/s" in widget.readout.text(), timeout=TIMEOUT_MS)
    assert engine.stats().frames > frames
    assert "dropped" in widget.readout.text()

    qtbot.waitUntil(widget.stop_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(widget.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.state is EngineState.IDLE, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not widget.stop_button.isEnabled(), timeout=TIMEOUT_MS)
    stopped_at = engine.stats().frames
    qtbot.wait(200)
    assert engine.stats().frames == stopped_at
    # a restart reuses the same layers' buffers and carries on
    qtbot.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.stats().frames > 100, timeout=TIMEOUT_MS)
    assert viewer.layers["GFP"] is stack


def test_psf_table_matches_ground_truth(make_widget, qtbot) -> None:
    viewer, widget = make_widget()
    widget.start()
    qtbot.waitUntil(lambda: len(widget.results) == 2, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 5, timeout=TIMEOUT_MS)
    mean = widget.table.mean_row()
    assert mean["bead"] == "mean" and mean["beads"] == "4 ok, 0 failed"
    for column, truth in (("FWHM x", 0.35), ("FWHM y", 0.35), ("FWHM z", 1.0)):
        value = float(mean[column])
        assert value == pytest.approx(truth, rel=0.05), column
    # per-bead rows sit where the beads are
    xs = sorted(float(widget.table.item(r, 1).text()) for r in range(4))
    assert xs == pytest.approx(sorted(BEADS_UM[:, 2]), abs=0.1)
    # one marker per bead in XY, plus the selected bead in XZ and YZ
    assert len(viewer.layers[BEADS_LAYER].data) == 4 + 2

    widget.psf_channel.setCurrentIndex(1)  # RFP: a wider PSF
    mean = widget.table.mean_row()
    for column, truth in (("FWHM x", 0.45), ("FWHM y", 0.42), ("FWHM z", 1.4)):
        value = float(mean[column])
        assert value == pytest.approx(truth, rel=0.05), column


def test_reslices_follow_the_selected_bead(make_widget, qtbot) -> None:
    viewer, widget = make_widget()
    widget.start()
    qtbot.waitUntil(lambda: 0 in widget.results, timeout=TIMEOUT_MS)
    widget.stop()
    engine = widget.engine
    qtbot.waitUntil(lambda: engine.state is EngineState.IDLE, timeout=TIMEOUT_MS)
    live = engine.live_stack(0)
    xz, yz = viewer.layers["GFP XZ"], viewer.layers["GFP YZ"]
    beads = widget.results[0].beads
    peaks = set()
    for bead in beads:
        widget.select_bead(bead.bead)
        y, x = round(bead.y_px), round(bead.x_px)
        assert widget.selected_bead == bead.bead
        np.testing.assert_array_equal(xz.data, live[:, y, :])
        np.testing.assert_array_equal(yz.data, live[:, :, x].T)
        # the cut goes through this bead: its brightest pixel is at the bead's x and z
        z_peak, x_peak = np.unravel_index(np.argmax(xz.data), xz.data.shape)
        assert abs(x_peak - bead.x_px) <= 1.5 and abs(z_peak - bead.z_px) <= 1.5
        marks = viewer.layers[BEADS_LAYER].data
        assert len(marks) == len(beads) + 2
        peaks.add((y, x))
    assert len(peaks) == len(beads) == 4

    # choosing a row in the table selects that bead too
    row = next(r for r in range(4) if int(widget.table.item(r, 0).text()) == beads[2].bead)
    widget.table.selectRow(row)
    assert widget.selected_bead == beads[2].bead
    np.testing.assert_array_equal(xz.data, live[:, round(beads[2].y_px), :])


def test_marked_beads_replace_detection(make_widget, qtbot) -> None:
    viewer, widget = make_widget()
    source = widget.bead_source
    # two of the four beads, clicked a little off-centre, in a 2-D Points layer (world µm)
    marks = viewer.add_points(BEADS_UM[[0, 2], 1:] + 0.15, name="my beads")
    source.setCurrentText("my beads")
    assert source.currentText() == "my beads"
    widget.start()

    def beads_x() -> list[float]:
        result = widget.results.get(0)
        return [] if result is None else sorted(b.x_um for b in result.beads)

    qtbot.waitUntil(lambda: len(beads_x()) == 2, timeout=TIMEOUT_MS)
    assert beads_x() == pytest.approx(sorted(BEADS_UM[[0, 2], 2]), abs=0.1)
    assert source.findText(BEADS_LAYER) == -1  # the widget's own markers are not a choice

    marks.data = np.vstack([marks.data, BEADS_UM[1, 1:]])  # one more point: one more bead
    qtbot.waitUntil(lambda: len(beads_x()) == 3, timeout=TIMEOUT_MS)
    viewer.layers.remove(marks)  # its layer gone: back to finding beads
    assert source.currentText() == AUTO
    qtbot.waitUntil(lambda: len(beads_x()) == 4, timeout=TIMEOUT_MS)


def test_snap_and_exports(make_widget, qtbot, tmp_path) -> None:
    _, widget = make_widget()
    with pytest.raises(ValueError, match="no PSF results yet"):
        widget.export_table(tmp_path / "early.csv")
    qtbot.mouseClick(widget.snap_button, Qt.MouseButton.LeftButton)
    engine = widget.engine
    qtbot.waitUntil(lambda: len(widget.results) == 2, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: engine.state is EngineState.IDLE, timeout=TIMEOUT_MS)
    assert engine.stats().stacks_completed == 2  # one stack per channel, then it stopped

    rows = list(csv.DictReader(widget.export_table(tmp_path / "psf.csv").open()))
    assert [r["channel"] for r in rows] == ["GFP"] * 5 + ["RFP"] * 5
    assert [r["bead"] for r in rows if r["channel"] == "GFP"][-1] == "mean"
    gfp_mean = rows[4]
    assert float(gfp_mean["fwhm_z_um"]) == pytest.approx(1.0, rel=0.05)
    assert all(r["status"] == "ok" for r in rows if r["bead"] != "mean")

    path = widget.export_stack(tmp_path / "stack.ome.tif")
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        ome = tif.ome_metadata
    assert data.shape == (2, 41, 128, 128)
    for c in range(2):
        np.testing.assert_array_equal(data[c], engine.newest_stack(c).data)
    assert 'PhysicalSizeZ="0.25"' in ome and 'PhysicalSizeX="0.1"' in ome
    assert 'Name="GFP"' in ome and 'Name="RFP"' in ome

    report = widget.export_report(tmp_path / "psf_report.png")
    assert report.read_bytes()[:4] == b"\x89PNG" and report.stat().st_size > 50_000
    assert widget.export_report(tmp_path / "psf_report.pdf").read_bytes()[:4] == b"%PDF"

    group = zarr.open_group(str(widget.export_stack(tmp_path / "stack.ome.zarr")), mode="r")
    (image,) = group.attrs["multiscales"]
    assert [a["name"] for a in image["axes"]] == ["c", "z", "y", "x"]
    scale = image["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 0.25, 0.1, 0.1])
    assert [c["label"] for c in group.attrs["omero"]["channels"]] == ["GFP", "RFP"]
    np.testing.assert_array_equal(group["0"][:], data)


def test_failures_are_notifications(make_widget, qtbot, notifications, tmp_path) -> None:
    missing = tmp_path / "missing.cfg"
    backends = {
        "pymmcore-plus": lambda s: PymmcorePlusBackend(config_file=missing),
        "simulated": simulated(fail_at_frame=100),
    }
    _, widget = make_widget(backends)
    qtbot.waitUntil(
        lambda: any("Could not connect" in n for n in notifications), timeout=TIMEOUT_MS
    )
    message = next(n for n in notifications if "Could not connect" in n)
    assert "pymmcore-plus" in message and str(missing) in message
    # Start still tries (the user may have fixed the file); the failure is a notification too
    assert widget.start()
    qtbot.waitUntil(lambda: any("Could not start" in n for n in notifications), timeout=TIMEOUT_MS)

    # a camera failing mid-run ends the run with a message; what was acquired stays
    widget.select_backend("simulated")
    qtbot.waitUntil(lambda: not widget.connecting, timeout=TIMEOUT_MS)
    widget.start()
    qtbot.waitUntil(
        lambda: any("simulated camera failure" in n for n in notifications), timeout=TIMEOUT_MS
    )
    engine = widget.engine
    qtbot.waitUntil(lambda: engine.state is EngineState.IDLE, timeout=TIMEOUT_MS)
    assert engine.stats().frames == 100
    assert engine.stats().stacks_completed == 2  # 100 frames: one full stack per channel
    failure = next(n for n in notifications if "simulated camera failure" in n)
    assert "Kept: 2 complete stack(s)" in failure

    # settings that make no plan: a notification, not an exception
    for row in range(widget.form.channels.rowCount()):
        widget.form.channels.cellWidget(row, 0).setChecked(False)
    assert not widget.start()
    assert "tick at least one channel" in notifications[-1]


def test_closing_the_widget_during_acquisition_stops_every_thread(make_widget, qtbot) -> None:
    before = lablink_threads()
    _, widget = make_widget()
    widget.start()
    engine = widget.engine
    qtbot.waitUntil(lambda: engine.state is EngineState.RUNNING, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: engine.stats().stacks_completed >= 2, timeout=TIMEOUT_MS)
    assert lablink_threads() - before  # camera, control, analysis and widget worker
    widget.close()
    assert engine.state is EngineState.CLOSED
    assert not (lablink_threads() - before)
    widget.close()  # a second close is harmless


def test_closing_the_viewer_during_acquisition_stops_every_thread(make_widget, qtbot) -> None:
    before = lablink_threads()
    viewer, widget = make_widget()
    widget.start()
    engine = widget.engine
    qtbot.waitUntil(
        lambda: engine.stats() is not None and engine.stats().frames > 50, timeout=TIMEOUT_MS
    )
    viewer.close()
    qtbot.waitUntil(lambda: engine.state is EngineState.CLOSED, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not (lablink_threads() - before), timeout=TIMEOUT_MS)


def test_a_restart_with_another_crop_shows_none_of_the_previous_rows(make_widget, qtbot) -> None:
    viewer, widget = make_widget()
    widget.start()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 5, timeout=TIMEOUT_MS)
    widget.stop()
    engine = widget.engine
    qtbot.waitUntil(lambda: engine.state is EngineState.IDLE, timeout=TIMEOUT_MS)
    widget.form.crop_w.setValue(64)  # the top-left quarter: one bead (3.0, 3.2 um) left
    widget.form.crop_h.setValue(64)
    widget.start()
    assert widget.table.rowCount() == 0 and widget.results == {}
    assert len(viewer.layers[BEADS_LAYER].data) == 0 if BEADS_LAYER in viewer.layers else True
    assert len(widget.plots.history()) == 0
    qtbot.waitUntil(lambda: widget.table.rowCount() > 0, timeout=TIMEOUT_MS)
    run = engine.stats().run_id
    assert all(r.run_id == run for r in widget.results.values())
    # every row shown belongs to the cropped field: only beads inside 6.4 x 6.4 um
    xs = [float(widget.table.item(r, 1).text()) for r in range(widget.table.rowCount() - 1)]
    assert xs and all(x < 6.4 for x in xs)


def test_layers_have_axis_labels_and_zoom_goes_to_the_selected_bead(make_widget, qtbot) -> None:
    viewer, widget = make_widget()
    assert not widget.zoom_to_bead()  # nothing selected yet
    widget.start()
    qtbot.waitUntil(
        lambda: 0 in widget.results and widget.selected_bead is not None, timeout=TIMEOUT_MS
    )
    assert viewer.dims.axis_labels[0] == "z"
    assert viewer.layers["GFP"].axis_labels == ("z", "y", "x")
    zoom = viewer.camera.zoom
    bead = next(b for b in widget.results[0].beads if b.bead == widget.selected_bead)
    assert widget.zoom_to_bead()
    assert viewer.camera.center[-2:] == pytest.approx((bead.y_um, bead.x_um))
    assert viewer.camera.zoom > 2 * zoom
    assert viewer.dims.current_step[0] == round(bead.z_px)


def test_table_fits_the_dock_without_scrolling(make_widget, qtbot) -> None:
    _, widget = make_widget()
    widget.start()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 5, timeout=TIMEOUT_MS)
    table = widget.table
    assert table.columnCount() == 9
    header = table.horizontalHeader()
    assert header.length() <= table.viewport().width() + 1
    assert [table.horizontalHeaderItem(c).text() for c in (7, 8)] == ["S/B", "Q"]
    q = float(table.item(0, 8).text())
    assert 0.8 < q <= 1.01  # a clean bead explains nearly all its signal
    assert table.item(0, 8).toolTip().startswith("R²")


def test_alignment_plots_follow_the_results_live(make_widget, qtbot) -> None:
    _, widget = make_widget()
    plots = widget.plots
    widget.start()
    assert widget.tabs.currentWidget() is plots
    qtbot.waitUntil(lambda: len(plots.history()) >= 3, timeout=TIMEOUT_MS)
    history = plots.history()
    assert history[:, 3] == pytest.approx(1.0, rel=0.1)  # FWHM z of every stack shown
    result = widget.results[0]
    alignment = result.alignment
    bead = alignment.bead(widget.selected_bead)
    x, y = plots.data_curves["z"].getData()
    np.testing.assert_allclose(x, bead.z.position_um)
    np.testing.assert_allclose(y, bead.z.values)
    fx, fy = plots.fit_curves["x"].getData()
    np.testing.assert_allclose(fy, bead.x.model(fx))
    assert "astigmatism" in plots.readout.text()
    image = plots.average_views["XY"].image
    assert image is not None and image.shape == alignment.average_psf.shape[1:]
    # the reference lines are the ideal widths of the objective typed in
    plots.set_optics(1.2, 0.6, 1.33)
    fx_ideal, _, fz_ideal = Optics(1.2, 0.6, 1.33).fwhm_um()
    assert plots.theory_lines["x"].value() == pytest.approx(fx_ideal)
    assert plots.theory_lines["z"].value() == pytest.approx(fz_ideal)
