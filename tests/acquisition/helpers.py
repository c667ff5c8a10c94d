"""Helpers shared by the acquisition tests."""

from __future__ import annotations

import threading
import time

import numpy as np

from napari_lablink.acquisition import FrameInfo


class RecordingSink:
    """A FrameSink that keeps what a backend delivered (and, optionally, probes per frame)."""

    def __init__(self, probe=None) -> None:
        self.infos: list[FrameInfo] = []
        self.first_pixels: list[int] = []
        self.shapes: list[tuple[int, ...]] = []
        self.probes: list[object] = []
        self.errors: list[BaseException | None] = []
        self.done = threading.Event()
        self._probe = probe

    def frame(self, image: np.ndarray, info: FrameInfo) -> None:
        self.infos.append(info)
        self.shapes.append(image.shape)
        self.first_pixels.append(int(image.flat[0]))
        if self._probe is not None:
            self.probes.append(self._probe())

    def finished(self, error: BaseException | None = None) -> None:
        self.errors.append(error)
        self.done.set()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()
