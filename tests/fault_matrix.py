"""The fault matrix: uploads and reads against stand-ins that misbehave on purpose, then an audit
of what the servers hold.

Shared by the fault suite (``tests/client/test_fault_suite.py``) and
``benchmarks/bench_faults.py``. Each cell runs a bounded number of operations at one fault rate,
spread evenly over 503s, dropped connections, slow answers and lost answers (the server acts,
the answer never arrives), on GraphQL, S3 and the tracker alike. Then, with faults off, it counts
what must never happen: wrong pixels, duplicates, half-registered pyramids, orphaned stores and
failures that are not typed errors (or do not say whether anything was registered).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import napari_lablink
from napari_lablink.client.errors import LablinkError
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.tracker.server import TrackerStandIn

KINDS = ("503", "drop", "slow", "lost")


@dataclass
class Cell:
    """What one fault rate did."""

    rate: float
    uploads: int = 0
    succeeded: int = 0
    reads: int = 0
    reads_ok: int = 0
    wrong: int = 0
    duplicates: int = 0
    half_registered: int = 0
    orphaned: int = 0
    untyped: int = 0
    #: Empty stores from lost requestZarrUpload answers: no data, no id the client ever saw.
    empty_grants: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def success_percent(self) -> float:
        return 100.0 * self.succeeded / self.uploads if self.uploads else 100.0

    @property
    def bad_outcomes(self) -> int:
        return self.wrong + self.duplicates + self.half_registered + self.orphaned + self.untyped

    def row(self) -> str:
        return (
            f"{self.rate:4.0%} faults: uploads {self.succeeded}/{self.uploads} "
            f"({self.success_percent:.1f} %), reads {self.reads_ok}/{self.reads}, wrong "
            f"{self.wrong}, duplicates {self.duplicates}, half-registered "
            f"{self.half_registered}, orphaned {self.orphaned}, untyped {self.untyped}, empty "
            f"grants {self.empty_grants}, {self.seconds:.1f} s"
        )


def _faulty(stand_in: Any, rate: float, seed: int) -> None:
    stand_in.faults.seed = seed
    stand_in.faults.slow_seconds = 0.05
    stand_in.faults.rates = {kind: rate / len(KINDS) for kind in KINDS}


def _calm(*stand_ins: Any) -> None:
    for stand_in in stand_ins:
        stand_in.faults.clear()


def _record_failure(cell: Cell, exc: BaseException) -> None:
    typed = isinstance(exc, LablinkError) and getattr(exc, "registered", None) is not None
    cell.failures[type(exc).__name__] += 1
    if not typed:
        cell.untyped += 1


def run_mikro(rate: float, uploads: int = 12, seed: int = 1) -> Cell:
    """``uploads`` uploads (both generations, some pyramids) and a read of each, at ``rate``."""
    cell = Cell(rate)
    start = time.monotonic()
    rng = np.random.default_rng(seed)
    with MikroStandIn() as mikro:
        # Stand-ins in one process share moto's buckets: only what this run writes counts.
        datasets_before = {key.split("/", 1)[0] for key in mikro.s3.list_objects("zarr")}
        expected: dict[str, tuple[str, np.ndarray]] = {}
        pyramids: dict[str, int] = {}
        servers = {
            kind: napari_lablink.connect(
                f"mikro+http://{mikro.uri_authority}{prefix}",
                token=mikro.token,
                s3=mikro.s3_endpoint,
            )
            for kind, prefix in (("image", "/mikro"), ("representation", ""))
        }
        try:
            _faulty(mikro, rate, seed)
            _faulty(mikro.s3, rate, seed + 1)
            for n in range(uploads):
                kind = "representation" if n % 4 == 3 else "image"
                pyramid = kind == "image" and n % 4 == 2
                shape = (1100, 1030) if pyramid else (40 + n, 50)
                data = rng.integers(0, 60000, size=shape, dtype=np.uint16)
                name = f"upload {n}"
                cell.uploads += 1
                try:
                    uri = servers[kind].upload(data, name=name, kind=kind, pyramid=pyramid)
                except Exception as exc:
                    _record_failure(cell, exc)
                    continue
                cell.succeeded += 1
                expected[uri] = (kind, data)
                if pyramid:
                    pyramids[napari_lablink.parse_uri(uri).object_id or ""] = n
            for uri, (kind, data) in expected.items():
                cell.reads += 1
                try:
                    got = servers[kind].get(uri).data.values[0, 0, 0]
                except LablinkError as exc:
                    cell.failures[f"read {type(exc).__name__}"] += 1
                    continue
                except Exception as exc:
                    _record_failure(cell, exc)
                    continue
                cell.reads_ok += 1
                cell.wrong += int(not np.array_equal(got, data))
            _calm(mikro, mikro.s3)
            for uri, (kind, data) in expected.items():  # faults off: all must read back exact
                got = servers[kind].get(uri).data.values[0, 0, 0]
                cell.wrong += int(not np.array_equal(got, data))
        finally:
            _calm(mikro, mikro.s3)
            for each in servers.values():
                each.close()
        _audit_mikro(cell, mikro, pyramids, datasets_before)
    cell.seconds = time.monotonic() - start
    return cell


def _audit_mikro(
    cell: Cell, mikro: MikroStandIn, pyramids: dict[str, int], datasets_before: set[str]
) -> None:
    state = mikro.state
    names = Counter(i.name for i in state.images.values())
    names.update(r.name for r in state.representations.values())
    cell.duplicates += sum(count - 1 for count in names.values() if count > 1)
    full = {i.id for i in state.images.values() if "(1/" not in i.name}
    for image in state.images.values():
        views = state.derived_scale_views(image.id)
        if image.id in pyramids and not views:
            cell.half_registered += 1
        if "(1/" in image.name and not any(v.image == image.id for v in state.scale_views):
            cell.half_registered += 1  # a level without its full image
        if image.id in full and image.id not in pyramids and views:
            cell.half_registered += 1
    used = {i.store for i in state.images.values()}
    for store in state.stores.values():
        if store.id in used or store.state == "discarded":
            continue
        if mikro.s3.list_objects(store.s3_bucket, store.key + "/") or store.state == "populated":
            cell.orphaned += 1
        else:
            cell.empty_grants += 1
    datasets = {r.store.split("/", 1)[1] for r in state.representations.values()}
    written = {key.split("/", 1)[0] for key in mikro.s3.list_objects("zarr")}
    cell.orphaned += len(written - datasets - datasets_before)


def run_tracker(rate: float, operations: int = 8, seed: int = 2) -> Cell:
    """Image sets and channels made at ``rate``, channels read back."""
    cell = Cell(rate)
    start = time.monotonic()
    rng = np.random.default_rng(seed)
    with TrackerStandIn() as tracker:
        run = tracker.add_run("RUN-F", "fault run", fovs=["FOV1"])
        plane = rng.integers(0, 500, size=(32, 32), dtype=np.uint16)
        image_id = tracker.add_image(run, "FOV1", {"CD45": (150, plane)}, 400.0)
        server = napari_lablink.connect(
            f"mibi+http://127.0.0.1:{tracker.port}", email=tracker.email, password=tracker.password
        )
        channels: dict[str, np.ndarray] = {}
        try:
            _faulty(tracker, rate, seed)
            for n in range(operations):
                cell.uploads += 1
                try:
                    if n % 2:
                        server.create_imageset([image_id], f"set {n}", None)
                    else:
                        data = rng.integers(0, 500, size=(32, 32), dtype=np.uint16)
                        server.upload_channel(image_id, data, f"marker{n}")
                        channels[f"marker{n}"] = data
                except Exception as exc:
                    if isinstance(exc, LablinkError) and exc.registered is None:
                        exc.registered = ()  # single-step calls: nothing half-made to report
                    _record_failure(cell, exc)
                    continue
                cell.succeeded += 1
            _calm(tracker)
            for name, data in channels.items():
                cell.reads += 1
                got = server.get_channel_data(image_id, name)
                cell.reads_ok += 1
                cell.wrong += int(not np.array_equal(got, data))
        finally:
            _calm(tracker)
            server.close()
        names = Counter(s["name"] for s in tracker.state.imagesets.values())
        cell.duplicates += sum(count - 1 for count in names.values() if count > 1)
    cell.seconds = time.monotonic() - start
    return cell


def combined(*cells: Cell) -> Cell:
    """The cells of one rate added up."""
    total = Cell(cells[0].rate)
    for cell in cells:
        for name in (
            "uploads",
            "succeeded",
            "reads",
            "reads_ok",
            "wrong",
            "duplicates",
            "half_registered",
            "orphaned",
            "untyped",
            "empty_grants",
            "seconds",
        ):
            setattr(total, name, getattr(total, name) + getattr(cell, name))
        total.failures.update(cell.failures)
    return total
