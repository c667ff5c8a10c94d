"""The layering rules of docs/architecture.md, checked mechanically on the source tree.

The rules are written for any layout that follows the architecture (a shared client core with
one subpackage per protocol, stand-ins grouped the same way), so a new protocol package is
checked without touching this file. The graph code is unit-tested on small synthetic trees at
the bottom, so a rule that passes is known to be able to fail.

Which imports count (see tests/import_graph.py for the kinds):

- cycles: every import, including those inside functions (they run, just later) and those under
  ``TYPE_CHECKING``. A type-only cycle is harmless at run time, but it still means two modules
  know each other (a helper typed against the server class that composes it), which is the
  coupling the layout exists to remove;
- GUI-free cores: imports that run when the module is imported and type-only ones, followed
  through our own modules. Imports inside functions are left out because the config reads
  napari's plugin settings lazily when napari is already running; the subprocess test below
  proves that loading every core module loads no GUI module;
- everything else (protocol independence, stand-ins, profiles): every import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

import napari_lablink

from .import_graph import ALL_KINDS, Graph, build_graph, describe, find_cycles, import_chain

SRC = Path(__file__).parent.parent / "src"
ROOT = "napari_lablink"
PACKAGE = SRC / ROOT
CORES = ("client", "acquisition", "formats")
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "magicgui", "vispy")
#: What the stand-ins must not share with the client: a shared mistake would hide itself.
NOT_FOR_STAND_INS = ("client", "profiles", "formats", "uri", "config")
#: Client subpackages the protocols share (logging in to an Arkitekt deployment): no protocol.
SHARED_PACKAGES = ("arkitekt",)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _chain_rule(
    graph: Graph,
    sources: list[str],
    forbidden: Callable[[str], bool],
    kinds: Collection[str] = ALL_KINDS,
) -> list[str]:
    messages = []
    for module in sources:
        chain = import_chain(graph, module, forbidden, kinds)
        if chain:
            messages.append(f"{module} imports {chain[-1].target}: {describe(chain)}")
    return messages


def gui_violations(graph: Graph, root: str = ROOT) -> list[str]:
    """Core modules that import a GUI toolkit, directly or through our own modules."""
    cores = [m for core in CORES for m in graph.under(f"{root}.{core}")]
    return _chain_rule(graph, cores, lambda m: _within(m, GUI), {"eager", "typing"})


def cycle_violations(graph: Graph) -> list[str]:
    return [f"import cycle: {describe(cycle)}" for cycle in find_cycles(graph)]


def protocol_packages(graph: Graph, root: str = ROOT) -> list[str]:
    """Every subpackage of the client but the shared ones: one per protocol, whatever its name."""
    client = f"{root}.client"
    return [
        m
        for m in graph.under(client)
        if m.count(".") == client.count(".") + 1
        and graph.modules[m].name == "__init__.py"
        and m.rpartition(".")[2] not in SHARED_PACKAGES
    ]


def shared_package_violations(graph: Graph, root: str = ROOT) -> list[str]:
    """Shared packages serve the protocols, so they import none (directly or through others)."""
    protocols = tuple(protocol_packages(graph, root))
    shared = [m for name in SHARED_PACKAGES for m in graph.under(f"{root}.client.{name}")]
    return _chain_rule(graph, shared, lambda m: _within(m, protocols))


def protocol_violations(graph: Graph, root: str = ROOT) -> list[str]:
    """Imports from one protocol package into another (direct: each package owns its imports)."""
    packages = protocol_packages(graph, root)
    messages = []
    for package in packages:
        others = tuple(p for p in packages if p != package)
        for module in graph.under(package):
            for edge in graph.out(module):
                if _within(edge.target, others):
                    messages.append(f"{module} imports another protocol: {describe([edge])}")
    return messages


def stand_in_violations(graph: Graph, root: str = ROOT) -> list[str]:
    forbidden = tuple(f"{root}.{name}" for name in NOT_FOR_STAND_INS)
    return _chain_rule(graph, graph.under(f"{root}.testing"), lambda m: _within(m, forbidden))


def profiles_violations(graph: Graph, root: str = ROOT) -> list[str]:
    """The client is below profiles: profiles may use it, never the reverse."""
    profiles = (f"{root}.profiles",)
    return _chain_rule(graph, graph.under(f"{root}.client"), lambda m: _within(m, profiles))


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(SRC, ROOT)


def test_the_graph_reads_the_whole_tree(graph: Graph) -> None:
    assert len(graph.modules) == len(list(PACKAGE.rglob("*.py")))
    assert graph.under(f"{ROOT}.client") and graph.under(f"{ROOT}.testing")


def test_cores_import_no_gui_toolkit(graph: Graph) -> None:
    assert gui_violations(graph) == [], "\n".join(gui_violations(graph))


def test_cores_never_load_napari_or_qt(graph: Graph) -> None:
    """Importing every core module for real loads no GUI module (catches dynamic imports)."""
    modules = [ROOT, *[m for core in CORES for m in graph.under(f"{ROOT}.{core}")]]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(modules) > 10
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_no_import_cycle_under_src(graph: Graph) -> None:
    assert cycle_violations(graph) == [], "\n".join(cycle_violations(graph))


def test_protocol_packages_never_import_each_other(graph: Graph) -> None:
    assert protocol_violations(graph) == [], "\n".join(protocol_violations(graph))


def test_shared_packages_import_no_protocol(graph: Graph) -> None:
    assert shared_package_violations(graph) == [], "\n".join(shared_package_violations(graph))


def test_stand_ins_never_import_the_client(graph: Graph) -> None:
    """A mistake shared by client and stand-in would hide itself in every test."""
    assert stand_in_violations(graph) == [], "\n".join(stand_in_violations(graph))


def test_the_client_never_imports_profiles(graph: Graph) -> None:
    assert profiles_violations(graph) == [], "\n".join(profiles_violations(graph))


def test_the_manifest_is_the_root_one() -> None:
    """In the source tree the package's manifest links to the root one; installed, it is a copy."""
    root = Path(__file__).parent.parent
    link = root / "src" / "napari_lablink" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (root / "napari.yaml").resolve()
    installed = Path(napari_lablink.__file__).parent / "napari.yaml"
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


