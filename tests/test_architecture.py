"""The rules of DESIGN.md that keep the layers apart, checked on the real code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import napari_lablink

PACKAGE = Path(napari_lablink.__file__).parent
CORES = ("client", "acquisition", "formats")
FORBIDDEN = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


def _modules(folder: str) -> list[str]:
    return [
        "napari_lablink." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in sorted((PACKAGE / folder).rglob("*.py"))
        if p.name != "__init__.py" or p.parent != PACKAGE
    ]


def test_cores_never_load_napari_or_qt() -> None:
    modules = ["napari_lablink", *[m for core in CORES for m in _modules(core)]]
    modules = [m.removesuffix(".__init__") for m in modules]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(modules) > 10
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_stand_in_servers_never_import_the_client() -> None:
    """A mistake shared by client and stand-in would hide itself in every test."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            n
            for n in _imports(path)
            if n.startswith(("napari_lablink.client", "napari_lablink.profiles"))
        )
        for path in (PACKAGE / "testing").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_manifest_is_the_root_one() -> None:
    """In the source tree the package's manifest links to the root one; installed, it is a copy."""
    root = Path(__file__).parent.parent
    link = root / "src" / "napari_lablink" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (root / "napari.yaml").resolve()
    installed = PACKAGE / "napari.yaml"
    assert installed.read_text() == (root / "napari.yaml").read_text()


def test_npe2_validates_the_manifest() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-lablink"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
