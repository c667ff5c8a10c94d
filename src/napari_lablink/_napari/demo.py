"""``napari-lablink demo``: the stand-in servers with demo data, and napari showing it.

Everything runs in one process on 127.0.0.1. With ``screenshot`` the demo waits until every
layer has been drawn, saves the whole window and exits, which is how CI and headless machines
check the main job end to end.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

__all__ = ["run_demo"]


def run_demo(screenshot: str | None = None) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_lablink.testing import MikroStandIn

    with ExitStack() as stack:
        mikro = stack.enter_context(MikroStandIn())
        ids = mikro.seed_demo()
        # The demo's own server: its token goes where a user's would, the environment.
        os.environ["LABLINK_TOKEN"] = mikro.token
        viewer = napari.Viewer(title="napari-lablink demo")
        stack.callback(viewer.close)
        # The camera fits the first image opened; the pyramid (a far larger field of view) comes
        # last and hidden, so the cells fill the canvas.
        opened = {
            "Cells 3D": mikro.representation_uri(ids["cells_gen1"]),
            "Nuclei labels": mikro.representation_uri(ids["nuclei_labels_gen1"]),
            "Tissue pyramid": mikro.image_uri(ids["tissue_pyramid"]),
        }
        failed = []
        for name, uri in opened.items():
            layers = viewer.open(uri, plugin="napari-lablink")
            if not layers:
                failed.append(f"{name} ({uri.split('?')[0]})")
            elif name == "Tissue pyramid":
                for layer in layers:
                    layer.visible = False  # a different field of view: toggle it on to look
        viewer.dims.set_current_step(0, viewer.dims.nsteps[0] // 2)
        print("napari-lablink demo:", flush=True)
        for name, uri in opened.items():
            print(f"  {name}: {uri}", flush=True)
        if screenshot is None:
            napari.run()
            return 1 if failed else 0
        for _ in range(50):
            QApplication.processEvents()
        if failed:
            print("demo: could not open " + ", ".join(failed), file=sys.stderr)
            return 1
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(path), canvas_only=False)
        print(f"demo: screenshot saved to {path}", flush=True)
        return 0
    return 1  # unreachable; keeps type checkers content
