"""A private virtual environment for the real Cytomine PIMS server.

PIMS 1.0.0 pins a 2023 stack (FastAPI 0.68, pydantic 1, numpy 1.24) that cannot live next to
napari in the plugin's environment, so the tests run it from its own venv. Building that venv
takes about a minute, so it is cached and rebuilt only when its recipe changes: the PIMS version,
the constraints file next to this module, the base Python, or the aioredis fix below.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import platformdirs

PIMS_REQUIREMENT = "cytomine-pims==1.0.0"
CONSTRAINTS = Path(__file__).with_name("constraints.txt")
VENV_ENV_VAR = "LABLINK_PIMS_VENV"
PYTHON_ENV_VAR = "LABLINK_PIMS_PYTHON"
"""Base interpreter for the venv (default: the running one). It must be CPython 3.11."""

_MARKER = "lablink-pims.json"
_RECIPE_VERSION = 1  # bump when the build steps below change

# aioredis 2.0.1 derives TimeoutError from asyncio.TimeoutError and builtins.TimeoutError, which
# are one class since Python 3.11, so importing it raises "duplicate base class". Dropping the
# asyncio base keeps the same behaviour (it is the builtin class on 3.11).
_AIOREDIS_BROKEN = "class TimeoutError(asyncio.TimeoutError, builtins.TimeoutError, RedisError):"
_AIOREDIS_FIXED = (
    "class TimeoutError(builtins.TimeoutError, RedisError):"
    "  # napari-lablink: asyncio.TimeoutError is builtins.TimeoutError on 3.11"
)

_SMOKE_TEST = "import aioredis, pyvips, pims.application; pyvips.Image.black(2, 2).avg()"


class PimsSetupError(RuntimeError):
    """The real PIMS server could not be installed, imported into or started."""


def default_venv_dir() -> Path:
    """``$LABLINK_PIMS_VENV``, else ``<user cache>/napari-lablink/pims-venv``."""
    configured = os.environ.get(VENV_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("napari-lablink")) / "pims-venv"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def pims_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """Environment for a PIMS process: ours, minus what would leak the caller's Python into it.

    PIMS reads its settings from environment variables before its config file, so they are
    passed here rather than only written to the file.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(settings)
    return env


def ensure_pims_venv(path: Path | None = None) -> Path:
    """Create (once) the venv running PIMS and return its directory.

    Safe to call from several processes at once: builds are serialised by a lock file.
    """
    venv = (path or default_venv_dir()).expanduser().absolute()
    _check_libvips()
    base_python = _base_python()
    recipe = _recipe(base_python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.with_name(venv.name + ".lock")):
        if _read_marker(venv) == recipe:
            return venv
        _remove_stale(venv)
        started = time.monotonic()
        _run([base_python, "-m", "venv", str(venv)], "creating the PIMS venv")
        python = str(venv_python(venv))
        _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-c",
                str(CONSTRAINTS),
                PIMS_REQUIREMENT,
            ],
            f"installing {PIMS_REQUIREMENT} with {CONSTRAINTS.name}",
        )
        _fix_aioredis(python)
        _run([python, "-c", _SMOKE_TEST], "importing PIMS in its venv", env=_smoke_env(venv))
        recipe["build_seconds"] = round(time.monotonic() - started, 1)
        (venv / _MARKER).write_text(json.dumps(recipe, indent=2))
    return venv


def _check_libvips() -> None:
    if ctypes.util.find_library("vips") is None:
        raise PimsSetupError(
            "PIMS needs the libvips shared library, which is not installed. "
            "On Debian/Ubuntu run: apt-get install libvips42"
        )


def _base_python() -> str:
    python = os.environ.get(PYTHON_ENV_VAR, sys.executable)
    version = _run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        f"asking {python} for its version",
    ).strip()
    if version != "3.11":
        raise PimsSetupError(
            f"PIMS's pinned wheels exist for CPython 3.11, but {python} is {version}. "
            f"Set {PYTHON_ENV_VAR} to a Python 3.11 interpreter."
        )
    return python


def _recipe(base_python: str) -> dict[str, object]:
    # The base prefix, not the interpreter path: a tox env and the system Python it was made
    # from share one venv.
    probe = "import sys; print(sys.base_prefix); print(sys.version)"
    prefix, version = _run([base_python, "-c", probe], "probing Python").strip().split("\n", 1)
    return {
        "recipe": _RECIPE_VERSION,
        "requirement": PIMS_REQUIREMENT,
        "constraints_sha256": hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest(),
        "python_prefix": prefix,
        "python_version": version,
    }


def _read_marker(venv: Path) -> dict[str, object] | None:
    try:
        marker = json.loads((venv / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    marker.pop("build_seconds", None)
    return marker if venv_python(venv).exists() else None


def _remove_stale(venv: Path) -> None:
    """Delete an outdated or half-built venv, but never a folder that is not a venv."""
    if not venv.exists():
        return
    if not (venv / "pyvenv.cfg").exists():
        raise PimsSetupError(
            f"{venv} exists and is not a virtual environment; refusing to replace it. "
            f"Remove it or point {VENV_ENV_VAR} elsewhere."
        )
    shutil.rmtree(venv)


def _fix_aioredis(python: str) -> None:
    located = _run(
        [
            python,
            "-c",
            "import importlib.util; "
            "print(importlib.util.find_spec('aioredis').submodule_search_locations[0])",
        ],
        "locating aioredis",
    ).strip()
    exceptions = Path(located) / "exceptions.py"
    source = exceptions.read_text()
    if _AIOREDIS_FIXED in source:
        return
    if source.count(_AIOREDIS_BROKEN) != 1:
        raise PimsSetupError(
            f"{exceptions} does not contain the aioredis 2.0.1 TimeoutError definition this "
            "fix expects; check the aioredis pin in constraints.txt"
        )
    exceptions.write_text(source.replace(_AIOREDIS_BROKEN, _AIOREDIS_FIXED))


def _smoke_env(venv: Path) -> dict[str, str]:
    """Minimal settings so that importing pims.application validates, touching nothing."""
    return pims_environment(
        {
            "CONFIG_FILE": os.devnull,
            "ROOT": str(venv),
            "CYTOMINE_PUBLIC_KEY": "unused",
            "CYTOMINE_PRIVATE_KEY": "unused",
            "CACHE_ENABLED": "false",
            "TASK_QUEUE_ENABLED": "false",
        }
    )


def _run(command: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else pims_environment({}),
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-40:])
        raise PimsSetupError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    import fcntl  # POSIX only, like PIMS itself

    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    # `python -m napari_lablink.testing.pims.install`: build the venv ahead of the tests (CI step).
    started = time.monotonic()
    built = ensure_pims_venv()
    print(f"PIMS venv ready at {built} ({time.monotonic() - started:.1f} s)")
