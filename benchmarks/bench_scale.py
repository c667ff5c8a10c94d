"""Growth with size and past one machine: opening a 1 TiB image, and a max projection of a
1 GiB image on a dask.distributed cluster against dask's local threads.

Opening is timed on two metadata-only images (every chunk the fill value), 1 TiB and 1 GiB: the
ratio shows what the image's size adds to an open. The distributed figure runs a real
``LocalCluster`` of two worker processes against the stand-in (in its own process); the
baseline is the same computation on dask's threaded scheduler in this process. On one machine
the cluster cannot be faster (same cores, plus pickling); the ratio is what going distributed
costs. Prints BENCH lines (see benchmarks/_bench.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import dask
import numpy as np

import napari_lablink

try:
    from ._bench import bench, best_of
except ImportError:
    from _bench import bench, best_of

#: The stand-in with a seeded 1 GiB image and two empty (metadata-only) ones.
_SERVER = """
import json, sys, numpy as np, zarr
from napari_lablink.testing import MikroStandIn

def empty(mikro, shape):
    backend = mikro._backend
    store = backend.new_store(shape, (1, 1, 1, 1024, 1024), "3")
    zarr.create_array(mikro.s3.zarr_store(store.s3_bucket, store.key), shape=shape,
                      chunks=(1, 1, 1, 1024, 1024), dtype=np.uint16, fill_value=0,
                      dimension_names=list("ctzyx"))
    return backend.register_image(store.id, name="empty", tags=(), channel_views=(),
                                  transformation_views=(), scale_views=()).id

with MikroStandIn() as mikro:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4096, size=(1, 1, 128, 2048, 2048), dtype=np.uint16)
    full = mikro.add_image(data, "1 GiB", chunks=(1, 1, 1, 1024, 1024))
    info = {"token": mikro.token, "authority": mikro.uri_authority, "s3": mikro.s3_endpoint,
            "full": mikro.image_uri(full), "max": int(data.max(axis=2).sum()),
            "tib": mikro.image_uri(empty(mikro, (1, 1, 512, 32768, 32768))),
            "gib": mikro.image_uri(empty(mikro, (1, 1, 128, 2048, 2048)))}
    del data
    print(json.dumps(info), flush=True)
    sys.stdin.read()
"""


def main() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        info = json.loads(process.stdout.readline())
        url = f"mikro+http://{info['authority']}/mikro"
        with napari_lablink.connect(url, token=info["token"], s3=info["s3"]) as server:
            server.get(info["gib"])  # warm: imports, connection, first grant
            tib = best_of(lambda: server.get(info["tib"]), 5)
            gib = best_of(lambda: server.get(info["gib"]), 5)
            bench("open_1tib_ms", tib * 1e3, "ms", gib * 1e3)

            level = server.get(info["full"]).levels[0]

            def projection() -> None:
                assert int(level.max(axis=2).sum().compute()) == info["max"]

            with dask.config.set(scheduler="threads"):
                local = best_of(projection, 3)
            from distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster),
            ):
                projection()  # warm: workers import, open their sessions and stores
                distributed = best_of(projection, 3)
            bench("distributed_max_projection_1gib", distributed, "s", local)
    finally:
        process.stdin.close()
        process.wait(timeout=120)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
