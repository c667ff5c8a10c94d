"""Reading a full-resolution 4096 x 4096 16-bit region from the real PIMS: plugin versus httpx.

The plugin side opens the image and computes level 0 through dask (chunks fetched concurrently
on dask's threads); the baseline fetches the very same windows one after another with plain
httpx and decodes them the same way. Both must give identical pixels (checked against the source
file). Prints BENCH lines (see benchmarks/_bench.py). Needs the PIMS venv (built on first use).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import dask
import httpx
import imagecodecs
import numpy as np
import tifffile

import napari_lablink
from napari_lablink.testing.pims.images import write_pyramid
from napari_lablink.testing.pims.server import RealPims

try:
    from ._bench import bench, best_of
except ImportError:
    from _bench import bench, best_of

SIZE = 4096


def sequential(base_url: str, path: str, chunks: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """The same windows as the plugin's chunks, fetched one after another."""
    out = np.empty((sum(chunks[0]), sum(chunks[1])), dtype=np.uint16)
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        top = 0
        for height in chunks[0]:
            left = 0
            for width in chunks[1]:
                region = {"top": top, "left": left, "width": width, "height": height}
                body = {
                    "region": region | {"reference_tier_index": 0, "tier_index_type": "LEVEL"},
                    "level": 0,
                    "channels": 0,
                    "z_slices": 0,
                    "timepoints": 0,
                    "colormaps": "NONE",
                    "bits": 16,
                }
                answer = client.post(f"/image/{path}/window.png", json=body)
                answer.raise_for_status()
                out[top : top + height, left : left + width] = imagecodecs.png_decode(
                    answer.content
                )
                left += width
            top += height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pims-") as folder:
        image = write_pyramid(
            Path(folder) / "bench.ome.tif", height=SIZE, width=SIZE, channels=("a",)
        )
        with tifffile.TiffFile(image.path) as tif:
            expected = tif.series[0].levels[0].asarray().reshape(SIZE, SIZE)
        with RealPims([image.path]) as pims:
            remote = napari_lablink.open_image(pims.uri(image.path))
            level = remote.levels[0][0, 0, 0]
            chunks = level.chunks
            path = pims.path(image.path)
            np.testing.assert_array_equal(sequential(pims.base_url, path, chunks), expected)
            plain_time = best_of(lambda: sequential(pims.base_url, path, chunks), args.repeat)
            # dask's default (one thread per core, what napari uses) and a larger pool.
            timings = {}
            for workers in (None, 8):
                config = {"scheduler": "threads", "num_workers": workers}
                with dask.config.set(config):
                    np.testing.assert_array_equal(level.compute(), expected)
                    timings[workers] = best_of(level.compute, args.repeat)
    n = len(chunks[0]) * len(chunks[1])
    print(f"# {n} windows of {chunks[0][0]} x {chunks[1][0]} px, identical pixels on both sides")
    for workers, seconds in timings.items():
        threads = f"{workers}_threads" if workers else "default_threads"
        bench(f"pims_read_4096x4096_u16_plugin_{threads}", seconds, "s", plain_time)
        bench(f"pims_read_4096x4096_u16_speedup_{threads}", plain_time / seconds, "x", 1.0)


if __name__ == "__main__":
    main()