# The graph and the rules on small synthetic trees -------------------------------------------

#: The target layout in miniature: a shared core, one package per protocol, grouped stand-ins.
TARGET = {
    "__init__.py": "from napari_lablink.client.connection import connect\n",
    "profiles.py": "from napari_lablink.client import connection\n",
    "client/__init__.py": "",
    "client/errors.py": "",
    "client/uri.py": "from .errors import LablinkError\n",
    "client/config.py": "from napari_lablink.client import errors, secrets\n",
    "client/secrets.py": "import keyring\n",
    "client/schemes.py": "from . import uri\n",
    "client/connection.py": (
        "from typing import TYPE_CHECKING\n"
        "from . import config, schemes, uri\n"
        "if TYPE_CHECKING:\n"
        "    from .models import RemoteImage\n"
    ),
    "client/models.py": "import numpy\n",
    "client/lazy.py": "import dask.array\n",
    "client/mikro/__init__.py": "from .server import MikroServer\n",
    "client/mikro/session.py": "from ..errors import LablinkError\n",
    "client/mikro/write.py": "from .session import Session\n",
    "client/mikro/server.py": (
        "from napari_lablink.client.connection import Server\n"
        "from napari_lablink.client.mikro import session, write\n"
        "from ..lazy import lazy_array\n"
    ),
    "client/tracker/__init__.py": "",
    "client/tracker/server.py": "from napari_lablink.client.connection import Server\n",
    "acquisition/__init__.py": "",
    "acquisition/engine.py": "import numpy as np\nfrom .psf import fit\n",
    "acquisition/psf/__init__.py": "from .fit import fit\n",
    "acquisition/psf/fit.py": "from scipy import optimize\n",
    "_napari/__init__.py": "",
    "_napari/widget.py": "import napari\nfrom qtpy.QtWidgets import QWidget\n",
    "testing/__init__.py": "",
    "testing/mikro/__init__.py": "from .server import MikroStandIn\n",
    "testing/mikro/server.py": "from napari_lablink.testing._http import serve\n",
    "testing/_http.py": "import http.server\n",
}


def _tree(tmp_path: Path, files: dict[str, str]) -> Graph:
    for name, text in files.items():
        path = tmp_path / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return build_graph(tmp_path, ROOT)


def _all_violations(graph: Graph) -> list[str]:
    rules = (
        gui_violations,
        cycle_violations,
        protocol_violations,
        stand_in_violations,
        profiles_violations,
    )
    return [message for rule in rules for message in rule(graph)]


