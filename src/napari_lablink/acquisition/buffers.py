"""Preallocated stack storage for one channel: frames are copied in once, stacks never.

A channel owns ``n_slots`` stack-sized slots plus one *live* stack:

- the writer fills one slot plane by plane; when every plane is in, the slot is *published* as
  the newest complete stack (a version counter goes up) and the writer moves on to the least
  recently published slot that no reader has leased;
- the live stack receives every frame too and always holds the newest plane for each z: the
  seed notebook's display semantics, but in one array that never moves, so a viewer can hold
  it and just refresh;
- readers get read-only views. A plain view of the newest stack stays intact until the writer
  has recycled its slot (at least one full stack later); a *lease* pins the slot for as long as
  the reader needs a consistent stack (the PSF analysis). Leases are only granted while a free
  slot remains for the writer; otherwise the reader gets a private copy. So memory stays at
  ``(n_slots + 1)`` stacks per channel whatever the readers do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StackView:
    """A read-only (z, y, x) stack of one channel, with where and when it came from.

    ``complete`` is False for the stack still being written; ``filled[z]`` says which planes of
    it hold data from this sweep. ``version`` increases with every stack published in this
    channel, so a reader can tell whether it has seen this stack already.
    """

    channel: int
    data: np.ndarray
    version: int
    stack_index: int
    run_id: int
    complete: bool
    filled: np.ndarray
    z_positions_um: np.ndarray
    t_first: float
    t_last: float


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class ChannelBuffer:
    """Slots, live stack and bookkeeping for one channel (see the module docstring)."""

    def __init__(
        self,
        channel: int,
        n_slices: int,
        frame_shape: tuple[int, int],
        dtype: np.dtype,
        z_positions_um: np.ndarray,
        n_slots: int = 3,
    ) -> None:
        if n_slots < 3:
            raise ValueError("a channel needs at least 3 slots (writing, newest, spare)")
        self.channel = channel
        self.shape = (n_slices, *frame_shape)
        self.dtype = np.dtype(dtype)
        self.z_positions_um = _readonly(np.asarray(z_positions_um, dtype=np.float64))
        self._slots = [np.zeros(self.shape, self.dtype) for _ in range(n_slots)]
        self.live = np.zeros(self.shape, self.dtype)
        self._pins = [0] * n_slots
        self._published_at = [-1] * n_slots  # version when published; -1: never
        self._meta: list[tuple[int, int, float, float]] = [(-1, -1, 0.0, 0.0)] * n_slots
        self._lock = threading.Lock()
        self._version = 0
        self._newest: int | None = None
        self._writing = 0
        self._filled = np.zeros(n_slices, dtype=bool)
        self._n_filled = 0
        self._stack_index = -1
        self._run_id = -1
        self._t_first = 0.0
        self._t_last = 0.0

    @property
    def nbytes(self) -> int:
        return (len(self._slots) + 1) * int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def version(self) -> int:
        return self._version

    @property
    def stack_index(self) -> int:
        """Index of the stack being written (-1 before the first frame)."""
        return self._stack_index

    @property
    def n_filled(self) -> int:
        return self._n_filled

    # -- writer side (one acquisition thread) -------------------------------------------------

    def begin(self, stack_index: int, run_id: int, t: float) -> None:
        """Start a new stack in a free slot; an unfinished one is abandoned (not published)."""
        with self._lock:
            self._writing = self._free_slot()
        self._filled[:] = False
        self._n_filled = 0
        self._stack_index = stack_index
        self._run_id = run_id
        self._t_first = self._t_last = t

    def write(self, z: int, plane: np.ndarray, t: float) -> bool:
        """Copy one (already cropped) frame in; True when this completed the stack."""
        np.copyto(self._slots[self._writing][z], plane)
        np.copyto(self.live[z], plane)
        self._t_last = t
        if not self._filled[z]:
            self._filled[z] = True
            self._n_filled += 1
        return self._n_filled == self.shape[0]

    def publish(self) -> StackView:
        """Make the slot being written the newest complete stack."""
        with self._lock:
            self._version += 1
            slot = self._writing
            self._newest = slot
            self._published_at[slot] = self._version
            self._meta[slot] = (self._stack_index, self._run_id, self._t_first, self._t_last)
            # the writer must never touch the published slot again: move it to a spare now
            self._writing = self._free_slot()
        self._n_filled = 0
        self._filled[:] = False
        return self._view(slot, self._version)

    def _free_slot(self) -> int:
        """Least recently published slot that is neither newest nor leased (lock held)."""
        candidates = [
            i for i in range(len(self._slots)) if i != self._newest and self._pins[i] == 0
        ]
        return min(candidates, key=lambda i: self._published_at[i])

    # -- reader side (any thread) -------------------------------------------------------------

    def newest(self) -> StackView | None:
        """The newest complete stack, unpinned: intact until its slot is recycled."""
        with self._lock:
            if self._newest is None:
                return None
            return self._view(self._newest, self._published_at[self._newest])

    def in_progress(self) -> StackView:
        """The stack being written; planes not in ``filled`` hold older data."""
        with self._lock:
            slot = self._writing
            filled = self._filled.copy()
        return StackView(
            channel=self.channel,
            data=_readonly(self._slots[slot]),
            version=self._version,
            stack_index=self._stack_index,
            run_id=self._run_id,
            complete=False,
            filled=filled,
            z_positions_um=self.z_positions_um,
            t_first=self._t_first,
            t_last=self._t_last,
        )

    @contextmanager
    def lease(self) -> Iterator[StackView | None]:
        """Pin the newest complete stack for the duration of the block (a copy if no slot)."""
        with self._lock:
            slot = self._newest
            if slot is None:
                pinned = None
            elif self._pins[slot] or self._pinned_slots() + 2 < len(self._slots):
                self._pins[slot] += 1
                pinned = slot
            else:
                pinned = None
                copied = self._view(slot, self._published_at[slot], copy=True)
        try:
            if slot is None:
                yield None
            elif pinned is None:
                yield copied
            else:
                yield self._view(pinned, self._published_at[pinned])
        finally:
            if pinned is not None:
                with self._lock:
                    self._pins[pinned] -= 1

    def is_current(self, view: StackView) -> bool:
        """Whether ``view``'s slot still holds the stack it was taken from."""
        if not view.complete:
            return False
        with self._lock:
            return any(
                self._published_at[i] == view.version and self._meta[i][0] == view.stack_index
                for i in range(len(self._slots))
            )

    def _pinned_slots(self) -> int:
        return sum(1 for p in self._pins if p)

    def _view(self, slot: int, version: int, copy: bool = False) -> StackView:
        stack_index, run_id, t_first, t_last = self._meta[slot]
        data = self._slots[slot].copy() if copy else self._slots[slot]
        return StackView(
            channel=self.channel,
            data=_readonly(data),
            version=version,
            stack_index=stack_index,
            run_id=run_id,
            complete=True,
            filled=np.ones(self.shape[0], dtype=bool),
            z_positions_um=self.z_positions_um,
            t_first=t_first,
            t_last=t_last,
        )
