"""``napari-lablink serve mikro|tracker``: run a stand-in server in the foreground.

Each prints one JSON line (endpoints, login, and with ``--demo`` ready-to-open URIs) so a person
can paste the URIs into napari and a script can parse the line, then serves until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from napari_lablink.testing.faults import parse_spec
from napari_lablink.testing.mikro.server import MikroStandIn
from napari_lablink.testing.tracker.server import TrackerStandIn

__all__ = ["demo_uris", "serve_mikro", "serve_tracker"]


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of raising, so the stand-in shuts down cleanly.

    Only the main thread may install signal handlers; elsewhere (a test) ``stop`` alone ends it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve_mikro(port: int = 0, demo: bool = False, faults: str = "") -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status.

    ``faults`` (``"503=0.1,drop=0.1,slow=0.1,lost=0.1"``) makes GraphQL and S3 misbehave that
    often, after the demo data is seeded.
    """
    rates = parse_spec(faults)
    stop = threading.Event()
    with _stop_on_signals(stop), MikroStandIn(port=port) as stand_in:
        uris: dict[str, str] = {}
        if demo:
            for name, id in stand_in.seed_demo().items():
                gen1 = name.endswith("_gen1")
                uris[name] = stand_in.representation_uri(id) if gen1 else stand_in.image_uri(id)
        line = {
            "graphql": {"gen1": stand_in.gen1_graphql_url, "gen2": stand_in.gen2_graphql_url},
            "s3": stand_in.s3_endpoint,
            "token": stand_in.token,
            "uris": uris,
        }
        if rates:
            line["faults"] = rates
        stand_in.faults.rates = rates
        stand_in.s3.faults.rates = rates
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


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
    faults: str = "",
) -> int:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set); returns the exit status.

    ``size`` is the demo FOVs' width in pixels (512 or 1024 are typical); ``faults`` as for
    :func:`serve_mikro`.
    """
    rates = parse_spec(faults)
    out = out or sys.stdout
    stop = stop or threading.Event()
    with _stop_on_signals(stop), TrackerStandIn(port=port) as standin:
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
        if rates:
            info["faults"] = rates
        standin.faults.rates = rates
        print(json.dumps(info), file=out, flush=True)
        stop.wait()
    return 0
