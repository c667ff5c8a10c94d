"""Uploads from napari to a MIBItracker: channel layers as a MIBItiff to a run, one layer as a
new channel of an image. Both return the tracker URI of the image they changed, so napari (or the
user) can open it straight away.

Both check what they can before sending any data (a channel's size against the image's frame,
square channels for a run, data types) and take a ``cancel`` event that stops them between
steps (a tracker upload is one request, which cannot be stopped half-way) and ``progress(done,
total)`` steps.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from napari.utils.notifications import show_warning

from napari_lablink._napari.mibitiff.layers import mibi_layers
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.errors import ConfigurationError, UploadCancelledError
from napari_lablink.client.tracker.models import TrackerImage
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.client.uri import RemoteURI, parse_uri

__all__ = ["image_uri", "upload_channel_layer", "upload_layers_to_run"]

_FOV_NUMBER = re.compile(r"^FOV(\d+)$")
#: Steps reported as progress: checking the target (0), sending (1), done (2).
STEPS = 2
Progress = Callable[[int, int], None]


def _step(done: int, progress: Progress | None, cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise UploadCancelledError("Upload cancelled before anything was sent")
    if progress is not None:
        progress(done, STEPS)


def image_uri(target: RemoteURI, image_id: int | str) -> str:
    """``mibi[+http]://HOST[:PORT][/PREFIX]/images/ID`` on the server of ``target``."""
    return str(replace(target, kind="images", object_id=str(image_id), fov=None, options=()))


def _tracker(target: RemoteURI, *, kinds: tuple[str, ...], form: str) -> TrackerServer:
    if target.scheme != "mibi" or target.kind not in kinds or target.object_id is None:
        raise ConfigurationError(
            f"{target.without_options()} is not a MIBItracker upload target", hint=f"Use {form}"
        )
    server = shared_connection(target)
    assert isinstance(server, TrackerServer)
    return server


def _new_fov(images: list[TrackerImage]) -> str:
    """The FOV id after the run's highest ``FOVn``: an upload never overwrites a FOV unasked."""
    numbers = [int(m.group(1)) for i in images if (m := _FOV_NUMBER.match(i.number or ""))]
    return f"FOV{max(numbers, default=0) + 1}"


def upload_layers_to_run(
    path: str,
    layer_data: list[tuple[Any, dict, str]],
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Save channel layers as a MIBItiff and upload it to the run ``path`` names.

    ``mibi+http://HOST/runs/LABEL/FOV`` fills (or replaces) that FOV's channels;
    ``.../runs/LABEL`` adds a new FOV after the run's last one.
    """
    target = parse_uri(path)
    server = _tracker(
        target, kinds=("runs",), form="mibi+http://HOST:PORT/runs/RUN_LABEL[/FOV] to upload"
    )
    content = mibi_layers(layer_data)
    for note in content.notes:
        show_warning(note)
    height, width = content.data.shape[1:]
    if height != width:
        raise ConfigurationError(
            f"MIBItracker images are square; {content.layer_names[0]!r} is {width}x{height} pixels",
            server=server.label,
            hint="Crop or pad the layers to a square before uploading them to a run",
        )
    _step(0, progress, cancel)
    run = server.run(str(target.object_id))
    images = server.run_images(str(target.object_id))
    fov = target.fov or _new_fov(images)
    existing = next((i for i in images if i.number == fov), None)
    metadata = {
        **content.metadata,
        "run": run.name,
        "fov_id": fov,
        "folder": existing.folder if existing and existing.folder else fov,
    }
    buffer = io.BytesIO()
    content.write(buffer, metadata, server=server.label)
    _step(1, progress, cancel)
    answer = server.upload_mibitiff(buffer.getvalue(), run_id=run.id)
    _step(STEPS, progress, None)
    image_id = answer.get("image_id") if isinstance(answer, dict) else None
    if image_id is None:  # the answer need not name it: look the FOV up
        image_id = server.image_id(str(target.object_id), fov)
    return [image_uri(target, image_id)]


def upload_channel_layer(
    target_uri: str,
    data: Any,
    channel: str,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Add ``data`` (one 2-D plane) as channel ``channel`` of the image ``target_uri`` names.

    Integer data goes as a 16-bit PNG, float data as a float32 TIFF, named after the channel.
    A plane whose size is not the image's frame is refused before it is sent.
    """
    target = parse_uri(target_uri)
    server = _tracker(target, kinds=("images",), form="mibi+http://HOST:PORT/images/ID")
    name = channel.strip()
    if not name or "/" in name:
        raise ConfigurationError(
            f"{channel!r} cannot name a channel", hint="Give a channel name without '/'"
        )
    plane = np.asarray(data)
    if plane.dtype.kind not in "biuf":
        raise ConfigurationError(
            f"Channel {name!r} has data type {plane.dtype}; a tracker channel holds numbers",
            hint="Upload an integer (counts) or float layer",
        )
    _step(0, progress, cancel)
    image = server.image(str(target.object_id))
    if image.frame and plane.shape != (image.frame, image.frame):
        height, width = plane.shape[-2:]
        raise ConfigurationError(
            f"Channel {name!r} is {width}x{height} pixels; image {target.object_id} is "
            f"{image.frame}x{image.frame}",
            server=server.label,
            hint="A new channel must have the image's size: resample or crop the layer first",
        )
    _step(1, progress, cancel)
    server.upload_channel(str(target.object_id), plane, name)
    _step(STEPS, progress, None)
    return image_uri(target, str(target.object_id))
