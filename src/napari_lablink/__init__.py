"""napari-lablink: open lab server images in napari lazily, upload layers back, watch live PSFs.

The Python API works without napari::

    import napari_lablink

    with napari_lablink.connect("mikro+http://127.0.0.1:8080", token="...") as server:
        image = server.get("representation/1")
        image.data  # a lazy xarray.DataArray

    image = napari_lablink.open_image("mikro+http://127.0.0.1:8080/mikro/image/3")
"""

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

__version__ = "0.1.0"

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
    "open_image",
    "parse_uri",
]
