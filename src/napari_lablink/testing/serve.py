"""``napari-lablink serve mikro``: run the stand-in mikro server in the foreground.

Prints one JSON line (endpoints, token, ready-to-open URIs) so scripts and the demo can read
where everything is, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

from napari_lablink.testing.mikro.server import MikroStandIn


def serve_mikro(port: int = 0, demo: bool = False) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with MikroStandIn(port=port) as stand_in:
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
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
