"""Opening all channels of a 40-channel 1024 x 1024 MIBItracker image: the plugin versus the
reference client's approach, on the same stand-in tracker in the same run.

The baseline is what Ionpath's reference client does for each channel, one after another over
one session: ``GET images/{id}/channel_url/``, GET the signed URL, decode the PNG (with the same
decoder as the plugin, so only the access pattern differs). The plugin opens the image
(metadata only) and computes its lazy channel stack, whose chunks dask fetches concurrently.
Both sides log in before timing, and the stand-in's PNGs are encoded once before either side is
timed. The stand-in runs in its own process, as a real server would, so that the client's
threads do not compete with the server's for one GIL. Prints BENCH lines (benchmarks/_bench.py).

Two settings: loopback, where decoding the PNGs on the client's cores dominates, and every
request answered after a delay (``--latency``, 20 ms by default), as from a tracker across a
network, where waiting dominates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import httpx
import imagecodecs
import numpy as np

import napari_lablink

try:
    from ._bench import bench, best_of
except ImportError:
    from _bench import bench, best_of

SERVER = """
import json, sys
import numpy as np
from napari_lablink.testing.tracker.server import TrackerStandIn
channels, size, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rng = np.random.default_rng(0)
# Sparse counts as ion images have them: mostly 0-2 counts, a few bright cells.
cells = rng.random((size, size)) < 0.02
with TrackerStandIn() as tracker:
    run = tracker.add_run("BENCH-RUN", "bench run")
    data = {}
    for index in range(channels):
        rate = np.where(np.roll(cells, index * 7, axis=1), 8.0 + index % 5, 0.2)
        data[f"T{index:02d}"] = (100 + index, rng.poisson(rate).astype(np.uint16))
    image_id = tracker.add_image(run, "FOV1", data, 800.0)
    if latency:
        tracker.faults.kinds, tracker.faults.slow_seconds = ["slow"], latency
        tracker.faults.rate = 1.0
    print(json.dumps({"base": tracker.base_url, "port": tracker.port, "id": image_id,
                      "email": tracker.email, "password": tracker.password,
                      "token": tracker.issue_token()}), flush=True)
    sys.stdin.read()
"""


class RemoteTracker:
    """The stand-in in a subprocess; it stops when its stdin closes."""

    def __init__(self, channels: int, size: int, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(channels), str(size), str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def reference_loop(session: httpx.Client, image_id: int) -> np.ndarray:
    """The reference client's way: list the channels, then each one after another."""
    names = session.get(f"/images/{image_id}/").raise_for_status().json()["pngs"]
    planes = []
    for name in names:
        url = session.get(f"/images/{image_id}/channel_url/", params={"channel": name})
        response = session.get(url.raise_for_status().json()["url"], timeout=30)
        planes.append(imagecodecs.png_decode(response.raise_for_status().content))
    return np.stack(planes)


def measure(channels: int, size: int, latency: float, repeat: int) -> tuple[float, float]:
    """(plugin, baseline) seconds to get every channel of the image."""
    remote = RemoteTracker(channels, size, latency)
    info = remote.info
    headers = {"Authorization": f"JWT {info['token']}"}
    try:
        with (
            httpx.Client(base_url=info["base"], headers=headers, timeout=10) as session,
            napari_lablink.connect(
                f"mibi+http://127.0.0.1:{info['port']}",
                email=info["email"],
                password=info["password"],
            ) as server,
        ):
            expected = reference_loop(session, info["id"])  # also encodes every PNG once

            def plugin() -> np.ndarray:
                server.channels.forget()  # a cold read every time, like the reference's
                return server.get(f"images/{info['id']}").levels[0].compute()

            np.testing.assert_array_equal(plugin(), expected)
            baseline = best_of(lambda: reference_loop(session, info["id"]), repeat)
            value = best_of(plugin, repeat)
    finally:
        remote.close()
    return value, baseline


#: Opens one image four times in a fresh process, reads every channel of each open and prints
#: how much the process's resident memory grew (VmRSS, after dropping the arrays) in MiB.
_CACHE_CLIENT = """
import gc, json, re, sys
import napari_lablink

def rss_mib():
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

info = json.loads(sys.argv[1])
with napari_lablink.connect(f"mibi+http://127.0.0.1:{info['port']}", email=info["email"],
                            password=info["password"]) as server:
    server.get(f"images/{info['id']}")  # warm: imports, session
    before = rss_mib()
    opens = [server.get(f"images/{info['id']}") for _ in range(4)]
    for image in opens:
        image.levels[0].compute()
    del opens, image
    gc.collect()
    print(json.dumps({"grown": rss_mib() - before, "kept": server.channels.nbytes / 2**20}))
"""


def cache_memory(channels: int, size: int) -> tuple[float, float]:
    """(RSS growth, one FOV) in MiB after four opens of one image each read in full."""
    remote = RemoteTracker(channels, size, 0.0)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CACHE_CLIENT, json.dumps(remote.info)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        remote.close()
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"# channel cache holds {measured['kept']:.0f} MiB")
    return measured["grown"], channels * size * size * 2 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--cache-size", type=int, default=2048, help="side of the cache's FOV")
    args = parser.parse_args()
    # ratio = plugin / baseline as _bench.bench prints it: below 0.25 means >= 4x faster.
    for name, latency in (("", 0.0), (f"_{args.latency * 1e3:g}ms_latency", args.latency)):
        value, baseline = measure(args.channels, args.size, latency, args.repeat)
        bench(f"tracker_open_all_channels{name}", value * 1e3, "ms", baseline * 1e3)
        print(f"# speed-up {baseline / value:.2f}x ({args.channels} channels of {args.size}^2)")
    grown, fov = cache_memory(args.channels, args.cache_size)
    bench("tracker_cache_rss_after_4_opens", grown, "MiB", fov)


if __name__ == "__main__":
    main()
