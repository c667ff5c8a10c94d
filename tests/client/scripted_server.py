"""A loopback HTTP server that answers from a script, for transport tests.

Transport behaviour (retries, Retry-After, dropped connections, redirects, which headers reach
which host) is tested over real HTTP; the script only decides what the server says.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from napari_lablink.testing._http import LoopbackHTTPServer, QuietHandler, ServerThread

DROP = "drop"


@dataclass
class Reply:
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    def __init__(self) -> None:
        self.script: deque[Reply | str] = deque()
        self.default = Reply()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                body = self.read_body()
                with outer._lock:
                    outer.seen.append(
                        Seen(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = outer.script.popleft() if outer.script else outer.default
                if reply == DROP:
                    self.drop_connection()
                    return
                assert isinstance(reply, Reply)
                time.sleep(reply.delay)
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                kind = (
                    "application/octet-stream"
                    if isinstance(reply.body, bytes)
                    else "application/json"
                )
                self.send_bytes(reply.status, payload, kind, reply.headers)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _any

        self._thread = ServerThread(LoopbackHTTPServer("127.0.0.1", 0, Handler), "scripted")
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._thread.port}"

    def stop(self) -> None:
        self._thread.stop()
