"""The Cytomine PIMS connection: open image files lazily, browse by path, fetch windows.

:class:`PimsServer` composes the package's parts, each of which takes the
:class:`~.session.PimsSession`, never the server.
"""

from __future__ import annotations

import httpx

from napari_lablink.client.browse import Entry
from napari_lablink.client.config import Credentials
from napari_lablink.client.connection import Server
from napari_lablink.client.models import RemoteImage
from napari_lablink.client.pims import browse, read
from napari_lablink.client.pims.session import PimsSession
from napari_lablink.client.uri import RemoteURI

__all__ = ["PimsServer"]


class PimsServer(Server):
    """A connection to a Cytomine PIMS server (standalone: no authentication)."""

    scheme = "pims"

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.session = PimsSession(self.uri, self.label, credentials)
        self.transport = self.session.transport

    def _close(self) -> None:
        self.session.close()

    def _open(self, uri: RemoteURI) -> RemoteImage:
        return read.open_image(self.session, uri)

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """The image file at path ``query`` (PIMS has no listing route): one entry, read from
        its ``info``, or none for an empty path or a later page."""
        self._check_open()
        return browse.browse(self.session, query, parent, offset, limit)

    def check(self) -> None:
        """``GET /info``: PIMS has no authentication, so answering is all there is to prove."""
        self._check_open()
        self.session.info()

    def window(
        self,
        path: str,
        tier: int,
        region: tuple[int, int, int, int],
        *,
        channel: int | None,
        z: int,
        t: int,
        bits: int,
    ) -> httpx.Response:
        """``POST .../window.png`` of raw data; ``region`` is (top, left, height, width) in the
        pixels of tier ``tier``. ``channel`` None asks for every sample (RGB images)."""
        self._check_open()
        return self.session.window(path, tier, region, channel=channel, z=z, t=t, bits=bits)
