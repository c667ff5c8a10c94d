"""Uploading to mikro (generation 2): the plugin versus plain zarr writing the same array.

Both write the same data to the same S3 (the stand-in, in its own process) with the same chunks;
the plugin's figure includes everything an upload is (grant, writing, finishZarrUpload,
fromArrayLike). Peak memory is measured in a separate process uploading a dask-backed array that
is never materialised, against the size of the array it streams.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import httpx
import numpy as np
import zarr

import napari_lablink
from napari_lablink.client.mikro.blocks import plane_chunks

try:
    from ._bench import RemoteMikro, bench, best_of, grant_store
except ImportError:
    from _bench import RemoteMikro, bench, best_of, grant_store

GRANT = """mutation G($input: RequestZarrUploadInput!) {
  requestZarrUpload(input: $input) { accessKey secretKey sessionToken bucket key store } }"""

#: Uploads a lazily generated dask array and prints the process's peak RSS in MiB. VmHWM, not
#: getrusage: ru_maxrss survives exec, so a child would report its parent's high-water mark.
_MEMORY = """
import json, re, sys
import dask.array as da
import napari_lablink

def peak_mib():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024

info = json.loads(sys.stdin.read())  # not argv: a failure would print the token
mib, kind = int(sys.argv[1]), sys.argv[2]
z = mib * 2**20 // (2048 * 2048 * 2)
data = da.random.default_rng(1).integers(0, 4096, size=(1, 1, z, 2048, 2048), dtype="uint16",
                                         chunks=(1, 1, 1, 1024, 1024))
before = peak_mib()
with napari_lablink.connect(info[kind], token=info["token"], s3=info["s3"]) as server:
    uri = server.upload(data, name="memory", kind=kind, dims="ctzyx")
print(json.dumps({"peak": peak_mib(),
                  "before": before, "uri": uri}))
"""


def plain_zarr_upload(mikro: RemoteMikro, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    grant = httpx.post(
        mikro.gen2_graphql_url,
        json={"query": GRANT, "variables": {"input": {}}},
        headers={"Authorization": f"Bearer {mikro.token}"},
    ).json()["data"]["requestZarrUpload"]
    array = zarr.create_array(
        grant_store(grant, mikro.s3_endpoint, read_only=False),
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        fill_value=0,
        dimension_names=["c", "t", "z", "y", "x"],
    )
    array[:] = data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256, help="upload size (>= 256 for the issue)")
    parser.add_argument("--memory-mib", type=int, default=1024, help="dask-backed upload size")
    parser.add_argument(
        "--upload-4gib",
        action="store_true",
        help="also stream a 4 GiB dask array (minutes; the stand-in's S3 holds it in memory)",
    )
    args = parser.parse_args()
    z = max(1, args.mib * 2**20 // (2048 * 2048 * 2))
    data = np.random.default_rng(0).integers(0, 4096, size=(1, 1, z, 2048, 2048), dtype=np.uint16)
    mikro = RemoteMikro()
    try:
        url = f"mikro+http://{mikro.uri_authority}/mikro"
        with napari_lablink.connect(url, token=mikro.token, s3=mikro.s3_endpoint) as server:
            uri = server.upload(data[:, :, :1], name="warm-up", kind="image", dims="ctzyx")
            plugin = best_of(
                lambda: server.upload(data, name="bench", kind="image", dims="ctzyx"), 3
            )
            baseline = best_of(lambda: plain_zarr_upload(mikro, data, plane_chunks(data.shape)), 3)
            mib = data.nbytes / 2**20
            bench("mikro_upload_time", plugin, "s", baseline)
            print(
                f"# {mib:.0f} MiB: plugin {mib / plugin:.1f} MiB/s, "
                f"plain zarr {mib / baseline:.1f} MiB/s"
            )
            np.testing.assert_array_equal(server.get(uri).data.values, data[:, :, :1])
        info = json.dumps(
            {
                "image": url,
                "representation": f"mikro+http://{mikro.uri_authority}",
                "token": mikro.token,
                "s3": mikro.s3_endpoint,
            }
        )
        sizes = [("mikro_upload_peak_rss_dask", args.memory_mib, "image")]
        if args.upload_4gib:
            # A generation-2 store holds at most maxBytes, a GraphQL Int (< 2 GiB): 4 GiB go to
            # generation 1, which streams through the same block writer.
            sizes.append(("upload_4gib_peak_rss", 4096, "representation"))
        for name, mib, kind in sizes:
            result = subprocess.run(
                [sys.executable, "-c", _MEMORY, str(mib), kind],
                input=info,
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            bench(name, measured["peak"], "MiB", float(mib))
            print(
                f"# RSS before the upload (interpreter and imports): {measured['before']:.0f} MiB"
            )
    finally:
        mikro.close()


if __name__ == "__main__":
    main()
