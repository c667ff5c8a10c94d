"""``napari-lablink serve arkitekt``: stand-in Arkitekt deployments in front of stand-in mikro.

Two deployments share one lok signing key and one mikro stand-in (both generations, one S3): a
G2b deployment granting the generation-2 mikro, and a G1 deployment granting the generation-1
mikro. mikro accepts only tokens lok signed. The printed JSON line names the deployments, the
test route that approves a code, and (with ``--demo``) image URIs on the deployments' hosts,
without token or S3 endpoint: logging in supplies both.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import ExitStack
from typing import Any, TextIO

from napari_lablink.testing.arkitekt.server import ArkitektStandIn
from napari_lablink.testing.arkitekt.tokens import GEN1_REQUIRED_CLAIMS, JWTVerifier, SigningKey
from napari_lablink.testing.mikro.server import MikroStandIn

__all__ = ["serve_arkitekt"]


def _token_check(key: SigningKey) -> Any:
    gen2 = JWTVerifier({key.kid: key.public_key})
    gen1 = JWTVerifier(keyless=key.public_key, required_claims=GEN1_REQUIRED_CLAIMS)

    def check(generation: str, authorization: str | None) -> str | None:
        return (gen2 if generation == "gen2" else gen1).problem(authorization)

    return check


def serve_arkitekt(
    port: int = 0,
    demo: bool = False,
    *,
    auto_approve: bool = False,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set); returns the exit status.

    ``port`` is the G2b deployment's; everything else takes free ports.
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    key = SigningKey()
    with ExitStack() as running:
        mikro = running.enter_context(MikroStandIn(token_check=_token_check(key)))
        gen2 = running.enter_context(
            ArkitektStandIn(
                shape="G2b",
                port=port,
                mikro_url=f"{mikro.base_url}/{mikro.gen2_prefix}",
                s3_url=mikro.s3_endpoint,
                signing_key=key,
                auto_approve=auto_approve,
            )
        )
        gen1_mikro = f"{mikro.base_url}/{mikro.gen1_prefix}".rstrip("/")
        gen1 = running.enter_context(
            ArkitektStandIn(
                shape="G1",
                mikro_url=gen1_mikro,
                s3_url=mikro.s3_endpoint,
                signing_key=key,
                auto_approve=auto_approve,
            )
        )
        uris: dict[str, str] = {}
        if demo:
            for name, id in mikro.seed_demo().items():
                if name.endswith("_gen1"):
                    uris[name] = f"mikro+{gen1.url}/representation/{id}"
                else:
                    uris[name] = f"mikro+{gen2.url}/image/{id}"
        info: dict[str, Any] = {
            "server": "arkitekt",
            "deployment": gen2.url,
            "approve": gen2.approve_route,
            "auto_approve": auto_approve,
            "deployments": {
                "gen2": {"url": gen2.url, "shape": gen2.shape, "approve": gen2.approve_route},
                "gen1": {"url": gen1.url, "shape": gen1.shape, "approve": gen1.approve_route},
            },
            "uris": uris,
        }
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
        print(json.dumps(info), file=out, flush=True)
        stop.wait()
    return 0
