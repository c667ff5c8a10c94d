"""Screenshots of ROIs in the widgets: docs/rois_browser.png and docs/rois_upload.png.

Run under a display: ``xvfb-run -a -s "-screen 0 1600x1000x24" python3
docs/rois_widgets_screenshot.py docs``. On a stand-in server: a 3-D image with ROIs made
through the raw GraphQL API is opened from the Lablink browser with "Load ROIs" checked; then
a Shapes layer drawn over it is saved with the Upload widget's "annotations" choice.
Profiles go to a temporary servers.toml, never to the user's own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from rois_screenshot import CREATE, _stack  # the same nuclei as docs/rois.png
from screenshot_helpers import settle, use_temporary_profiles, wait_until


def main(out_dir: str) -> None:
    use_temporary_profiles()
    import napari

    from napari_lablink._napari.browser.widget import BrowserWidget
    from napari_lablink._napari.opening import wait_for_opens
    from napari_lablink._napari.upload.mikro_widget import ANNOTATIONS, UploadWidget
    from napari_lablink.profiles import Profile, ProfileStore
    from napari_lablink.testing import MikroStandIn

    with MikroStandIn() as mikro:
        image_id = mikro.add_image(_stack(), "nuclei 3-D", pixel_size=(0.2, 0.2, 1.0))
        os.environ["LABLINK_TOKEN"] = mikro.token
        os.environ["LABLINK_S3_ENDPOINT"] = mikro.s3_endpoint
        for kind, vectors in (
            ("ELLIPSIS", [[0, 0, 6, 40, 40], [0, 0, 6, 14, 14]]),
            ("RECTANGLE", [[0, 0, 12, 62, 52], [0, 0, 12, 98, 88]]),
            ("POINT", [[0, 0, 18, 40, 100]]),
        ):
            variables = {"input": {"image": image_id, "kind": kind, "vectors": vectors}}
            httpx.post(
                mikro.gen2_graphql_url,
                json={"query": CREATE, "variables": variables},
                headers={"Authorization": f"Bearer {mikro.token}"},
            ).raise_for_status()
        store = ProfileStore(secrets=None)
        store.save(
            Profile(
                name="Lab mikro",
                kind="mikro",
                url=f"http://{mikro.uri_authority}/mikro",
                s3=mikro.s3_endpoint,
            ),
            token=mikro.token,
        )
        viewer = napari.Viewer(title="napari-lablink ROIs")
        viewer.window._qt_window.resize(1500, 950)
        browser = BrowserWidget(viewer, store=store)
        viewer.window.add_dock_widget(browser, name="Lablink browser", area="right")
        browser.select_profile("Lab mikro")
        browser.connect_profile("Lab mikro")
        wait_until(lambda: browser.state("Lab mikro") == "connected", "the widgets")
        wait_until(lambda: not browser.loading and bool(browser.entries), "the widgets")
        browser.select_entry(0)
        wait_until(lambda: browser.preview_of(browser.entries[0]) is not None, "the widgets")
        browser.open_selected()
        wait_until(lambda: wait_for_opens(0.05), "the widgets")
        wait_until(lambda: len(viewer.layers) == 3, "the widgets")
        image, shapes, points = viewer.layers
        image.colormap, image.contrast_limits = "magma", (0, 3000)
        shapes.edge_width, points.size = 0.25, 2.5
        viewer.dims.ndisplay = 3
        viewer.reset_view()
        viewer.camera.angles = (-10, 35, 75)
        settle(1)
        viewer.screenshot(str(Path(out_dir) / "rois_browser.png"), canvas_only=False)

        viewer.dims.ndisplay = 2
        viewer.dims.set_point(0, 12.0)
        drawn = viewer.add_shapes(
            [np.asarray([[12.0, 14.0, 4.0], [12.0, 14.0, 20.0], [12.0, 24.0, 20.0]])],
            shape_type=["polygon"],
            edge_color="cyan",
            edge_width=0.3,
            face_color="transparent",
            name="my outline",
        )
        viewer.window.remove_dock_widget(browser)
        upload = UploadWidget(viewer)
        viewer.window.add_dock_widget(upload, name="Upload to mikro", area="right")
        upload.what.setCurrentText(ANNOTATIONS)
        viewer.layers.selection = {drawn}
        upload.upload()
        wait_until(lambda: upload.upload_button.isEnabled(), "the widgets")
        viewer.reset_view()
        settle(1)
        viewer.screenshot(str(Path(out_dir) / "rois_upload.png"), canvas_only=False)
        viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
