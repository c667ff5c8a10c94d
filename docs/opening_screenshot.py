"""Screenshot of a 40-channel MIBItracker FOV while it opens (docs/opening_40_channels.png).

Run under a display:
``xvfb-run -a python3 docs/opening_screenshot.py docs/opening_40_channels.png``.
The stand-in tracker runs in a subprocess, as a real server would, with the demo's 28-channel
panel plus twelve more markers. The picture is taken while the layers are still arriving: the
first four channels are on screen and the window answers while the hidden ones are added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

_SERVER = r"""
import json, sys
import numpy as np
from napari_lablink.testing import TrackerStandIn
from napari_lablink.testing.tracker.demo import PANEL, _fov, _settings
channels = _fov(np.random.default_rng(4), 512)
masses = {target: mass for mass, target, *_ in PANEL}
planes = {target: (masses[target], counts) for target, counts in channels.items()}
for i, source in enumerate(list(channels.values())[: 40 - len(planes)]):
    planes[f"Marker{i + 1}"] = (180 + i, np.roll(source, 7 * (i + 1), axis=1))
with TrackerStandIn() as tracker:
    run = tracker.add_run("20260101_FORTY", "forty channels")
    settings = _settings({target: counts for target, (_, counts) in planes.items()})
    image = tracker.add_image(run, "FOV1", planes, 500.0, settings=settings)
    print(json.dumps({"email": tracker.email, "password": tracker.password,
                      "uri": f"mibi+{tracker.base_url}/images/{image}"}), flush=True)
    sys.stdin.read()
"""


def main(path: str) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_lablink._napari.opening import pending_opens

    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        info = json.loads(server.stdout.readline())
        os.environ.update(LABLINK_MIBI_EMAIL=info["email"], LABLINK_MIBI_PASSWORD=info["password"])
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)

        def settle(turns: int) -> None:
            for _ in range(turns):
                QApplication.processEvents()
                time.sleep(0.01)

        settle(50)
        viewer.open(info["uri"], plugin="napari-lablink")
        while pending_opens() and len(viewer.layers) < 12:
            settle(1)
        settle(10)
        viewer.screenshot(path, canvas_only=False)
        while pending_opens():
            settle(1)
        viewer.close()
    finally:
        server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "opening_40_channels.png")
