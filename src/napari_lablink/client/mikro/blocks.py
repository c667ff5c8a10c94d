"""Writing a dask array into zarr for mikro: chunk layouts, streamed block writes, pyramids.

:func:`write_blocks` streams a (possibly larger-than-memory) dask array into a zarr array, and
into the levels of its pyramid, region by region, with progress and cancellation, holding only a
few regions in memory at once. Each region is computed once and every pyramid level is derived
from it, and regions follow the source's chunks where they can, so no source chunk is computed
twice. The chunk layouts are the ones each generation's own clients write, so other mikro
clients read ours well.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import product

import dask
import dask.array as da
import numpy as np
from zarr.types import AnyArray

from napari_lablink.client.errors import UploadCancelledError
from napari_lablink.client.upload import Progress

__all__ = ["halved", "plane_chunks", "pyramid_shapes", "volume_chunks", "write_blocks"]


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


def halved(data: np.ndarray, labels: bool) -> np.ndarray:
    """Half the size in y and x: mean of 2x2 blocks for intensities, a pick for labels.

    Labels are picked, not averaged, so a downsampled level holds only labels that exist. An odd
    side repeats its last row or column, so the level is ``ceil(n / 2)`` long.
    """
    if labels:
        return data[..., ::2, ::2]
    y, x = data.shape[-2:]
    padded = np.pad(data, [(0, 0)] * (data.ndim - 2) + [(0, y % 2), (0, x % 2)], mode="edge")
    blocks = padded.reshape(*padded.shape[:-2], (y + 1) // 2, 2, (x + 1) // 2, 2)
    mean = blocks.mean(axis=(-3, -1))
    if np.issubdtype(data.dtype, np.integer):
        mean = np.round(mean)
    level: np.ndarray = mean.astype(data.dtype)
    return level


#: A region of the full-resolution array and how many chunks it writes at all levels.
_Region = tuple[tuple[slice, ...], int]


def _boundaries(length: int, chunk: int) -> set[int]:
    return set(range(0, length, chunk)) | {length}


def _common_grid(
    shape: Sequence[int], target: Sequence[int], source: Sequence[Sequence[int]], whole: int
) -> list[list[int]]:
    """Per axis, the positions that are boundaries of both the source's and the target's chunks
    (the last ``whole`` axes taken whole): cells between them compute whole source chunks and
    write whole target chunks."""
    grid = []
    for axis, (n, chunk, sizes) in enumerate(zip(shape, target, source, strict=True)):
        if axis >= len(shape) - whole:
            grid.append([0, n])
            continue
        starts = set(np.cumsum((0, *sizes)).tolist())
        grid.append(sorted(_boundaries(n, chunk) & starts))
    return grid


def _cells(grid: list[list[int]]) -> Iterator[tuple[slice, ...]]:
    for index in product(*(range(len(edges) - 1) for edges in grid)):
        yield tuple(slice(edges[i], edges[i + 1]) for edges, i in zip(grid, index, strict=True))


def _nbytes(region: Sequence[slice], itemsize: int) -> int:
    return int(math.prod(r.stop - r.start for r in region)) * itemsize


def _chunk_count(region: Sequence[slice], chunks: Sequence[int]) -> int:
    return math.prod(-(-(r.stop - r.start) // c) for r, c in zip(region, chunks, strict=True))


def _grouped(grid: list[list[int]], itemsize: int, limit: int) -> Iterator[tuple[slice, ...]]:
    """The cells of ``grid`` in C order, a whole y-x extent or a row of cells at once when it
    fits in ``limit`` bytes: few calls for zarr to overlap the chunk writes inside each."""
    outer, rows, columns = grid[:3], grid[3], grid[4]
    for head in _cells(outer):
        plane = (*head, slice(rows[0], rows[-1]), slice(columns[0], columns[-1]))
        if _nbytes(plane, itemsize) <= limit:
            yield plane
            continue
        for row in _cells([rows]):
            line = (*head, *row, slice(columns[0], columns[-1]))
            if _nbytes(line, itemsize) <= limit:
                yield line
            else:
                yield from (tuple([*head, *row, *column]) for column in _cells([columns]))


def _regions(
    source: da.Array, targets: Sequence[AnyArray], limit: int, cell_limit: int
) -> Iterator[_Region]:
    """Regions of the full-resolution array that together cover it, with their chunk counts.

    A region computes whole source chunks where a cell of whole source and target chunks fits in
    ``cell_limit`` bytes (else whole target chunks: memory stays bounded, at the price of computing
    a big source chunk once per region). With a pyramid, regions span whole planes: each level's
    chunks then come whole out of one region.
    """
    full = targets[0]
    shape, chunks, itemsize = full.shape, full.chunks, full.dtype.itemsize
    whole = 2 if len(targets) > 1 else 0
    own = [[*sorted(_boundaries(n, c))] for n, c in zip(shape, chunks, strict=True)]
    if whole:
        own[3:] = [[0, shape[3]], [0, shape[4]]]

    def counted(region: tuple[slice, ...]) -> _Region:
        count = _chunk_count(region, chunks)
        for level in targets[1:]:
            scaled = (*region[:3], slice(0, level.shape[3]), slice(0, level.shape[4]))
            count += _chunk_count(scaled, level.chunks)
        return region, count

    common = _common_grid(shape, chunks, source.chunks, whole)
    for head in _cells(common[:3]):
        grid = common
        largest = [max(b - a for a, b in itertools.pairwise(edges)) for edges in common[3:]]
        if _nbytes(head, itemsize) * math.prod(largest) > cell_limit:
            grid = own  # source chunks too big to hold at once: whole target chunks instead
        inner = [
            [e for e in edges if h.start <= e <= h.stop]
            for edges, h in zip(grid[:3], head, strict=True)
        ]
        for region in _grouped([*inner, *grid[3:]], itemsize, limit):
            yield counted(region)


def write_blocks(
    source: da.Array,
    target: AnyArray,
    *,
    levels: Sequence[AnyArray] = (),
    labels: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
    region_bytes: int = 32 * 2**20,
    cell_bytes: int = 128 * 2**20,
) -> None:
    """Write ``source`` into ``target``, and its pyramid into ``levels``, region by region.

    Each region is computed once; level ``n`` gets it halved ``n`` times (see :func:`halved`).
    ``workers`` regions are written at once and at most about ``2 * workers`` regions or
    ``4 * cell_bytes`` are held, so a larger-than-memory dask array streams through. Raises
    :class:`UploadCancelledError` soon after ``cancel`` is set. ``progress`` counts chunks.
    """
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"shape {source.shape} does not match the target's {target.shape}")
    scheduler = _scheduler()
    targets = [target, *levels]
    regions = list(_regions(source, targets, region_bytes, cell_bytes))
    total = sum(count for _, count in regions)
    if progress is not None:
        progress(0, total)  # the total at once: a small upload may be a single region
    done = 0
    lock = threading.Lock()

    def write_one(region: tuple[slice, ...]) -> None:
        if cancel is not None and cancel.is_set():
            return
        data = np.asarray(source[region].compute(scheduler=scheduler))
        target[region] = data
        for level in levels:
            data = halved(data, labels)
            level[(*region[:3], slice(None), slice(None))] = data

    def finished(future: Future[None], count: int) -> None:
        nonlocal done
        future.result()
        with lock:
            done += count
            now = done
        if progress is not None:
            progress(now, total)

    budget = 4 * cell_bytes
    itemsize = target.dtype.itemsize
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lablink-upload") as pool:
        pending: dict[Future[None], tuple[int, int]] = {}
        held = 0
        for region, count in regions:
            if cancel is not None and cancel.is_set():
                break
            size = _nbytes(region, itemsize)
            pending[pool.submit(write_one, region)] = (count, size)
            held += size
            while pending and (len(pending) >= 2 * workers or held > budget):
                completed, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in completed:
                    count_done, size_done = pending.pop(future)
                    held -= size_done
                    finished(future, count_done)
        for future, (count, _) in pending.items():
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
