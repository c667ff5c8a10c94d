"""`napari-lablink demo --screenshot`: the main job end to end, as CI and a newcomer run it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.viewer


def test_demo_screenshot(tmp_path) -> None:
    path = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "napari_lablink.cli", "demo", "--screenshot", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "screenshot saved" in result.stdout
    for words in ("Cells 3D (mikro, generation 1)", "Tonsil FOV1 (MIBItracker)", "mibi+http://"):
        assert words in result.stdout
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape[0] > 800 and pixels.shape[1] > 1200
    # The canvas (between the docks) shows the cells: many colours, not an empty black canvas.
    canvas = pixels[:, pixels.shape[1] // 4 : pixels.shape[1] * 3 // 4]
    assert len(np.unique(canvas.reshape(-1, 3), axis=0)) > 1000
