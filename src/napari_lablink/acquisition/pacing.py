"""Completed stacks passed to the PSF analyzer at a readable pace, not at camera pace.

The analyzer is newest-wins, so when stacks complete faster than it fits them it runs back to
back: at 200 frames/s with two channels that is a core's worth of fitting, and the GIL it holds
starves the Qt thread (the display fell to a few redraws per second here). Two results per
second per channel are plenty to watch a PSF while aligning, so the widget hands the analyzer
this stand-in for the engine, which forwards a channel's completed stack only when the last one
forwarded is at least ``interval_s`` old.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from napari_lablink.acquisition.buffers import StackView
from napari_lablink.acquisition.callbacks import Callbacks
from napari_lablink.acquisition.engine import AcquisitionEngine, StackGeometry

__all__ = ["PacedStacks"]


class PacedStacks:
    """What ``PSFAnalyzer.attach`` uses of an engine, with ``stack_completed`` paced.

    Connect ``forward`` to the engine's ``stack_completed`` (the widget tracks that link).
    """

    def __init__(
        self,
        engine: AcquisitionEngine,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.stack_completed: Callbacks[[StackView]] = Callbacks("paced stack_completed")
        self._clock = clock
        self._last: dict[int, float] = {}

    @property
    def geometry(self) -> StackGeometry | None:
        return self.engine.geometry

    def lease_newest(self, channel: int = 0) -> AbstractContextManager[StackView | None]:
        return self.engine.lease_newest(channel)

    def reset(self) -> None:
        """A new run: its first stack of every channel is analysed whatever the pace."""
        self._last.clear()

    def forward(self, view: StackView) -> None:
        """Runs on the acquisition thread: a comparison and, now and then, one callback."""
        now = self._clock()
        last = self._last.get(view.channel)
        if last is None or now - last >= self.interval_s:
            self._last[view.channel] = now
            self.stack_completed(view)
