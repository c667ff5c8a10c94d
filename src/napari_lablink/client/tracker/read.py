"""Reading tracker images: a lazy channel stack for napari, single channels, whole MIBItiffs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_lablink.client import outages
from napari_lablink.client.colors import parse_color
from napari_lablink.client.deadline import configured_seconds
from napari_lablink.client.errors import ConfigurationError, NotFoundError, ProtocolError
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.client.tracker import records
from napari_lablink.client.tracker.channels import ChannelCache, channel_stack, decode_png
from napari_lablink.client.tracker.models import ChannelSettings, TrackerImage
from napari_lablink.client.tracker.session import TrackerSession
from napari_lablink.client.uri import RemoteURI
from napari_lablink.formats.mibitiff import MibiImage, read_mibitiff

__all__ = ["channel_data", "mibi_image", "open_image"]


def channel_data(session: TrackerSession, image_id: int | str, channel_name: str) -> np.ndarray:
    """One channel as a 2-D uint16 array of counts."""
    obj = f"image {image_id}, channel {channel_name!r}"
    route = f"images/{records.checked_id(session, image_id, obj)}/channel_url/"
    try:
        url = session.signed_url(route, obj, channel=channel_name)
    except NotFoundError as exc:
        raise NotFoundError(
            f"The image or the channel does not exist ({exc.message})",
            server=session.label,
            obj=obj,
            hint="Check the channel name against the image's channel list (its 'pngs')",
        ) from None
    # One channel PNG, not a whole MIBItiff: the usual limit of one call, so that a storage that
    # hangs holds a napari slice no longer than that.
    answer = session.transfer("GET", url, obj=obj, deadline=configured_seconds())
    return decode_png(answer.content, f"channel {channel_name!r}")


def mibi_image(session: TrackerSession, image_id: int | str) -> MibiImage:
    """The image's whole MIBItiff (``summed_image.tiff``), read."""
    folder = records.image(session, image_id).storage_folder
    if folder is None:
        raise ProtocolError(
            "The image object names no run path or folder, so its file cannot be found",
            server=session.label,
            obj=f"image {image_id}",
        )
    return read_mibitiff(session.download_file(f"{folder}/summed_image.tiff"))


def open_image(session: TrackerSession, uri: RemoteURI, channels: ChannelCache) -> RemoteImage:
    """The image ``uri`` names as a lazy (c, y, x) stack; its channels are read through
    ``channels``, the connection's cache, which every open of the image shares."""
    if uri.kind == "runs":
        if uri.fov is None:
            raise ConfigurationError(
                f"{uri.without_options()} names a run but no FOV",
                server=session.label,
                hint=f"Use {uri.server}/runs/{uri.object_id}/FOV1 (the FOV's id)",
            )
        image_id: int | str = records.image_id(session, str(uri.object_id), uri.fov)
    else:
        image_id = records.checked_id(session, str(uri.object_id), f"image {uri.object_id}")
    image = records.image(session, image_id)
    obj = f"image {image.id}"
    if not image.pngs:
        raise NotFoundError(
            "The image has no channels yet",
            server=session.label,
            obj=obj,
            hint="Upload its MIBItiff (upload_mibitiff) or a channel first",
        )
    frame = image.frame
    if not frame:
        raise ProtocolError(
            "The image object does not say its size in pixels (frame)",
            server=session.label,
            obj=obj,
        )
    masses = {c.target: c.mass for c in records.image_conjugates(session, image.id) if c.target}

    return RemoteImage(
        uri=str(uri.without_options()),
        name=_image_name(image),
        dims=("c", "y", "x"),
        levels=[
            channel_stack(
                channels.image(str(image.id), _ChannelReader(session, image.id, frame)),
                image.pngs,
                (frame, frame),
                source=outages.source(session.label),
                image=_image_name(image),
            )
        ],
        pixel_size=pixel_size(image),
        channels=[
            _channel(name, masses.get(name), image.channel_settings.get(name))
            for name in image.pngs
        ],
        server_metadata=_server_metadata(image, masses),
    )


@dataclass(frozen=True)
class _ChannelReader:
    """Reads one channel of an image by name, checked against the image's size; a class, not a
    closure, so that it pickles (with its session) for ``dask.distributed`` workers."""

    session: TrackerSession
    image_id: int | str
    frame: int

    def __call__(self, name: str) -> np.ndarray:
        data = channel_data(self.session, self.image_id, name)
        if data.shape != (self.frame, self.frame):
            raise ProtocolError(
                f"Channel {name!r} is {data.shape[1]}x{data.shape[0]} pixels; the image object "
                f"says {self.frame}x{self.frame}",
                server=self.session.label,
                obj=f"image {self.image_id}",
            )
        return data


def pixel_size(image: TrackerImage) -> dict[str, float]:
    """Micrometres per pixel along y and x, from the image's (or its run's) FOV size."""
    fov = image.fov_size
    if fov is None and image.run is not None:
        fov = _float((image.run.model_extra or {}).get("fov_size"))
    if not fov or not image.frame:
        return {}
    return {"y": fov / image.frame, "x": fov / image.frame}


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _image_name(image: TrackerImage) -> str:
    run = image.run.label or image.run.name if image.run else None
    fov = image.number or f"image {image.id}"
    name = " ".join(p for p in (run, fov) if p)
    return f"{name} ({image.description})" if image.description else name


def _channel(name: str, mass: int | None, settings: ChannelSettings | None) -> Channel:
    color = None
    limits = None
    if settings is not None:
        color = parse_color(settings.hex) or parse_color(settings.color)
        if settings.intensity_higher is not None:
            low = settings.intensity_lower or 0.0
            high = float(settings.intensity_higher)
            if high > low:
                limits = (float(low), high)
    label = f"{name} ({mass})" if mass is not None else name
    return Channel(name=label, color=color, contrast_limits=limits)


def _server_metadata(image: TrackerImage, masses: Mapping[str, int | None]) -> dict[str, Any]:
    """What napari keeps with the layers: ids and acquisition facts, never credentials."""
    run = image.run
    return {
        "image_id": image.id,
        "number": image.number,
        "folder": image.folder,
        "description": image.description,
        "run": {"id": run.id, "label": run.label, "name": run.name} if run else None,
        "fov_size_um": image.fov_size,
        "frame": image.frame,
        "dwell_time": image.dwell_time,
        "channels": list(image.pngs),
        "masses": {name: mass for name, mass in masses.items() if name in image.pngs},
    }
