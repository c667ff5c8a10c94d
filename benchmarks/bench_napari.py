"""How long napari's Qt thread stalls while the plugin opens and slices remote images.

Run under a display (``xvfb-run -a python benchmarks/bench_napari.py``). The demo's stand-in
servers run in a subprocess, as real servers would, so their work does not count as a stall. A
heartbeat QTimer ticks every 5 ms; the longest gap between ticks is the longest stall.

- ``napari_open_blocked_ms``: longest stall while each demo image opens (worst image), against
  adding an in-memory array of the same shape.
- ``napari_slider_blocked_ms``: longest stall while the z slider steps 20 times through the 3-D
  cells, against the same with an in-memory copy (and again with napari's asynchronous slicing).
- ``napari_slider_blocked_far_server_ms``: the same with every S3 GET answering after 80 ms,
  stepping from the middle plane to the last, with the planes beside the shown one read ahead,
  against the same with napari's dask cache off (nothing can be read ahead).
- ``napari_open_to_pixels_ms``: cold open of the tissue image until the canvas has drawn the
  first plane of every channel that opens visible, against plain zarr reading that plane (every
  channel) from the same store. The time until every layer is in and napari has settled is
  printed as a comment after it.
- ``napari_dead_server_slider_blocked_ms``: longest stall while the z slider steps 20 times
  through the 3-D cells after the servers' process was killed, against the in-memory slider.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from ._bench import bench, grant_store
except ImportError:
    from _bench import bench, grant_store

_SERVERS = """
import json, sys
from napari_lablink.testing import MikroStandIn, TrackerStandIn
with MikroStandIn() as mikro, TrackerStandIn() as tracker:
    ids = mikro.seed_demo()
    fov = tracker.seed_demo(size=512, fovs=1)["images"][0]["id"]
    print(json.dumps({
        "token": mikro.token, "s3": mikro.s3_endpoint, "graphql": mikro.gen2_graphql_url,
        "email": tracker.email, "password": tracker.password,
        "store": mikro.state.images[ids["tissue_pyramid"]].store,
        "uris": {
            "cells": mikro.representation_uri(ids["cells_gen1"]),
            "nuclei": mikro.representation_uri(ids["nuclei_labels_gen1"]),
            "tissue": mikro.image_uri(ids["tissue_pyramid"]),
            "tracker": f"mibi+{tracker.base_url}/images/{fov}",
        },
    }), flush=True)
    for line in sys.stdin:  # "slow SECONDS": every S3 GET answers that late; "fast": at once
        words = line.split()
        if words[:1] == ["slow"]:
            mikro.s3.faults.slow_seconds = float(words[1])
            mikro.s3.faults.methods = ["GET"]
            mikro.s3.faults.rates = {"slow": 1.0}
        elif words[:1] == ["fast"]:
            mikro.s3.faults.rates = {}
