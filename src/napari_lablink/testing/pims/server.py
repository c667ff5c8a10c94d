"""Run the real Cytomine PIMS server (``cytomine-pims`` 1.0.0) on loopback for tests.

PIMS only serves files that its own importer has laid out under ROOT (``upload-<uuid>/<name>``
plus a ``processed/`` folder with the format-specific representations and a histogram), so the
harness imports the given files with ``pims.importer.import_local_images`` first, then serves
them with uvicorn. Redis caching and the Celery task queue are disabled (and pointed at a closed
loopback port), so nothing leaves the machine.

The listening socket is bound here and handed to the server process, so there is no race for a
free port and the server can only listen on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from napari_lablink.testing._http import Service
from napari_lablink.testing.pims.install import (
    PimsSetupError,
    ensure_pims_venv,
    pims_environment,
    venv_python,
)

__all__ = ["PimsSetupError", "RealPims", "ensure_pims_venv"]

HOST = "127.0.0.1"

# uvicorn's --fd assumes a Unix socket, so serve an inherited TCP socket through its Python API.
# Several workers share the socket under uvicorn's own process supervisor, as deployments run.
_SERVE = """
import socket, sys, uvicorn
from uvicorn.supervisors import Multiprocess
sock = socket.socket(fileno=int(sys.argv[1]))
workers = int(sys.argv[2])
config = uvicorn.Config("pims.application:app", log_level="info", access_log=False,
                        workers=workers)
server = uvicorn.Server(config)
if workers > 1:
    Multiprocess(config, target=server.run, sockets=[sock]).run()
else:
    server.run(sockets=[sock])
"""


class RealPims(Service):
    """The real PIMS serving ``images`` on ``127.0.0.1`` from a temporary ROOT.

    Use as a context manager; ``path(image)`` gives the PIMS path of an image (what follows the
    host in ``pims+http://127.0.0.1:PORT/<path>``), ``uri(image)`` the whole URI. ``settings``
    overrides PIMS settings (environment-variable names, e.g. ``{"OUTPUT_SIZE_LIMIT": "512"}``);
    ``workers`` is the number of uvicorn worker processes.
    """

    def __init__(
        self,
        images: Iterable[Path | str],
        *,
        venv: Path | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        workers: int = 1,
    ) -> None:
        self.images = [Path(image).absolute() for image in images]
        names = [image.name for image in self.images]
        if len(set(names)) != len(names):
            raise ValueError(f"image file names must be unique, got {names}")
        self._venv = venv
        self._extra_settings = dict(settings or {})
        self._startup_timeout = startup_timeout
        #: uvicorn worker processes serving PIMS.
        self.workers = workers
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paths: dict[str, str] = {}
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        venv = ensure_pims_venv(self._venv)
        self._tmp = tempfile.TemporaryDirectory(prefix="lablink-pims-")
        workdir = Path(self._tmp.name)
        try:
            sock = socket.create_server((HOST, 0))
            self.port = sock.getsockname()[1]
            env = self._environment(workdir)
            self._paths = self._import(venv, workdir, env)
            self._serve(venv, workdir, env, sock)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL of its process group) and delete ROOT."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- what tests use -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def root(self) -> Path:
        return self._workdir / "root"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    @property
    def paths(self) -> dict[str, str]:
        """Source file name -> PIMS path (``upload-<uuid>/<name>``)."""
        return dict(self._paths)

    def path(self, image: Path | str) -> str:
        return self._paths[Path(image).name]

    def uri(self, image: Path | str) -> str:
        return f"pims+http://{HOST}:{self.port}/{self.path(image)}"

    def log(self) -> str:
        """What the server printed so far (for failure messages)."""
        log = self._workdir / "server.log"
        return log.read_text(errors="replace") if log.exists() else ""

    # -- steps ----------------------------------------------------------------------------

    @property
    def _workdir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("the PIMS server is not running; use it in a `with` block")
        return Path(self._tmp.name)

    def _environment(self, workdir: Path) -> dict[str, str]:
        folders = {name: workdir / name for name in ("root", "pending", "writing", "staging")}
        for folder in folders.values():
            folder.mkdir()
        settings = {
            "ROOT": str(folders["root"]),
            "PENDING_PATH": str(folders["pending"]),
            "WRITING_PATH": str(folders["writing"]),
            "PIMS_URL": self.base_url,
            "CACHE_ENABLED": "false",
            "CACHE_URL": "redis://127.0.0.1:9",
            "TASK_QUEUE_ENABLED": "false",
            "TASK_QUEUE_URL": "127.0.0.1:9",
            # Required by PIMS's settings; only used to call a Cytomine core, which we never do.
            "CYTOMINE_PUBLIC_KEY": "standalone",
            "CYTOMINE_PRIVATE_KEY": "standalone",
            "CHECKER_RESOLUTION_FILE": str(workdir / "checkerResolution.csv"),
            **self._extra_settings,
        }
        config = workdir / "pims-config.env"
        config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return pims_environment({**settings, "CONFIG_FILE": str(config)})

    def _import(self, venv: Path, workdir: Path, env: dict[str, str]) -> dict[str, str]:
        staging = workdir / "staging"
        for image in self.images:
            if not image.is_file():
                raise FileNotFoundError(f"no image file at {image}")
            (staging / image.name).symlink_to(image)
        result = subprocess.run(
            [
                str(venv_python(venv)),
                "-m",
                "pims.importer.import_local_images",
                "--path",
                str(staging),
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        output = (result.stdout + result.stderr).strip()
        root = workdir / "root"
        paths: dict[str, str] = {}
        for image in self.images:
            # The importer swallows errors, so a missing upload folder is how a failure shows.
            found = sorted(root.glob(f"upload-*/{image.name}"))
            if len(found) != 1 or result.returncode != 0:
                tail = "\n".join(output.splitlines()[-30:])
                raise PimsSetupError(f"PIMS's importer did not import {image.name}:\n{tail}")
            paths[image.name] = found[0].relative_to(root).as_posix()
        return paths

    def _serve(self, venv: Path, workdir: Path, env: dict[str, str], sock: socket.socket) -> None:
        with sock, (workdir / "server.log").open("wb") as log:
            self._process = subprocess.Popen(
                [str(venv_python(venv)), "-c", _SERVE, str(sock.fileno()), str(self.workers)],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                start_new_session=True,
            )
        # Our copy of the socket is closed now: once the server exits, connections are refused
        # instead of queueing forever.

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while True:
                if self._process is None or self._process.poll() is not None:
                    raise PimsSetupError(f"PIMS exited during startup:\n{self.log()[-4000:]}")
                try:
                    if client.get("/info").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise PimsSetupError(
                        f"PIMS did not answer on {self.base_url} within "
                        f"{self._startup_timeout:.0f} s:\n{self.log()[-4000:]}"
                    )
                time.sleep(0.2)
