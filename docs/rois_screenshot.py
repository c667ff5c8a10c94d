"""Screenshot of mikro ROIs over a 3-D image, opened by the reader (docs/rois.png).

Run under a display: ``xvfb-run -a python3 docs/rois_screenshot.py docs/rois.png``.
The ROIs are made through the raw GraphQL API, as another client would make them, on a
stand-in server with anisotropic pixels (0.2 x 0.2 x 1.0 um), so the picture shows them sitting
on the nuclei they outline in every plane.
"""

from __future__ import annotations

import os
import sys

import httpx
import numpy as np


def _stack() -> np.ndarray:
    """Three blurry nuclei at different depths in a 24 x 128 x 128 stack."""
    z, y, x = np.mgrid[:24, :128, :128].astype(float)
    image = np.zeros((24, 128, 128))
    for cz, cy, cx, r in ((6, 40, 40, 14), (12, 80, 70, 18), (18, 40, 100, 12)):
        image += 3000 * np.exp(-(((z - cz) * 5) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / r**2)
    return image.astype(np.uint16)[None, None]


CREATE = """
mutation CreateRoi($input: RoiInput!) { createRoi(input: $input) { id } }"""


def main(out: str) -> None:
    import napari

    from napari_lablink._napari.opening import wait_for_opens
    from napari_lablink.testing import MikroStandIn

    with MikroStandIn() as mikro:
        image_id = mikro.add_image(_stack(), "nuclei", pixel_size=(0.2, 0.2, 1.0))
        os.environ["LABLINK_TOKEN"] = mikro.token
        os.environ["LABLINK_S3_ENDPOINT"] = mikro.s3_endpoint
        rois = [
            ("ELLIPSIS", [[0, 0, 6, 40, 40], [0, 0, 6, 14, 14]]),  # centre, radii
            ("RECTANGLE", [[0, 0, 12, 62, 52], [0, 0, 12, 98, 88]]),
            (
                "POLYGON",
                [[0, 0, 18, 28, 100], [0, 0, 18, 40, 112], [0, 0, 18, 52, 100], [0, 0, 18, 40, 88]],
            ),
            ("POINT", [[0, 0, 6, 40, 40]]),
            ("POINT", [[0, 0, 12, 80, 70]]),
            ("POINT", [[0, 0, 18, 40, 100]]),
        ]
        for kind, vectors in rois:
            variables = {"input": {"image": image_id, "kind": kind, "vectors": vectors}}
            answer = httpx.post(
                mikro.gen2_graphql_url,
                json={"query": CREATE, "variables": variables},
                headers={"Authorization": f"Bearer {mikro.token}"},
            )
            answer.raise_for_status()
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1100, 800)
        viewer.open(mikro.image_uri(image_id, with_s3=False), plugin="napari-lablink")
        wait_for_opens(120)
        viewer.dims.ndisplay = 3
        for layer in viewer.layers:
            if layer._type_string == "shapes":
                layer.edge_width = 0.25
            elif layer._type_string == "points":
                layer.size = 2.5
            else:
                layer.contrast_limits = (0, 3000)
                layer.colormap = "magma"
        viewer.reset_view()
        viewer.camera.angles = (-10, 35, 75)
        viewer.camera.zoom *= 0.85
        viewer.screenshot(out, canvas_only=False)
        viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/rois.png")
