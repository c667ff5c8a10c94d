"""The README's Python example runs as written, against the stand-in servers.

Only addresses, ids and secrets are substituted (the README shows placeholders); every call is
the README's own. The PIMS line opens a mikro URI instead: the real PIMS runs in tests/pims.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).parent.parent / "README.md"


def python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_example_runs(mikro, monkeypatch) -> None:
    from napari_lablink.testing import TrackerStandIn

    image_id = mikro.add_image(
        np.ones((1, 1, 5, 32, 32), np.uint16), "readme", pixel_size=(0.2, 0.2, 0.5)
    )
    code = python_example()
    with TrackerStandIn() as tracker:
        demo = tracker.seed_demo(size=64, fovs=1)
        substitutions = {
            "mikro+http://127.0.0.1:8080/mikro": f"mikro+http://{mikro.uri_authority}/mikro",
            'token="..."': f'token="{mikro.token}"',
            "http://127.0.0.1:9000": mikro.s3_endpoint,
            '"image/3"': f'"image/{image_id}"',
            "mibi+http://127.0.0.1:8000": f"mibi+{tracker.base_url}",
            'email="..."': f'email="{tracker.email}"',
            'password="..."': f'password="{tracker.password}"',
            "20180122_1242_1243": demo["run"]["label"],
            "pims+http://127.0.0.1:5000/upload-1/slide.ome.tiff": mikro.image_uri(image_id),
        }
        for placeholder, value in substitutions.items():
            assert placeholder in code, placeholder
            code = code.replace(placeholder, value)
        monkeypatch.setenv("LABLINK_TOKEN", mikro.token)
        scope: dict = {}
        exec(compile(code, "README.md", "exec"), scope)
    assert scope["plane"].shape == (32, 32)
    assert scope["counts"].dtype == np.uint16 and scope["counts"].shape == (64, 64)
    assert scope["uri"].startswith("mikro+http://")
    assert scope["image"].shape == (1, 1, 5, 32, 32)
