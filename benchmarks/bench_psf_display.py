"""Live PSF display: the widget's redraw path versus the seed notebook's, same data, same viewer.

The seed notebook's thread worker yielded every camera frame to the Qt thread, which wrote it
into the stack and handed napari the whole stack (``layer.data = stack``): one display update
per camera frame, so a camera faster than the display piles frames up in its queue. The widget
decouples the two: the layer holds the engine's live stack, and each redraw (``refresh()`` of
the displayed plane when it changed, plus two small reslice cuts) shows every frame that arrived
since the last one. Both run against one simulated acquisition (200 frames/s, 41 x 256 x 256
uint16) in one viewer, each as fast as it can for the same time, an iteration being one update
plus the paint that shows it. Reported against the seed's approach:

- frames shown per second: camera frames whose data reached the screen (seed: one per update);
- display updates per second, and the median time of one update including its paint (the
  widget draws three panels where the seed drew one, so a single update costs it more).

PSF fits and the widget's own timer are off during the measurement: only display costs count.
Needs a display; without one it starts Xvfb (pyvirtualdisplay), as CI and headless machines do.
"""

from __future__ import annotations

import argparse
import os
import time

try:
    from ._bench import bench
except ImportError:
    from _bench import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per approach")
    args = parser.parse_args()
    display = None
    if not os.environ.get("DISPLAY"):
        from pyvirtualdisplay import Display

        display = Display(visible=False, size=(1600, 1000))
        display.start()
    try:
        run(args.seconds)
    finally:
        if display is not None:
            display.stop()


def run(seconds: float) -> None:
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_lablink._napari.psf.widget import PSFWidget
    from napari_lablink.acquisition import EngineState, SimulatedMicroscope

    def one_channel(settings: object) -> SimulatedMicroscope:
        # the seed's display case: one channel, 256 x 256 frames, 41 planes, a fast camera
        return SimulatedMicroscope(frame_shape=(256, 256), frame_rate_hz=2000.0, ring_frames=64)

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    widget = PSFWidget(viewer, backends={"simulated": one_channel})
    viewer.window.add_dock_widget(widget, name="PSF acquisition")
    deadline = time.monotonic() + 30
    while widget.connecting and time.monotonic() < deadline:
        app.processEvents()
    widget.form.exposure.setValue(5.0)  # 200 frames/s: every redraw has new frames
    widget.start()
    engine = widget.engine
    while (engine.stats() is None or engine.stats().stacks_completed < 2) and (
        time.monotonic() < deadline
    ):
        app.processEvents()
    widget.refresh_display()  # builds the layers
    stack_layer = viewer.layers[engine.geometry.channels[0]]
    # both approaches are driven by the loops below and nothing else: no timer, no PSF fits
    widget.redraw_timer.stop()
    widget.analyzer.detach()

    def widget_step() -> int:
        before = widget.display.frames_shown
        widget.display.redraw(engine)
        return widget.display.frames_shown - before

    def seed_step() -> int:
        stack_layer.data = engine.live_stack(0)  # the notebook: the whole stack, every frame
        return 1  # one queued camera frame per update

    def measure(step) -> tuple[float, float, float]:
        for _ in range(5):  # warm up (first paints compile shaders)
            step()
            app.processEvents()
        frames, durations = 0, []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t = time.perf_counter()
            frames += step()
            app.processEvents()  # delivers the canvas update: the paint happens here
            durations.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - t0
        return frames / elapsed, len(durations) / elapsed, float(np.median(durations)) * 1e3

    seed = measure(seed_step)
    mine = measure(widget_step)
    camera_fps = engine.stats().frames_per_second
    widget.stop()
    while engine.state is not EngineState.IDLE:
        app.processEvents()
    widget.shutdown()
    viewer.close()
    print(f"# camera {camera_fps:.0f} frames/s, 41 x 256 x 256 uint16, {seconds:g} s each")
    bench("psf_display_frames_shown", mine[0], "frames/s", baseline=seed[0])
    bench("psf_display_updates", mine[1], "updates/s", baseline=seed[1])
    bench("psf_display_update_time", mine[2], "ms", baseline=seed[2])


if __name__ == "__main__":
    main()
