"""Throughput of the S3 stand-in's gateway against moto read directly (the baseline).

The gateway sits between every client and moto in the tests, the benchmarks and the demo, so
its cost must stay small next to moto's own. The stand-in runs in its own process, as a real
datalayer would; this process reads the same objects once through the gateway and once from
moto, serially and with 8 concurrent requests. Prints BENCH lines (see benchmarks/_bench.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from obstore.store import S3Store

try:
    from ._bench import bench, best_of
except ImportError:
    from _bench import bench, best_of

SERVER = """
import json, sys, os
from napari_lablink.testing import S3StandIn
count, size = int(sys.argv[1]), int(sys.argv[2])
with S3StandIn() as s3:
    s3.create_bucket("bench")
    payload = os.urandom(size)
    for i in range(count):
        s3.put_object("bench", f"blob/{i}", payload)
    print(json.dumps({"gateway": s3.endpoint, "moto": s3.moto_endpoint,
                      "credentials": s3.admin_credentials}), flush=True)
    sys.stdin.read()
"""


def store(endpoint: str, credentials: dict[str, str]) -> S3Store:
    return S3Store(
        "bench",
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=credentials["access_key_id"],
        secret_access_key=credentials["secret_access_key"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def read_all(target: S3Store, count: int, workers: int) -> int:
    def one(index: int) -> int:
        return len(target.get(f"blob/{index}").bytes())

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, range(count)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="total MiB read per pass")
    parser.add_argument("--object-mib", type=int, default=8, help="MiB per object")
    args = parser.parse_args(argv)
    count = max(1, args.mib // args.object_mib)
    size = args.object_mib * 2**20
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(count), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info: dict[str, Any] = json.loads(server.stdout.readline())
        total = count * size / 2**20
        gateway = store(info["gateway"], info["credentials"])
        moto = store(info["moto"], info["credentials"])
        for workers in (1, 8):
            assert read_all(gateway, count, workers) == count * size
            through = best_of(lambda w=workers: read_all(gateway, count, w))
            direct = best_of(lambda w=workers: read_all(moto, count, w))
            bench(f"s3_gateway_read_{workers}x", total / through, "MiB/s", total / direct)
    finally:
        server.communicate("", timeout=60)


if __name__ == "__main__":
    main()
