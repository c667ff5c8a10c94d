"""Shared helpers of the benchmark scripts: timing and the BENCH line format."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from obstore.store import S3Store
from zarr.storage import ObjectStore


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of ``repeat`` runs, in seconds (the median resists one noisy run)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, value: float, unit: str, baseline: float) -> None:
    """Print one ``BENCH`` line; ratio = value / baseline."""
    ratio = value / baseline if baseline else float("nan")
    print(f"BENCH {name} {value:.4g} {unit} baseline={baseline:.4g} ratio={ratio:.3f}", flush=True)


#: The stand-in mikro server in its own process, as a real server would be: the client's threads
#: then do not compete with the server's for one GIL. Optionally seeded with one image.
_SERVER = """
import json, sys, numpy as np
from napari_lablink.testing import MikroStandIn
z = int(sys.argv[1])
with MikroStandIn() as mikro:
    info = {"token": mikro.token, "graphql": mikro.gen2_graphql_url, "s3": mikro.s3_endpoint,
            "authority": mikro.uri_authority}
    if z:
        shape = (1, 1, z, 2048, 2048)
        data = np.random.default_rng(0).integers(0, 4096, size=shape, dtype=np.uint16)
        image_id = mikro.add_image(data, "bench", chunks=(1, 1, 1, 512, 512))
        info.update(uri=mikro.image_uri(image_id), store=mikro.state.images[image_id].store)
    print(json.dumps(info), flush=True)
    sys.stdin.read()
"""


class RemoteMikro:
    """``napari_lablink.testing.MikroStandIn`` in a subprocess; ``seed_z`` 2048x2048 planes."""

    def __init__(self, seed_z: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(seed_z)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        info = json.loads(self.process.stdout.readline())
        self.token, self.s3_endpoint = info["token"], info["s3"]
        self.gen2_graphql_url, self.uri_authority = info["graphql"], info["authority"]
        self.uri, self.store = info.get("uri"), info.get("store")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def grant_store(grant: Mapping[str, Any], endpoint: str, *, read_only: bool) -> ObjectStore:
    """Plain zarr's store for a mikro grant: what the baselines read and write through."""
    s3 = S3Store(
        grant["bucket"],
        prefix=grant["key"],
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=grant["accessKey"],
        secret_access_key=grant["secretKey"],
        token=grant["sessionToken"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    return ObjectStore(s3, read_only=read_only)
