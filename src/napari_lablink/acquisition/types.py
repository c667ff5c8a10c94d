"""Value types shared by the engine, the backends and the widget.

They live apart from the engine so that a backend can be written (and tested) without importing
the engine, and so that the widget can build plans and read frame metadata without threads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class ZMode(enum.StrEnum):
    """Who moves z during a stack.

    ``STAGE``: the backend moves the focus stage to each plane and reports the plane index with
    every frame. ``EXTERNAL``: an external device (a DAQ) sweeps z while the camera is triggered;
    nobody tells the software where z is, so the plane is the camera's frame count modulo the
    number of planes (the seed notebook's "external DAQ" mode).
    """

    STAGE = "stage"
    EXTERNAL = "external"


class AcquisitionError(RuntimeError):
    """A failure the user can act on; the message says what happened and what to do."""


class BackendUnavailableError(AcquisitionError):
    """The backend cannot start (missing package, no Micro-Manager, bad configuration)."""


class CameraError(AcquisitionError):
    """The camera (or its driver) failed while a run was in progress."""


@dataclass(frozen=True)
class StackPlan:
    """One z-stack, repeated ``n_stacks`` times (``None``: until stopped), for every channel.

    Channels are acquired one full stack after the other (``c`` outside ``z``), as Micro-Manager's
    ``multi_d_acquisition_events(order="cz")`` and the seed notebook do.
    """

    z_start_um: float = 0.0
    z_end_um: float = 10.0
    n_slices: int = 41
    z_mode: ZMode = ZMode.STAGE
    channels: tuple[str, ...] = ("default",)
    exposure_ms: float | None = None
    n_stacks: int | None = None
    crop: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "z_mode", ZMode(self.z_mode))
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.n_slices < 1:
            raise ValueError(f"n_slices must be at least 1, got {self.n_slices}")
        if not self.channels:
            raise ValueError("a plan needs at least one channel")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channel names must be unique, got {self.channels}")
        if self.n_stacks is not None and self.n_stacks < 1:
            raise ValueError(f"n_stacks must be at least 1 or None, got {self.n_stacks}")
        if self.exposure_ms is not None and self.exposure_ms <= 0:
            raise ValueError(f"exposure_ms must be positive, got {self.exposure_ms}")
        if self.crop is not None:
            crop = tuple(int(v) for v in self.crop)
            if len(crop) != 2 or min(crop) < 1:
                raise ValueError(f"crop must be (height, width) in pixels, got {self.crop}")
            object.__setattr__(self, "crop", crop)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def z_positions_um(self) -> np.ndarray:
        """Plane positions; computed with linspace so the count is exact (arange is not)."""
        return np.linspace(self.z_start_um, self.z_end_um, self.n_slices)

    @property
    def z_step_um(self) -> float:
        """Signed distance between planes (0 for a single plane)."""
        if self.n_slices == 1:
            return 0.0
        return (self.z_end_um - self.z_start_um) / (self.n_slices - 1)

    @property
    def frames_per_cycle(self) -> int:
        """Frames in one stack of every channel."""
        return self.n_slices * self.n_channels


@dataclass(frozen=True)
class BackendInfo:
    """What a connected backend knows about its camera; ``None`` where it cannot know.

    The widget fills its pixel-size and z-step fields from here, so they follow the hardware.
    """

    name: str
    frame_shape: tuple[int, int]
    dtype: np.dtype
    bit_depth: int
    pixel_size_um: float | None = None
    z_step_um: float | None = None
    channels: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Metadata a backend hands over with every frame.

    ``frame_number`` counts frames from the camera since the run started (0, 1, 2, ...); a gap
    means the camera dropped frames. In ``EXTERNAL`` mode it also defines the plane and channel.
    ``z_index`` and ``stack_index`` are set in ``STAGE`` mode. ``timestamp`` is
    ``time.perf_counter()`` when the frame left the camera (the start of the latency clock).
    """

    frame_number: int
    timestamp: float
    channel: int = 0
    z_index: int | None = None
    stack_index: int | None = None
    z_um: float | None = None


class FrameSink(Protocol):
    """Where a backend delivers frames; implemented by the engine.

    ``frame`` runs on the backend's acquisition thread. The image is only valid during the call
    (backends may reuse their buffer): the sink copies what it keeps before returning.
    ``finished`` is called exactly once when the run ends, with the error that ended it, if any.
    """

    def frame(self, image: np.ndarray, info: FrameInfo) -> None: ...

    def finished(self, error: BaseException | None = None) -> None: ...
