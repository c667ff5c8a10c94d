"""What the widget screenshot scripts in docs/ share: profiles kept out of the user's own
servers.toml, and waiting on napari's event loop."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def use_temporary_profiles() -> None:
    """Profiles saved from now on go to a fresh servers.toml, never to the user's own."""
    os.environ["LABLINK_CONFIG"] = str(Path(tempfile.mkdtemp()) / "servers.toml")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Run the event loop until ``condition()`` holds; exit saying ``what`` never came."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")


def settle(turns: int = 50) -> None:
    """Let napari draw what has arrived."""
    from qtpy.QtWidgets import QApplication

    for _ in range(turns):
        QApplication.processEvents()
        time.sleep(0.02)
