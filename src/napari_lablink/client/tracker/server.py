"""The MIBItracker connection: every operation of Ionpath's reference client, plus opening images
lazily for napari.

:class:`TrackerServer` composes the package's parts: the logged-in :mod:`.session`, the look-ups
of :mod:`.records`, reading (:mod:`.read`), writing (:mod:`.write`) and :mod:`.browse`. Each part
takes the session, never the server.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from napari_lablink.client.browse import Entry
from napari_lablink.client.config import Credentials
from napari_lablink.client.connection import Server
from napari_lablink.client.models import RemoteImage
from napari_lablink.client.tracker import browse, read, records, write
from napari_lablink.client.tracker.channels import ChannelCache
from napari_lablink.client.tracker.models import Conjugate, TrackerImage, TrackerRun
from napari_lablink.client.tracker.session import REFRESH_SECONDS, TrackerSession
from napari_lablink.client.tracker.write import FileSource
from napari_lablink.client.uri import RemoteURI
from napari_lablink.formats.mibitiff import MibiImage

__all__ = ["Routes", "TrackerServer"]

#: Channels downloaded at once, one per connection of the transport's 16. Each channel waits
#: on two requests (its signed URL, then the PNG), so across a network the threads mostly wait;
#: decoding releases the GIL. At 20 ms latency 16 beat 8 by about a fifth, on loopback no worse.
DOWNLOAD_THREADS = 16


class Routes:
    """The reference client's ``get/post/put/delete(route, ...)``, as ``server.api.get(...)``.

    They live on their own object because ``Server.get`` already means "open an image".
    """

    def __init__(self, server: TrackerServer) -> None:
        self._server = server

    def get(self, route: str, **kwargs: Any) -> httpx.Response:
        return self._server.request("GET", route, **kwargs)

    def post(self, route: str, **kwargs: Any) -> httpx.Response:
        return self._server.request("POST", route, **kwargs)

    def put(self, route: str, **kwargs: Any) -> httpx.Response:
        return self._server.request("PUT", route, **kwargs)

    def delete(self, route: str, **kwargs: Any) -> httpx.Response:
        return self._server.request("DELETE", route, **kwargs)


class TrackerServer(Server):
    """A connection to a MIBItracker backend (``mibi://`` and ``mibi+http://`` URIs).

    Connecting logs in (see :class:`~.session.TrackerSession`); ``clock`` (monotonic seconds)
    decides when the token is refreshed, and tests pass their own.
    """

    scheme = "mibi"

    def __init__(
        self,
        uri: RemoteURI,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float | None = REFRESH_SECONDS,
    ) -> None:
        super().__init__(uri, credentials)
        self.session = TrackerSession(
            self.uri, self.label, credentials, clock=clock, refresh_seconds=refresh_seconds
        )
        self.transport = self.session.transport
        self.api = Routes(self)
        #: Downloads channels that a compute needs together, however few threads dask has.
        self._downloads = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="mibi-channels")
        #: Decoded channels, shared by every open of an image and bounded in bytes.
        self.channels = ChannelCache(self._downloads)

    def _close(self) -> None:
        self._downloads.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    # -- the contract ---------------------------------------------------------------------------

    def _open(self, uri: RemoteURI) -> RemoteImage:
        return read.open_image(self.session, uri, self.channels)

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """Runs (``query`` = an exact label or name), or with ``parent`` a run's FOVs or an
        image's channels (``query`` = a substring); ``limit`` entries from ``offset``."""
        self._check_open()
        resolved = self.resolve(parent) if parent is not None else None
        return browse.browse(self.session, query, resolved, offset, limit)

    def check(self) -> None:
        """``OPTIONS /`` with the session's token (the login itself happened on connecting)."""
        self.request("OPTIONS", "/", obj="server")

    # -- plain calls ----------------------------------------------------------------------------

    def request(
        self, method: str, route: str, *, obj: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One call to a tracker route (``"images/7/"``): session kept, retried, typed errors.

        ``kwargs`` go to httpx (``params``, ``json``, ``data``, ``files``, ...).
        """
        self._check_open()
        return self.session.request(method, route, obj=obj, **kwargs)

    def transfer(
        self, method: str, url: str, *, obj: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to a signed storage URL: 30 s timeout, and the token is never sent."""
        self._check_open()
        return self.session.transfer(method, url, obj=obj, **kwargs)

    def refresh(self) -> None:
        """Exchange the token for a fresh one (or log in again when it has expired)."""
        self._check_open()
        self.session.refresh()

    # -- the reference client's operations ------------------------------------------------------

    def download_file(self, path: str) -> io.BytesIO:
        """A file of the tracker's storage (``{run.path}/{folder}/...``), rewound."""
        self._check_open()
        return self.session.download_file(path)

    def search_runs(
        self, run_name: str | None = None, run_label: str | None = None
    ) -> list[TrackerRun]:
        """Runs with this name and/or label (labels are unique, names are not)."""
        self._check_open()
        return records.search_runs(self.session, run_name, run_label)

    def run(self, run_label: str) -> TrackerRun:
        """The run with this label."""
        self._check_open()
        return records.run(self.session, run_label)

    def run_images(self, run_label: str) -> list[TrackerImage]:
        """The images of the run with this label."""
        self._check_open()
        return records.run_images(self.session, run_label)

    def image(self, image_id: int | str) -> TrackerImage:
        """One image object."""
        self._check_open()
        return records.image(self.session, image_id)

    def image_id(self, run_label: str, fov_id: str) -> int:
        """The id of the image of FOV ``fov_id`` (``FOV1``, ``Point4``) of a run label (or
        name); exactly one image must match."""
        self._check_open()
        return records.image_id(self.session, run_label, fov_id)

    def image_conjugates(self, image_id: int | str) -> list[Conjugate]:
        """The antibody conjugates of the image's panel (empty without section or panel)."""
        self._check_open()
        return records.image_conjugates(self.session, image_id)

    def get_mibi_image(self, image_id: int | str) -> MibiImage:
        """The image's whole MIBItiff (``summed_image.tiff``), read."""
        self._check_open()
        return read.mibi_image(self.session, image_id)

    def get_channel_data(self, image_id: int | str, channel_name: str) -> np.ndarray:
        """One channel as a 2-D uint16 array of counts."""
        self._check_open()
        return read.channel_data(self.session, image_id, channel_name)

    def upload_channel(
        self, image_id: int | str, image_file: FileSource | np.ndarray, filename: str | None = None
    ) -> dict[str, Any]:
        """Add a channel to an image from a PNG/TIFF file (path or open file) or a 2-D array
        (named by ``filename``; see :func:`.write.upload_channel`)."""
        self._check_open()
        answer = write.upload_channel(self.session, image_id, image_file, filename)
        self.channels.forget(str(image_id))  # a later open must see the new channel's pixels
        return answer

    def upload_mibitiff(self, tiff_file: FileSource, run_id: int | None = None) -> dict[str, Any]:
        """Upload a MIBItiff to the run ``run_id``, which processes it into an image."""
        self._check_open()
        answer = write.upload_mibitiff(self.session, tiff_file, run_id)
        self.channels.forget()  # it may replace the channels of an image already read
        return answer

    def create_imageset(
        self,
        image_ids: Sequence[int],
        imageset_name: str,
        project_id: int | None,
        imageset_description: str | None = None,
    ) -> dict[str, Any]:
        """A new image set of these images in a project."""
        self._check_open()
        return write.create_imageset(
            self.session, image_ids, imageset_name, project_id, imageset_description
        )

    def copy_run(
        self, old_label: str, new_label: str, **kwargs: Any
    ) -> tuple[TrackerRun, TrackerRun]:
        """A new run ``new_label`` from the run ``old_label`` and its XML; ``kwargs`` override
        fields of the new run. Returns (old run, new run)."""
        self._check_open()
        return write.copy_run(self.session, old_label, new_label, **kwargs)

    def copy_run_image_metadata(
        self, old_run_label: str, new_run_label: str, **kwargs: Any
    ) -> dict[int, TrackerImage]:
        """Copy each image's metadata (and SED image) to the image of the same folder in the
        run ``new_run_label``. Returns {old id: updated image}."""
        self._check_open()
        return write.copy_run_image_metadata(self.session, old_run_label, new_run_label, **kwargs)
