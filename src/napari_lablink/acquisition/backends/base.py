"""The contract every microscope backend fulfils, so the engine never knows which one it drives."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from napari_lablink.acquisition.types import AcquisitionError, BackendInfo, FrameSink, StackPlan


@runtime_checkable
class Backend(Protocol):
    """A camera plus a way to move z, driven one run at a time by the engine.

    Threading contract: the engine calls ``connect``, ``start``, ``stop`` and ``close`` from its
    control thread, never concurrently. ``start`` returns as soon as acquisition is under way;
    frames then arrive on a thread the backend owns (or its library owns) through
    ``sink.frame``. ``stop`` aborts the run, stops the z stage where the hardware allows it,
    waits until no more frames can arrive and until ``sink.finished`` has been called, and is
    idempotent. A run also ends by itself when ``plan.n_stacks`` stacks are done, or on a
    camera error (``sink.finished(error)``).
    """

    name: str

    def connect(self) -> BackendInfo:
        """Open the hardware (idempotent) and describe the camera."""
        ...

    def start(self, plan: StackPlan, sink: FrameSink) -> None:
        """Begin acquiring ``plan``; frames go to ``sink`` from the backend's thread."""
        ...

    def stop(self) -> None:
        """Abort the current run (if any) and wait until it has ended."""
        ...

    def close(self) -> None:
        """Stop and release the hardware; the backend may be connected again afterwards."""
        ...


def channel_presets(plan: StackPlan, group: str, available: Iterable[str]) -> list[str | None]:
    """The Micro-Manager presets of the channel group that ``plan``'s channels switch to.

    A single channel that is not a preset just labels the current settings (``None``: switch
    nothing); several channels must all be presets, or the plan cannot be run.
    """
    presets = set(available) if group else set()
    if plan.n_channels == 1 and plan.channels[0] not in presets:
        return [None]
    missing = [c for c in plan.channels if c not in presets]
    if missing:
        raise AcquisitionError(
            f"channel(s) {', '.join(missing)} are not presets of the channel group "
            f"{group or '(none set)'}; available: {', '.join(sorted(presets)) or 'none'}"
        )
    return list(plan.channels)
