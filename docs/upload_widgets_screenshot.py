"""Screenshots of the two upload widgets against the stand-in servers (docs/upload_widget.png and
docs/tracker_upload_widget.png): the mikro one part-way through an upload (its progress bar and
Cancel in the widget, the target from a profile), the MIBItracker one after refusing a channel of
the wrong size before sending it.

Run under a display: ``xvfb-run -a python3 docs/upload_widgets_screenshot.py docs``.
Profiles go to a temporary servers.toml, never to the user's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from screenshot_helpers import settle, use_temporary_profiles, wait_until


def main(out: Path) -> None:
    use_temporary_profiles()
    import napari
    import numpy as np

    from napari_lablink._napari.opening import wait_for_opens
    from napari_lablink._napari.upload.mikro_widget import UploadWidget
    from napari_lablink._napari.upload.tracker_widget import TrackerUploadWidget
    from napari_lablink.profiles import Profile, ProfileStore
    from napari_lablink.testing import MikroStandIn, TrackerStandIn

    rng = np.random.default_rng(3)
    with MikroStandIn() as mikro, TrackerStandIn() as tracker:
        demo = tracker.seed_demo(size=256, fovs=1)
        store = ProfileStore(secrets=None)
        store.save(
            Profile(
                name="Lab mikro",
                kind="mikro",
                url=f"http://{mikro.uri_authority}/mikro/graphql",
                s3=mikro.s3_endpoint,
            ),
            token=mikro.token,
        )
        store.save(
            Profile(
                name="MIBItracker",
                kind="mibi",
                url=f"http://127.0.0.1:{tracker.port}",
                email=tracker.email,
            ),
            password=tracker.password,
        )

        viewer = napari.Viewer(title="napari-lablink upload to mikro")
        viewer.window._qt_window.resize(1300, 800)
        for name, colormap in (("DAPI", "blue"), ("GFP", "green")):
            viewer.add_image(
                rng.integers(0, 4000, size=(24, 256, 256), dtype=np.uint16),
                name=name,
                colormap=colormap,
                blending="additive",
                scale=(0.5, 0.2, 0.2),
                units="um",
            )
        widget = UploadWidget(viewer, store=store)
        viewer.window.add_dock_widget(widget, name="Upload to mikro", area="right")
        widget.name.setText("tissue section 4")
        widget.tags.setText("demo, upload")
        for i in range(widget.layers.count()):
            widget.layers.item(i).setCheckState(widget.layers.item(i).checkState().Checked)
        mikro.s3.faults.kinds = ["slow"]
        mikro.s3.faults.methods = ["PUT"]
        mikro.s3.faults.slow_seconds = 0.3
        mikro.s3.faults.rate = 1.0
        widget.upload()
        wait_until(lambda: widget.progress.value() >= 3, "the widget")
        settle()
        viewer.screenshot(str(out / "upload_widget.png"), canvas_only=False)
        widget.cancel()
        wait_until(widget.upload_button.isEnabled, "the widget")
        mikro.s3.faults.clear()
        viewer.close()

        viewer = napari.Viewer(title="napari-lablink upload to MIBItracker")
        viewer.window._qt_window.resize(1300, 800)
        image_id = demo["images"][0]["id"]
        viewer.open(f"mibi+http://127.0.0.1:{tracker.port}/images/{image_id}", plugin=PLUGIN)
        wait_for_opens(120)
        viewer.add_image(rng.random((128, 128)).astype(np.float32), name="cell density")
        tracker_widget = TrackerUploadWidget(viewer, store=store)
        viewer.window.add_dock_widget(tracker_widget, name="Upload to MIBItracker", area="right")
        tracker_widget.layer.setCurrentText("cell density")
        tracker_widget.upload()
        wait_until(tracker_widget.upload_button.isEnabled, "the widget")
        settle()
        viewer.screenshot(str(out / "tracker_upload_widget.png"), canvas_only=False)
        print("saved", out / "upload_widget.png", out / "tracker_upload_widget.png")
        viewer.close()


PLUGIN = "napari-lablink"

if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
