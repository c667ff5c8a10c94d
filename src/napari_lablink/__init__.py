"""napari-lablink: open lab server images in napari lazily, upload layers back, watch live PSFs.

The Python API works without napari::

    import napari_lablink

    with napari_lablink.connect("mikro+http://127.0.0.1:8080", token="...") as server:
        image = server.get("representation/1")
        image.data  # a lazy xarray.DataArray

    image = napari_lablink.open_image("mikro+http://127.0.0.1:8080/mikro/image/3")

In napari, ``viewer.open(uri)`` opens in the background and returns at once; a script that needs
the layers calls :func:`open_and_wait` (or :func:`wait_for_opens` after ``viewer.open``). Both
import napari only when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from napari_lablink.client.connection import Server, connect, open_image
from napari_lablink.client.errors import (
    AuthenticationError,
    ClosedConnectionError,
    ConfigurationError,
    InvalidURIError,
    LablinkError,
    NotFoundError,
    ProtocolError,
    ServerError,
    ServerUnavailableError,
    UploadCancelledError,
    UploadError,
)
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.client.uri import RemoteURI, parse_uri

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__version__ = "0.1.0"


def open_and_wait(
    viewer: napari.Viewer,
    uri: str,
    *,
    channels: Sequence[str | int] | None = None,
    timeout: float = 120.0,
) -> list[Layer]:
    """Open ``uri`` in ``viewer`` and return its layers once added, the event loop running
    meanwhile; ``channels`` (names or indices) picks channels. Raises the open's
    :class:`LablinkError`, or :class:`TimeoutError` after ``timeout`` seconds."""
    from napari_lablink._napari.opening import open_and_wait as open_

    return open_(viewer, uri, channels=channels, timeout=timeout)


def wait_for_opens(timeout: float = 120.0) -> bool:
    """After ``viewer.open(uri)``: run the event loop until every open has added its layers
    (a failure is a napari notification); False if ``timeout`` seconds passed first."""
    from napari_lablink._napari.opening import wait_for_opens as wait

    return wait(timeout)


__all__ = [
    "AuthenticationError",
    "Channel",
    "ClosedConnectionError",
    "ConfigurationError",
    "InvalidURIError",
    "LablinkError",
    "NotFoundError",
    "ProtocolError",
    "RemoteImage",
    "RemoteURI",
    "Server",
    "ServerError",
    "ServerUnavailableError",
    "UploadCancelledError",
    "UploadError",
    "connect",
    "open_and_wait",
    "open_image",
    "parse_uri",
    "wait_for_opens",
]
