"""Opening and reading a mikro image: the plugin versus plain zarr on the same S3 store.

Both sides read the same generation-2 image from the stand-in (moto behind its S3 gateway) with
credentials from the same server; the baseline is zarr + obstore given a grant, which is the raw
operation the plugin wraps. Prints BENCH lines (see benchmarks/_bench.py).
"""

from __future__ import annotations

import argparse

import httpx
import numpy as np
import zarr

import napari_lablink
from napari_lablink.client.connection import _shared

try:
    from ._bench import RemoteMikro, bench, best_of, grant_store
except ImportError:
    from _bench import RemoteMikro, bench, best_of, grant_store

ACCESS = """mutation A($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) { accessKey secretKey sessionToken bucket key } }"""


def plain_zarr_array(mikro: RemoteMikro, store_id: str) -> zarr.Array:
    grant = httpx.post(
        mikro.gen2_graphql_url,
        json={"query": ACCESS, "variables": {"input": {"storeId": store_id}}},
        headers={"Authorization": f"Bearer {mikro.token}"},
    ).json()["data"]["requestZarrAccess"]
    return zarr.open_array(
        grant_store(grant, mikro.s3_endpoint, read_only=True), mode="r", zarr_format=3
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--mib", type=int, default=256, help="image size in MiB (>= 256 for the issue)"
    )
    args = parser.parse_args()
    z = max(1, args.mib * 2**20 // (2048 * 2048 * 2))
    data = np.random.default_rng(0).integers(0, 4096, size=(1, 1, z, 2048, 2048), dtype=np.uint16)
    mikro = RemoteMikro(seed_z=z)
    try:
        uri, store_id = mikro.uri, mikro.store

        def plugin_first_plane() -> np.ndarray:
            _shared.close_all()  # a cold open every time: new connection, new grant
            image = napari_lablink.open_image(uri, token=mikro.token)
            return image.data.isel(c=0, t=0, z=z // 2).values

        def baseline_first_plane() -> np.ndarray:
            return plain_zarr_array(mikro, store_id)[0, 0, z // 2]

        np.testing.assert_array_equal(plugin_first_plane(), baseline_first_plane())
        plugin = best_of(plugin_first_plane, 5)
        baseline = best_of(baseline_first_plane, 5)
        bench("mikro_open_first_plane", plugin * 1e3, "ms", baseline * 1e3)

        image = napari_lablink.open_image(uri, token=mikro.token)
        array = plain_zarr_array(mikro, store_id)
        mib = data.nbytes / 2**20
        plugin = best_of(lambda: image.levels[0].compute(), 3)
        baseline = best_of(lambda: array[:], 3)
        # Throughput: higher is better, so the ratio is plugin / baseline throughput.
        bench("mikro_full_read_throughput", mib / plugin, "MiB/s", mib / baseline)
        np.testing.assert_array_equal(image.levels[0][0, 0, -1].compute(), data[0, 0, -1])
    finally:
        mikro.close()


if __name__ == "__main__":
    main()
