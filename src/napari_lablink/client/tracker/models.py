"""Typed views of the MIBItracker's JSON objects (fields of ``docs/protocols/mibitracker.md``).

Trackers differ by version and deployment, so every model accepts fields it does not know
(``extra="allow"``, reachable as attributes) and treats the descriptive metadata (instrument,
tissue, aperture, section, project, ...) as optional: a missing one must never stop an image from
opening.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChannelSettings",
    "Conjugate",
    "RunImage",
    "TrackerImage",
    "TrackerRun",
]


class _TrackerObject(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChannelSettings(_TrackerObject):
    """The tracker's display settings of one channel (its viewer's colour and intensity range)."""

    color: str | None = None
    hex: str | None = None
    brightness: float | None = None
    intensity_lower: float | None = None
    intensity_higher: float | None = None


class RunReference(_TrackerObject):
    """The run as an image object embeds it."""

    id: int
    name: str | None = None
    label: str | None = None
    path: str | None = None


class TrackerImage(_TrackerObject):
    """One image (field of view) of a run."""

    id: int
    number: str | None = None
    point: str | None = None
    folder: str | None = None
    description: str | None = None
    fov_size: float | None = None
    frame: int | None = None
    dwell_time: float | None = None
    depths: int | None = None
    mass_gain: float | None = None
    mass_offset: float | None = None
    time_bin: float | None = None
    x_coord: float | None = None
    y_coord: float | None = None
    sed: str | None = None
    project: Any = None
    tissue: Any = None
    section: Any = None
    aperture: Any = None
    run: RunReference | None = None
    pngs: list[str] = Field(default_factory=list)
    overlays: list[Any] = Field(default_factory=list)
    channel_settings: dict[str, ChannelSettings] = Field(default_factory=dict)

    @field_validator("pngs", "overlays", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        """Some tracker versions send null rather than an empty list."""
        return [] if value is None else value

    @field_validator("channel_settings", mode="before")
    @classmethod
    def _null_settings(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def storage_folder(self) -> str | None:
        """Where the image's files live in the tracker's storage (``{run.path}/{folder}``)."""
        if self.run is None or not self.run.path or not self.folder:
            return None
        return f"{self.run.path}/{self.folder}"


class RunImage(_TrackerObject):
    """An image as a run's image set lists it."""

    id: int
    number: str | None = None
    pngs: list[str] = Field(default_factory=list)


class ImageSetOfRun(_TrackerObject):
    images: list[RunImage] = Field(default_factory=list)


class TrackerRun(_TrackerObject):
    """One run (an acquisition session) with the images of its FOVs."""

    id: int
    name: str | None = None
    label: str | None = None
    path: str | None = None
    xml: str | None = None
    fov_size: float | None = None
    instrument: Any = None
    project: Any = None
    aperture: Any = None
    run_date: str | None = None
    imageset: ImageSetOfRun | None = None


class Conjugate(_TrackerObject):
    """An antibody conjugate of an image's panel: which target was labelled with which mass."""

    id: int | None = None
    mass: int | None = None
    target: str | None = None


def related_id(value: Any) -> int | None:
    """The id of a related object the tracker serialises either nested (``{"id": ..}``) or bare."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
