"""Run the stand-in MIBItracker from the command line (``napari-lablink serve tracker``).

It prints one JSON line (base URL, login, and with ``--demo`` the URIs of the demo images) so a
person can paste the URIs into napari and a script can parse the line, then serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any, TextIO

from napari_lablink.testing.tracker_server import TrackerStandIn

__all__ = ["demo_uris", "serve_tracker"]


def demo_uris(standin: TrackerStandIn, demo: dict[str, Any]) -> list[str]:
    """``mibi+http://`` URIs of the demo images, by id and by run label and FOV."""
    authority = standin.base_url.removeprefix("http://")
    label = demo["run"]["label"]
    by_id = [f"mibi+http://{authority}/images/{image['id']}" for image in demo["images"]]
    by_fov = [f"mibi+http://{authority}/runs/{label}/{image['number']}" for image in demo["images"]]
    return by_id + by_fov


def serve_tracker(
    port: int = 0,
    demo: bool = False,
    *,
    size: int = 512,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set); returns the exit status.

    ``size`` is the demo FOVs' width in pixels (512 or 1024 are typical).
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    with TrackerStandIn(port=port) as standin:
        info: dict[str, Any] = {
            "server": "tracker",
            "base_url": standin.base_url,
            "email": standin.email,
            "password": standin.password,
        }
        if demo:
            seeded = standin.seed_demo(size=size)
            info["run_label"] = seeded["run"]["label"]
            info["images"] = demo_uris(standin, seeded)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
        print(json.dumps(info), file=out, flush=True)
        stop.wait()
    return 0
