"""The PIMS venv's pins travel with the package (a wheel without them could not build the venv)."""

from __future__ import annotations

from pathlib import Path

from napari_lablink.testing.pims import install


def test_the_constraints_file_sits_next_to_the_installer() -> None:
    assert install.CONSTRAINTS.parent == Path(install.__file__).parent
    pins = install.CONSTRAINTS.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("aioredis==2.0.1") for line in pins)