def test_the_graph_resolves_every_form_of_import(tmp_path: Path) -> None:
    graph = _tree(tmp_path, TARGET)
    edges = {(e.target, e.kind) for e in graph.out(f"{ROOT}.client.mikro.server")}
    assert edges == {
        (f"{ROOT}.client.connection", "eager"),  # from pkg.mod import Name
        (f"{ROOT}.client.mikro.session", "eager"),  # from pkg import submodule
        (f"{ROOT}.client.mikro.write", "eager"),
        (f"{ROOT}.client.lazy", "eager"),  # two dots up
    }
    assert {(e.target, e.kind) for e in graph.out(f"{ROOT}.client.connection")} == {
        ("typing", "eager"),
        (f"{ROOT}.client.config", "eager"),
        (f"{ROOT}.client.schemes", "eager"),
        (f"{ROOT}.client.uri", "eager"),
        (f"{ROOT}.client.models", "typing"),
    }
    # A package's __init__ resolves relative imports inside itself; third-party names stay.
    assert [e.target for e in graph.out(f"{ROOT}.client.mikro")] == [f"{ROOT}.client.mikro.server"]
    # ``from .psf import fit``: ``fit`` is both a submodule and a name in psf; the module wins.
    assert [e.target for e in graph.out(f"{ROOT}.acquisition.engine")] == [
        "numpy",
        f"{ROOT}.acquisition.psf.fit",
    ]
    assert [e.target for e in graph.out(f"{ROOT}.client.lazy")] == ["dask.array"]


def test_imports_inside_functions_are_lazy_edges(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import typing\nif typing.TYPE_CHECKING:\n    import napari\n"
            "else:\n    import os\ndef f():\n    from . import b\n",
            "b.py": "class C:\n    def m(self):\n        import napari_lablink.a as a\n",
        },
    )
    assert [(e.target, e.line, e.kind) for e in graph.out(f"{ROOT}.a")] == [
        ("typing", 1, "eager"),
        ("napari", 3, "typing"),
        ("os", 5, "eager"),
        (f"{ROOT}.b", 7, "lazy"),
    ]
    assert [(e.target, e.kind) for e in graph.out(f"{ROOT}.b")] == [(f"{ROOT}.a", "lazy")]
    assert cycle_violations(graph) == [
        f"import cycle: {ROOT}.a -> {ROOT}.b (line 7, lazy) -> {ROOT}.a (line 3, lazy)"
    ]


def test_the_target_layout_keeps_every_rule(tmp_path: Path) -> None:
    graph = _tree(tmp_path, TARGET)
    assert protocol_packages(graph) == [f"{ROOT}.client.mikro", f"{ROOT}.client.tracker"]
    assert _all_violations(graph) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "client/mikro/write.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .server import MikroServer\n",
            f"import cycle: {ROOT}.client.mikro.server -> {ROOT}.client.mikro.write (line 2)"
            f" -> {ROOT}.client.mikro.server (line 3, typing)",
        ),
        (
            "client/config.py",
            "def secret():\n    from napari_lablink.profiles import stored_secret\n",
            f"{ROOT}.client.config imports {ROOT}.profiles: {ROOT}.client.config"
            f" -> {ROOT}.profiles (line 2, lazy)",
        ),
        (
            "client/tracker/server.py",
            "from napari_lablink.client.mikro.session import Session\n",
            f"{ROOT}.client.tracker.server imports another protocol: {ROOT}.client.tracker.server"
            f" -> {ROOT}.client.mikro.session (line 1)",
        ),
        (
            "client/models.py",
            "from napari_lablink.acquisition.engine import run\n",
            None,  # allowed: the cores may use each other
        ),
        (
            "acquisition/psf/fit.py",
            "from napari_lablink._napari import widget\n",
            f"{ROOT}.acquisition.engine imports napari: {ROOT}.acquisition.engine"
            f" -> {ROOT}.acquisition.psf.fit (line 2) -> {ROOT}._napari.widget (line 1)"
            " -> napari (line 1)",
        ),
        (
            "testing/_http.py",
            "from napari_lablink.client.uri import parse\n",
            f"{ROOT}.testing.mikro imports {ROOT}.client.uri: {ROOT}.testing.mikro"
            f" -> {ROOT}.testing.mikro.server (line 1) -> {ROOT}.testing._http (line 1)"
            f" -> {ROOT}.client.uri (line 1)",
        ),
    ],
)
def test_each_broken_rule_names_the_module_and_the_chain(
    tmp_path: Path, name: str, text: str, expected: str | None
) -> None:
    graph = _tree(tmp_path, {**TARGET, name: text})
    violations = _all_violations(graph)
    if expected is None:
        assert violations == []
    else:
        assert expected in violations, violations