"""

#: How late every S3 GET answers for the far-server slider.
FAR_SERVER_SECONDS = 0.08

ACCESS = """mutation A($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) { accessKey secretKey sessionToken bucket key } }"""


class Heartbeat:
    """The longest gap between ticks of a 5 ms QTimer while :meth:`measure` runs ``action``.

    Python's garbage collector stops every thread for a full collection (~0.2 s over napari's
    half a million objects), wherever an allocation happens to trigger it; ``worst_gc`` is how
    much of the longest gap was collection, so a reader can tell it from the plugin's work.
    """

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0
        self.worst_gc = 0.0
        self._gc = 0.0  # collection time since the last tick
        self._gc_start = 0.0
        gc.callbacks.append(self._collecting)

    def _collecting(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self._gc += time.perf_counter() - self._gc_start

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self.last > self.worst:
            self.worst, self.worst_gc = now - self.last, self._gc
        self.last, self._gc = now, 0.0

    def measure(self, action: Callable[[], object], until: Callable[[], bool]) -> float:
        from qtpy.QtWidgets import QApplication

        self.worst, self.worst_gc, self._gc = 0.0, 0.0, 0.0
        self.last = time.perf_counter()
        self.timer.start()
        action()
        self._tick()
        while not until():
            QApplication.processEvents()
            time.sleep(0.001)
        for _ in range(20):  # let napari draw what arrived
            QApplication.processEvents()
            time.sleep(0.005)
        self.timer.stop()
        return self.worst * 1e3


def main(only: str | None = None) -> None:
    """Every measurement, or with ``only="open-to-pixels"`` that one alone."""
    import os

    import napari
    from napari.settings import get_settings
    from napari.utils import resize_dask_cache

    from napari_lablink._napari.opening import pending_opens, wait_for_opens
    from napari_lablink._napari.prefetch import pending_prefetch
    from napari_lablink.client.connection import _shared

    servers = subprocess.Popen(
        [sys.executable, "-c", _SERVERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    info = json.loads(servers.stdout.readline())
    os.environ.update(
        LABLINK_TOKEN=info["token"],
        LABLINK_MIBI_EMAIL=info["email"],
        LABLINK_MIBI_PASSWORD=info["password"],
    )
    settings = get_settings()
    was_async = settings.experimental.async_
    settings.experimental.async_ = False
    viewer = napari.Viewer(show=True)
    beat = Heartbeat()
    # napari's first layer pays one-time costs (unit registry, shaders) that are not the plugin's.
    beat.measure(lambda: viewer.add_image(np.zeros((64, 64), np.uint16)), lambda: True)
    try:
        if only == "open-to-pixels":
            # Untimed: the first open imports and warms what the full run's earlier opens would.
            viewer.open(info["uris"]["tissue"], plugin="napari-lablink")
            wait_for_opens(120)
            _open_to_pixels(viewer, info)
            return
        # Opening: every demo image, cold, against an in-memory array of the same shape.
        worst_open, worst_local, shapes = 0.0, 0.0, {}
        for name, uri in info["uris"].items():
            _shared.close_all()
            viewer.layers.clear()
            stall = beat.measure(
                lambda uri=uri: viewer.open(uri, plugin="napari-lablink"),
                lambda: not pending_opens(),
            )
            shapes[name] = [layer.data.shape for layer in viewer.layers if not layer.multiscale]
            print(
                f"# open {name}: {len(viewer.layers)} layers, stall {stall:.0f} ms"
                f" ({beat.worst_gc * 1e3:.0f} ms of it garbage collection)",
                flush=True,
            )
            worst_open = max(worst_open, stall)
            arrays = [np.zeros(s, dtype=np.uint16) for s in shapes[name]]
            if arrays:  # napari's own cost of one layer: the floor for any single stall
                viewer.layers.clear()
                one = beat.measure(lambda a=arrays[0]: viewer.add_image(a), lambda: True)
                print(f"# napari adding one in-memory layer of {name}: {one:.0f} ms", flush=True)
            viewer.layers.clear()
            local = beat.measure(
                lambda arrays=arrays: [viewer.add_image(a) for a in arrays], lambda: True
            )
            worst_local = max(worst_local, local)
        bench("napari_open_blocked_ms", worst_open, "ms", worst_local)

        # The z slider through the 3-D cells, remote (sync and async slicing) and in memory.
        def slider_stall() -> float:
            steps = viewer.dims.nsteps[0]
            return max(
                beat.measure(lambda i=i: viewer.dims.set_current_step(0, i % steps), lambda: True)
                for i in range(1, 21)
            )

        viewer.layers.clear()
        viewer.open(info["uris"]["cells"], plugin="napari-lablink")
        wait_for_opens(120)
        copies = [np.asarray(layer.data) for layer in viewer.layers]
        remote = slider_stall()
        settings.experimental.async_ = True
        remote_async = slider_stall()
        settings.experimental.async_ = False
        viewer.layers.clear()
        for copy in copies:
            viewer.add_image(copy)
        local = slider_stall()
        bench("napari_slider_blocked_ms", remote, "ms", local)
        bench("napari_slider_blocked_async_ms", remote_async, "ms", local)

        # A far server (every S3 GET answers after 80 ms): each step of the z slider from the
        # middle plane to the last, with the planes beside the shown one read ahead, against
        # the same with napari's dask cache off (nowhere to read ahead into).
        def far_slider(read_ahead: bool) -> float:
            _shared.close_all()
            viewer.layers.clear()
            size = resize_dask_cache().cache.available_bytes
            resize_dask_cache(0)  # emptied either way
            if read_ahead:
                resize_dask_cache(size)
            try:
                viewer.open(info["uris"]["cells"], plugin="napari-lablink")
                wait_for_opens(120)
                first, steps = viewer.dims.current_step[0] + 1, viewer.dims.nsteps[0]
                return max(
                    beat.measure(
                        lambda z=z: viewer.dims.set_current_step(0, z),
                        lambda: not pending_prefetch(),
                    )
                    for z in range(first, steps)
                )
            finally:
                resize_dask_cache(size)

        servers.stdin.write(f"slow {FAR_SERVER_SECONDS}\n")
        servers.stdin.flush()
        far = far_slider(read_ahead=True)
        far_without = far_slider(read_ahead=False)
        servers.stdin.write("fast\n")
        servers.stdin.flush()
        bench("napari_slider_blocked_far_server_ms", far, "ms", far_without)

        _open_to_pixels(viewer, info)

        # The z slider through the 3-D cells after their server died (killed, as a crash would):
        # the first step finds the outage, the others must not wait on the network.
        viewer.layers.clear()
        viewer.open(info["uris"]["cells"], plugin="napari-lablink")
        wait_for_opens(120)
        servers.kill()
        servers.wait(timeout=60)
        resize_dask_cache(0)  # every step reads, as with planes never seen before
        dead = slider_stall()
        bench("napari_dead_server_slider_blocked_ms", dead, "ms", local)
    finally:
        settings.experimental.async_ = was_async
        viewer.close()
        if servers.poll() is None:
            servers.stdin.close()
            servers.wait(timeout=60)


def _open_to_pixels(viewer: Any, info: dict[str, Any]) -> None:
    """The tissue image opened cold until its first plane is drawn, against plain zarr."""
    import httpx
    import zarr
    from qtpy.QtWidgets import QApplication

    from napari_lablink._napari.opening import wait_for_opens
    from napari_lablink.client.connection import _shared

    scene = viewer.window._qt_viewer.canvas._scene_canvas
    draws: list[tuple[float, int]] = []  # when the canvas drew, and how many planes it had

    def on_draw(_event: object) -> None:
        shown = sum(
            1 for layer in viewer.layers if layer.visible and layer._slice.image.view.size > 0
        )
        draws.append((time.perf_counter(), shown))

    def open_to_pixels() -> tuple[float, float]:
        _shared.close_all()
        viewer.layers.clear()
        draws.clear()
        start = time.perf_counter()
        viewer.open(info["uris"]["tissue"], plugin="napari-lablink")
        wait_for_opens(120)
        settled = time.perf_counter() - start
        visible = [layer for layer in viewer.layers if layer.visible]
        assert visible and all(layer._slice.image.view.size > 0 for layer in visible)
        drawn = next(t for t, shown in draws if shown >= len(visible))
        return drawn - start, settled

    def plain_plane() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        grant = httpx.post(
            info["graphql"],
            json={"query": ACCESS, "variables": {"input": {"storeId": info["store"]}}},
            headers={"Authorization": f"Bearer {info['token']}"},
        ).json()["data"]["requestZarrAccess"]
        array = zarr.open_array(
            grant_store(grant, info["s3"], read_only=True), mode="r", zarr_format=3
        )
        plane = array[:, 0, array.shape[2] // 2]
        return time.perf_counter() - start, plane

    def memory_to_pixels(plane: np.ndarray) -> float:
        """napari alone: the same plane, already in memory, until every channel is drawn."""
        viewer.layers.clear()
        draws.clear()
        start = time.perf_counter()
        viewer.add_image(plane, channel_axis=0)
        while not any(shown >= len(plane) for _, shown in draws):
            QApplication.processEvents()
            time.sleep(0.001)
        return next(t for t, shown in draws if shown >= len(plane)) - start

    scene.events.draw.connect(on_draw)
    try:
        drawn, settled = np.median([open_to_pixels() for _ in range(3)], axis=0)
    finally:
        scene.events.draw.disconnect(on_draw)
    plain = [plain_plane() for _ in range(3)]
    baseline = float(np.median([seconds for seconds, _ in plain]))
    scene.events.draw.connect(on_draw)
    try:
        napari_alone = float(np.median([memory_to_pixels(plain[0][1]) for _ in range(3)]))
    finally:
        scene.events.draw.disconnect(on_draw)
    bench("napari_open_to_pixels_ms", drawn * 1e3, "ms", baseline * 1e3)
    print(f"# open to every layer in and napari settled: {settled * 1e3:.0f} ms", flush=True)
    print(
        f"# napari showing the same plane ({len(plain[0][1])} channels) from memory:"
        f" {napari_alone * 1e3:.0f} ms",
        flush=True,
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=["open-to-pixels"], help="run this measurement alone")
    main(parser.parse_args().only)
