"""Writing a dask array into zarr for mikro: chunk layouts, streamed block writes, pyramids.

:func:`write_blocks` streams a (possibly larger-than-memory) dask array into a zarr array block by
block, with progress and cancellation, holding only a few blocks in memory at once. The chunk
layouts are the ones each generation's own clients write, so other mikro clients read ours well.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import product

import dask
import dask.array as da
import numpy as np
from zarr.types import AnyArray

from napari_lablink.client.upload import Progress, UploadCancelledError

__all__ = ["downsampled", "plane_chunks", "pyramid_shapes", "volume_chunks", "write_blocks"]


def plane_chunks(shape: Sequence[int], tile: int = 1024) -> tuple[int, ...]:
    """One plane per chunk, tiled in y and x: what napari reads when it shows a plane."""
    return (1, 1, 1, min(shape[3], tile), min(shape[4], tile))


def volume_chunks(
    shape: Sequence[int], itemsize: int, target_bytes: int = 20 * 2**20
) -> tuple[int, ...]:
    """About ``target_bytes`` per chunk with ``c`` chunk 1, as the generation-1 clients wrote."""
    z, y, x = shape[2:]
    plane = y * x * itemsize
    if plane >= target_bytes:
        side = max(1, int(math.sqrt(target_bytes / itemsize)))
        return (1, 1, 1, min(y, side), min(x, side))
    per_z = max(1, target_bytes // plane)
    return (1, 1, min(z, per_z), y, x)


def pyramid_shapes(shape: Sequence[int], smallest: int = 256) -> list[tuple[int, ...]]:
    """Shapes of the levels halved in y and x until the larger side fits in ``smallest``."""
    shapes = []
    current = tuple(shape)
    while max(current[-2:]) > smallest:
        current = (*current[:-2], math.ceil(current[-2] / 2), math.ceil(current[-1] / 2))
        shapes.append(current)
    return shapes


def downsampled(array: da.Array, labels: bool) -> da.Array:
    """Half the size in y and x: mean of 2x2 blocks for intensities, a pick for labels.

    Labels are picked, not averaged, so a downsampled level holds only labels that exist.
    """
    if labels:
        picked: da.Array = array[..., ::2, ::2]
        return picked
    y, x = array.shape[-2:]
    padded = da.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, y % 2), (0, x % 2)], mode="edge")
    mean: da.Array = da.coarsen(
        np.mean, padded, {array.ndim - 2: 2, array.ndim - 1: 2}, trim_excess=True
    )
    if np.issubdtype(array.dtype, np.integer):
        mean = da.round(mean)
    same: da.Array = mean.astype(array.dtype)  # type: ignore[no-untyped-call]  # dask's untyped
    return same


def _regions(
    shape: Sequence[int], chunks: Sequence[int], itemsize: int, limit: int
) -> Iterator[tuple[tuple[slice, ...], int]]:
    """Whole-chunk regions of about ``limit`` bytes at most, in C order, with their chunk counts.

    A region is a whole plane when a plane fits in ``limit``, else a row of chunks, else one
    chunk: few enough calls for zarr to overlap the chunk writes inside each, small enough to
    keep memory bounded whatever the image.
    """
    y, x = shape[3], shape[4]
    cy, cx = chunks[3], chunks[4]
    plane_bytes = y * x * itemsize
    row_bytes = cy * x * itemsize
    outer = product(*(range(0, n, k) for n, k in zip(shape[:3], chunks[:3], strict=True)))
    for start in outer:
        head = tuple(
            slice(s, min(s + k, n)) for s, k, n in zip(start, chunks[:3], shape[:3], strict=True)
        )
        depth = math.prod(h.stop - h.start for h in head)
        if plane_bytes * depth <= limit:
            yield (*head, slice(0, y), slice(0, x)), -(-y // cy) * -(-x // cx)
        elif row_bytes * depth <= limit:
            for y0 in range(0, y, cy):
                yield (*head, slice(y0, min(y0 + cy, y)), slice(0, x)), -(-x // cx)
        else:
            for y0, x0 in product(range(0, y, cy), range(0, x, cx)):
                yield (*head, slice(y0, min(y0 + cy, y)), slice(x0, min(x0 + cx, x))), 1


def write_blocks(
    source: da.Array,
    target: AnyArray,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
    region_bytes: int = 32 * 2**20,
) -> None:
    """Write ``source`` into ``target`` region by region (whole chunks), ``workers`` at once.

    At most about ``2 * workers`` regions of ``region_bytes`` are in memory, so a
    larger-than-memory dask array streams through. Raises :class:`UploadCancelledError` soon
    after ``cancel`` is set. ``progress`` counts chunks.
    """
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"shape {source.shape} does not match the target's {target.shape}")
    scheduler = _scheduler()
    regions = list(_regions(target.shape, target.chunks, target.dtype.itemsize, region_bytes))
    total = sum(count for _, count in regions)
    done = 0
    lock = threading.Lock()

    def write_one(region: tuple[slice, ...]) -> None:
        if cancel is not None and cancel.is_set():
            return
        target[region] = np.asarray(source[region].compute(scheduler=scheduler))

    def finished(future: Future[None], count: int) -> None:
        nonlocal done
        future.result()
        with lock:
            done += count
            now = done
        if progress is not None:
            progress(now, total)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lablink-upload") as pool:
        pending: dict[Future[None], int] = {}
        for region, count in regions:
            if cancel is not None and cancel.is_set():
                break
            pending[pool.submit(write_one, region)] = count
            if len(pending) >= 2 * workers:
                completed, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in completed:
                    finished(future, pending.pop(future))
        for future, count in pending.items():
            finished(future, count)
    if cancel is not None and cancel.is_set():
        raise UploadCancelledError("The upload was cancelled", hint="Nothing was registered")


def _scheduler() -> str | None:
    """Where the source is computed: on the active ``dask.distributed`` client if there is one
    (a persisted array's pieces live on its workers), else in the writing thread (the writers
    already run in parallel; dask's own pool inside each would only oversubscribe the cores)."""
    if dask.config.get("scheduler", None) in ("dask.distributed", "distributed"):
        return None
    return "synchronous"
