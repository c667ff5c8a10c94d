"""The MIBItracker protocol (``protocols/mibitracker.md``): a REST backend with JWT sessions,
channel PNGs and MIBItiffs behind signed storage URLs.

:class:`TrackerServer` behaves on the wire like Ionpath's reference client (seed 001): it logs in
by email and password (or validates a given token with ``OPTIONS /``), sends ``JWT <token>``,
refreshes the token once 300 s have passed since the last refresh, retries 502/503 for every
method but the login, and gives tracker calls 10 s and storage transfers 30 s. Unlike the
reference client, every transfer has a timeout, and the token only ever goes to the tracker's own
origin: signed URLs are fetched through the same pooled session, whose auth skips other origins.

Every operation of the reference client has an equivalent method here; ``_open`` turns an image
URI into a lazy channel stack for napari.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import httpx
import numpy as np

from napari_lablink.client.browse import Entry
from napari_lablink.client.colors import parse_color
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import (
    AuthenticationError,
    ConfigurationError,
    LablinkError,
    NotFoundError,
    ProtocolError,
)
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.client.tracker_browse import browse_tracker
from napari_lablink.client.tracker_channels import (
    ChannelCache,
    channel_file,
    channel_stack,
    decode_png,
)
from napari_lablink.client.tracker_models import (
    ChannelSettings,
    Conjugate,
    TrackerImage,
    TrackerRun,
    related_id,
)
from napari_lablink.client.transport import (
    HeaderAuth,
    RetryPolicy,
    Transport,
    describe_response,
)
from napari_lablink.config import Credentials
from napari_lablink.formats.mibitiff import MibiImage, read_mibitiff
from napari_lablink.uri import RemoteURI

__all__ = ["AmbiguousImageError", "Routes", "TrackerServer"]

#: The reference client's retry rule: 3 retries, backoff factor 0.3 s (urllib3's Retry).
TRACKER_RETRY = RetryPolicy(attempts=4, backoff=0.3)
CALL_TIMEOUT = httpx.Timeout(10.0)
TRANSFER_TIMEOUT = httpx.Timeout(30.0)
REFRESH_SECONDS = 300.0
#: Channels downloaded at once; the transport pools 16 connections.
DOWNLOAD_THREADS = 8

_LOGIN_HINT = (
    "Pass email= and password= (or token=) to napari_lablink.connect, set LABLINK_MIBI_EMAIL "
    "and LABLINK_MIBI_PASSWORD, or put email and password in the servers.toml table of this "
    "server"
)
#: Image fields copy_run_image_metadata carries over (the acquisition's own description).
_IMAGE_FIELDS = (
    "description",
    "fov_size",
    "frame",
    "dwell_time",
    "depths",
    "mass_gain",
    "mass_offset",
    "time_bin",
    "x_coord",
    "y_coord",
)
_IMAGE_RELATED = ("project", "tissue", "section", "aperture")

FileSource = str | os.PathLike[str] | IO[bytes] | bytes


class AmbiguousImageError(LablinkError):
    """A run label (or name) and FOV match more than one image."""

    default_hint = "Open the image by id (mibi://HOST/images/ID) or use the run's unique label"


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

    ``clock`` (monotonic seconds) decides when the token is refreshed; tests pass their own.
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
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._token: str | None = credentials.token
        self._refreshed = clock()
        self._session_lock = threading.RLock()
        base = self.uri.base_url
        self.transport = Transport(
            base,
            label=self.label,
            auth=HeaderAuth(httpx.URL(base), "JWT", lambda: self._token),
            secrets=self._secrets,
            timeout=CALL_TIMEOUT,
            retry=TRACKER_RETRY,
        )
        self.api = Routes(self)
        #: Downloads channels that a compute needs together, however few threads dask has.
        self._downloads = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="mibi-channels")
        #: Decoded channels, shared by every open of an image and bounded in bytes.
        self.channels = ChannelCache(self._downloads)
        try:
            self._start_session()
        except BaseException:
            self._close()
            raise

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (*self.credentials.secrets, self._token) if s)

    def _close(self) -> None:
        self._downloads.shutdown(wait=False, cancel_futures=True)
        self.transport.close()

    # -- session ------------------------------------------------------------------------------

    def _start_session(self) -> None:
        """Validate the given token, or log in; a refused token falls back to the password."""
        has_login = bool(self.credentials.email and self.credentials.password)
        if self.credentials.token:
            try:
                self._validate_token()
                return
            except AuthenticationError:
                if not has_login:
                    raise
        if not has_login:
            raise ConfigurationError(
                "No MIBItracker login is configured", server=self.label, hint=_LOGIN_HINT
            )
        self._login()

    def _validate_token(self) -> None:
        """What the reference client does with a given token: ``OPTIONS /`` must answer 2xx."""
        response = self.transport.request("OPTIONS", "/", expect=(401, 403), timeout=CALL_TIMEOUT)
        if response.status_code in (401, 403):
            said = self.transport.scrub(_said(response))
            raise AuthenticationError(
                f"The tracker refused the token ({said})",
                server=self.label,
                hint="Log in again for a new token, or use email and password",
            )

    def _login(self) -> None:
        """``POST api-token-auth/``, never retried (as in the reference client)."""
        with Transport(
            self.uri.base_url,
            label=self.label,
            secrets=self._secrets,
            timeout=CALL_TIMEOUT,
            retry=RetryPolicy(attempts=1),
            max_connections=1,
        ) as login:
            response = login.request(
                "POST",
                "api-token-auth/",
                json={"email": self.credentials.email, "password": self.credentials.password},
                expect=(400, 401, 403),
                idempotent=False,
            )
        if response.status_code in (400, 401, 403):
            said = self.transport.scrub(_said(response))
            raise AuthenticationError(
                f"The tracker refused the login of {self.credentials.email} ({said})",
                server=self.label,
                hint="Check the email and password (arguments, LABLINK_MIBI_EMAIL and "
                "LABLINK_MIBI_PASSWORD, or servers.toml)",
            )
        self._token = self._token_of(response, "api-token-auth/")
        self._refreshed = self._clock()

    def refresh(self) -> None:
        """Exchange the token for a fresh one (``POST api-token-refresh/``).

        The tracker refuses to refresh an expired token; with a password at hand this logs in
        again instead, otherwise the user is told to.
        """
        self._check_open()
        with self._session_lock:
            response = self.transport.request(
                "POST",
                "api-token-refresh/",
                json={"token": self._token},
                expect=(400, 401),
                idempotent=True,
            )
            if response.status_code in (400, 401):
                if self.credentials.email and self.credentials.password:
                    self._login()
                    return
                said = self.transport.scrub(_said(response))
                raise AuthenticationError(
                    f"The tracker would not refresh the session token ({said})",
                    server=self.label,
                    hint="The token has expired: log in again for a new one",
                )
            self._token = self._token_of(response, "api-token-refresh/")
            self._refreshed = self._clock()

    def _token_of(self, response: httpx.Response, route: str) -> str:
        token = _json(self, response, route).get("token")
        if not isinstance(token, str) or not token:
            raise self.transport.protocol_error(f"The answer of {route} holds no token")
        return token

    def _keep_session(self) -> None:
        """The reference client's rule: refresh once ``refresh`` seconds have passed."""
        if self._refresh_seconds is None:
            return
        with self._session_lock:
            if self._clock() - self._refreshed >= self._refresh_seconds:
                self.refresh()

    # -- plain calls --------------------------------------------------------------------------

    def request(
        self, method: str, route: str, *, obj: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One call to a tracker route (``"images/7/"``): session kept, retried, typed errors.

        ``kwargs`` go to httpx (``params``, ``json``, ``data``, ``files``, ...). A token the
        tracker no longer accepts although it was not due for refresh (the computer slept, the
        server restarted) is replaced by logging in again, once, when a password is at hand.
        """
        self._check_open()
        self._keep_session()
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        route = route.lstrip("/")
        used = self._token
        response = self.transport.request(
            method, route, idempotent=True, obj=obj, expect=(401,), **kwargs
        )
        if response.status_code != 401:
            return response
        if not (self.credentials.email and self.credentials.password):
            raise self.transport.error_for(response, obj)
        with self._session_lock:
            if self._token == used:  # no other thread has logged in again meanwhile
                self._login()
        return self.transport.request(method, route, idempotent=True, obj=obj, **kwargs)

    def _json(self, method: str, route: str, *, obj: str | None = None, **kwargs: Any) -> Any:
        return _json(self, self.request(method, route, obj=obj, **kwargs), route, obj)

    def transfer(
        self, method: str, url: str, *, obj: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to a signed storage URL: 30 s timeout, and the token is never sent.

        The URL is absolute and on storage's origin, so the session's auth leaves it alone; if a
        tracker ever signs URLs on its own origin, the token is still kept out by sending the
        request without the session's auth.
        """
        self._check_open()
        if not url.startswith(("http://", "https://")):
            raise self.transport.protocol_error(f"The signed URL is not absolute: {url[:40]}", obj)
        return self.transport.request(
            method, url, idempotent=True, obj=obj, timeout=TRANSFER_TIMEOUT, auth=None, **kwargs
        )

    def _signed_url(self, route: str, obj: str | None, **params: Any) -> str:
        body = self._json("GET", route, obj=obj, params=params)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise self.transport.protocol_error(f"The answer of {route} holds no signed URL", obj)
        return url

    # -- the reference client's operations ------------------------------------------------------

    def download_file(self, path: str) -> io.BytesIO:
        """A file of the tracker's storage (``{run.path}/{folder}/...``), rewound."""
        obj = f"file {path}"
        url = self._signed_url("download/", obj, path=path)
        return io.BytesIO(self.transfer("GET", url, obj=obj).content)

    def search_runs(self, run_name: str | None = None, run_label: str | None = None):
        """Runs with this name and/or label (labels are unique, names are not)."""
        params: dict[str, str] = {"paging": "no"}
        if run_name is not None:
            params["name"] = run_name
        if run_label is not None:
            params["label"] = run_label
        found = self._json("GET", "runs/", params=params, obj="runs")
        return [TrackerRun.model_validate(run) for run in _as_list(self, found, "runs/")]

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """Runs (``query`` = an exact label or name), or with ``parent`` a run's FOVs or an
        image's channels (``query`` = a substring); ``limit`` entries from ``offset``."""
        self._check_open()
        return browse_tracker(self, query, parent, offset, limit)

    def run(self, run_label: str) -> TrackerRun:
        """The run with this label."""
        runs = self.search_runs(run_label=run_label)
        if not runs:
            raise NotFoundError(
                "No run has this label", server=self.label, obj=f"run {run_label!r}"
            )
        return runs[0]

    def run_images(self, run_label: str) -> list[TrackerImage]:
        """The images of the run with this label."""
        return self._images(obj=f"run {run_label!r}", run__label=run_label)

    def _images(self, *, obj: str, **filters: str) -> list[TrackerImage]:
        found = self._json("GET", "images/", params={**filters, "paging": "no"}, obj=obj)
        return [TrackerImage.model_validate(i) for i in _as_list(self, found, "images/")]

    def image(self, image_id: int | str) -> TrackerImage:
        """One image object."""
        obj = f"image {image_id}"
        return TrackerImage.model_validate(
            self._json("GET", f"images/{self._id(image_id, obj)}/", obj=obj)
        )

    def image_id(self, run_label: str, fov_id: str) -> int:
        """The id of the image of FOV ``fov_id`` (``FOV1``, ``Point4``) of a run.

        Looked up by run label, then by run name when the label finds nothing (what the
        reference client does); exactly one image must match.
        """
        obj = f"run {run_label!r}, FOV {fov_id!r}"
        found = self._images(obj=obj, run__label=run_label, number=fov_id)
        if not found:
            found = self._images(obj=obj, run__name=run_label, number=fov_id)
        if not found:
            raise NotFoundError(
                "No image matches this run label (or name) and FOV",
                server=self.label,
                obj=obj,
                hint="Check the run label and the FOV id (such as FOV1 or Point1)",
            )
        if len(found) > 1:
            ids = ", ".join(str(i.id) for i in found)
            raise AmbiguousImageError(
                f"{len(found)} images match (ids {ids})", server=self.label, obj=obj
            )
        return found[0].id

    def image_conjugates(self, image_id: int | str) -> list[Conjugate]:
        """The antibody conjugates of the image's panel (empty without section or panel)."""
        obj = f"image {image_id}"
        found = self._json(
            "GET", f"images/{self._id(image_id, obj)}/conjugates/", params={"paging": "no"}, obj=obj
        )
        return [Conjugate.model_validate(c) for c in _as_list(self, found, "conjugates/")]

    def get_mibi_image(self, image_id: int | str) -> MibiImage:
        """The image's whole MIBItiff (``summed_image.tiff``), read."""
        image = self.image(image_id)
        folder = image.storage_folder
        if folder is None:
            raise ProtocolError(
                "The image object names no run path or folder, so its file cannot be found",
                server=self.label,
                obj=f"image {image_id}",
            )
        return read_mibitiff(self.download_file(f"{folder}/summed_image.tiff"))

    def get_channel_data(self, image_id: int | str, channel_name: str) -> np.ndarray:
        """One channel as a 2-D uint16 array of counts."""
        obj = f"image {image_id}, channel {channel_name!r}"
        try:
            url = self._signed_url(
                f"images/{self._id(image_id, obj)}/channel_url/", obj, channel=channel_name
            )
        except NotFoundError as exc:
            raise NotFoundError(
                f"The image or the channel does not exist ({exc.message})",
                server=self.label,
                obj=obj,
                hint="Check the channel name against the image's channel list (its 'pngs')",
            ) from None
        return decode_png(self.transfer("GET", url, obj=obj).content, f"channel {channel_name!r}")

    def upload_channel(
        self, image_id: int | str, image_file: FileSource | np.ndarray, filename: str | None = None
    ) -> dict[str, Any]:
        """Add a channel to an image from a PNG/TIFF file (path or open file) or a 2-D array.

        ``filename`` names the channel (``"CD45.png"``, ``"mask.tiff"``); for paths it defaults
        to the file's name. For arrays it may omit the extension: integer data is then sent as a
        16-bit PNG, other data as a float32 TIFF.
        """
        obj = f"image {image_id}"
        if isinstance(image_file, np.ndarray) or hasattr(image_file, "__array__"):
            if not filename:
                raise ConfigurationError(
                    "A channel uploaded from an array needs a name",
                    server=self.label,
                    obj=obj,
                    hint="Pass filename='<channel>' (optionally ending in .png or .tiff)",
                )
            name, payload, content_type = channel_file(np.asarray(image_file), filename)
        else:
            name, payload = _file_payload(image_file, filename, "upload_channel")
            content_type = "image/png" if name.lower().endswith(".png") else "image/tiff"
        target = self._id(image_id, obj)
        answer = self._json(
            "POST",
            f"images/{target}/upload_channel/",
            obj=f"{obj}, channel {name!r}",
            files={"attachment": (name, payload, content_type)},
        )
        self.channels.forget(str(target))  # a later open must see the new channel's pixels
        return answer

    def upload_mibitiff(self, tiff_file: FileSource, run_id: int | None = None) -> dict[str, Any]:
        """Upload a MIBItiff to a run: sign a storage URL, PUT the file there without the token,
        then register it so the tracker processes it into the image of its folder."""
        if run_id is None:
            raise ConfigurationError(
                "Uploading a MIBItiff needs the id of its run",
                server=self.label,
                hint="Pass run_id (see search_runs or run)",
            )
        name, payload = _file_payload(tiff_file, "image.tiff", "upload_mibitiff")
        obj = f"run {run_id}, file {name}"
        signed = self._json(
            "GET", "upload_mibitiff/sign_tiff_url/", params={"run_id": run_id}, obj=obj
        )
        if not isinstance(signed, dict) or not signed.get("url") or not signed.get("location"):
            raise self.transport.protocol_error("The upload signing answer lacks url or location")
        self.transfer(
            "PUT", signed["url"], obj=obj, content=payload, headers={"Content-Type": "image/tiff"}
        )
        answer = self._json(
            "POST",
            "upload_mibitiff/",
            json={"location": signed["location"], "run_id": run_id},
            obj=obj,
        )
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
        return self._json(
            "POST",
            "imagesets/",
            json={
                "images": [int(i) for i in image_ids],
                "name": imageset_name,
                "project": project_id,
                "description": imageset_description,
            },
            obj=f"image set {imageset_name!r}",
        )

    def copy_run(
        self, old_label: str, new_label: str, **kwargs: Any
    ) -> tuple[TrackerRun, TrackerRun]:
        """A new run ``new_label`` from the run ``old_label`` and its XML (the tracker creates
        one empty image per FOV of it). ``kwargs`` override fields of the new run, e.g.
        ``fov_size`` or ``project``. Returns (old run, new run)."""
        old = self.run(old_label)
        if not old.path or not old.xml:
            raise ProtocolError(
                "The run object names no path or XML file to copy",
                server=self.label,
                obj=f"run {old_label!r}",
            )
        xml = self.download_file(f"{old.path}/{old.xml}").getvalue()
        extra = old.model_extra or {}
        fields: dict[str, Any] = {
            "instrument": related_id(old.instrument),
            "slides": ",".join(
                str(related_id(s)) for s in extra.get("slide_ids") or [] if related_id(s)
            ),
            "label": new_label,
            "fov_size": old.fov_size,
            "aperture": related_id(old.aperture),
            "project": related_id(old.project),
            "description": extra.get("description"),
            "operator": extra.get("operator"),
            "user_run_date": f"{old.run_date}T00:00:00" if old.run_date else None,
        }
        fields.update(kwargs)
        data = {k: str(v) for k, v in fields.items() if v is not None and v != ""}
        filename = str(extra.get("filename") or old.xml)
        new = self._json(
            "POST",
            "runs/",
            data=data,
            files={"xml": (filename, xml, "application/xml")},
            obj=f"run {new_label!r}",
        )
        return old, TrackerRun.model_validate(new)

    def copy_run_image_metadata(
        self, old_run_label: str, new_run_label: str, **kwargs: Any
    ) -> dict[int, TrackerImage]:
        """Copy each image's metadata (and SED image) to the image of the same folder in the
        run ``new_run_label``; ``kwargs`` override fields. Pixel data is not copied: the new
        images stay empty until their MIBItiffs are uploaded. Returns {old id: updated image}."""
        old_images = self.run_images(old_run_label)
        targets = {i.folder: i for i in self.run_images(new_run_label)}
        updated: dict[int, TrackerImage] = {}
        for old in old_images:
            new = targets.get(old.folder)
            if new is None:
                continue
            fields: dict[str, Any] = {name: getattr(old, name) for name in _IMAGE_FIELDS}
            fields.update({name: related_id(getattr(old, name)) for name in _IMAGE_RELATED})
            fields.update(kwargs)
            fields = {k: v for k, v in fields.items() if v is not None}
            obj = f"image {new.id}"
            if old.sed and old.storage_folder:
                sed = self.download_file(f"{old.storage_folder}/{old.sed}").getvalue()
                body = self._json(
                    "PUT",
                    f"images/{new.id}/",
                    data={k: str(v) for k, v in fields.items()},
                    files={"attachment": (old.sed, sed, "application/octet-stream")},
                    obj=obj,
                )
            else:
                body = self._json("PUT", f"images/{new.id}/", json=fields, obj=obj)
            updated[old.id] = TrackerImage.model_validate(body)
        return updated

    # -- opening images -------------------------------------------------------------------------

    def _open(self, uri: RemoteURI) -> RemoteImage:
        if uri.kind == "runs":
            if uri.fov is None:
                raise ConfigurationError(
                    f"{uri.without_options()} names a run but no FOV",
                    server=self.label,
                    hint=f"Use {uri.server}/runs/{uri.object_id}/FOV1 (the FOV's id)",
                )
            image_id = self.image_id(str(uri.object_id), uri.fov)
        else:
            image_id = int(self._id(str(uri.object_id), f"image {uri.object_id}"))
        image = self.image(image_id)
        obj = f"image {image.id}"
        if not image.pngs:
            raise NotFoundError(
                "The image has no channels yet",
                server=self.label,
                obj=obj,
                hint="Upload its MIBItiff (upload_mibitiff) or a channel first",
            )
        if not image.frame:
            raise ProtocolError(
                "The image object does not say its size in pixels (frame)",
                server=self.label,
                obj=obj,
            )
        masses = {c.target: c.mass for c in self.image_conjugates(image.id) if c.target}
        cache = self.channels.image(str(image.id), lambda name: self._channel_plane(image, name))
        shape = (image.frame, image.frame)
        fov_size = image.fov_size or _float(
            image.run.model_extra.get("fov_size") if image.run else None
        )
        pixel_size = {}
        if fov_size:
            pixel_size = {"y": fov_size / image.frame, "x": fov_size / image.frame}
        return RemoteImage(
            uri=str(uri.without_options()),
            name=_image_name(image),
            dims=("c", "y", "x"),
            levels=[channel_stack(cache, image.pngs, shape)],
            pixel_size=pixel_size,
            channels=[
                _channel(name, masses.get(name), image.channel_settings.get(name))
                for name in image.pngs
            ],
            server_metadata=_server_metadata(image, masses),
        )

    def _id(self, value: int | str, obj: str) -> str:
        text = str(value).strip()
        if not text.isdigit():
            raise NotFoundError(
                f"{text!r} is not a tracker image id (a whole number)",
                server=self.label,
                obj=obj,
                hint="Use mibi://HOST/images/ID or mibi://HOST/runs/RUN_LABEL/FOV",
            )
        return text

    def _channel_plane(self, image: TrackerImage, name: str) -> np.ndarray:
        plane = self.get_channel_data(image.id, name)
        if plane.shape != (image.frame, image.frame):
            raise ProtocolError(
                f"Channel {name!r} is {plane.shape[1]}x{plane.shape[0]} pixels; the image object "
                f"says {image.frame}x{image.frame}",
                server=self.label,
                obj=f"image {image.id}",
            )
        return plane


# -- helpers ------------------------------------------------------------------------------------


def _said(response: httpx.Response) -> str:
    return describe_response(response) or f"HTTP {response.status_code}"


def _json(server: TrackerServer, response: httpx.Response, route: str, obj: str | None = None):
    if response.status_code == 204 or not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise server.transport.protocol_error(
            f"The tracker answered {route} with something that is not JSON", obj
        ) from None


def _as_list(server: TrackerServer, body: Any, route: str) -> list[Any]:
    """A ``paging=no`` answer is a bare list; a page's ``results`` are accepted too."""
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return body["results"]
    if not isinstance(body, list):
        raise server.transport.protocol_error(f"The tracker answered {route} with no list")
    return body


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _file_payload(source: FileSource, filename: str | None, operation: str) -> tuple[str, bytes]:
    """(file name, bytes) of a path, an open binary file or bytes."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as handle:
                return filename or os.path.basename(path), handle.read()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read {path} for {operation}: {exc.strerror}",
                hint="Check the path and its permissions",
            ) from None
    if isinstance(source, bytes | bytearray | memoryview):
        payload = bytes(source)
    elif hasattr(source, "read"):
        payload = source.read()
        if isinstance(payload, str):
            raise ConfigurationError(
                f"{operation} needs a file opened in binary mode ('rb'), not text mode"
            )
    else:
        raise ConfigurationError(
            f"{operation} takes a path, an open binary file, bytes or an array, "
            f"not {type(source).__name__}"
        )
    name = filename or os.path.basename(str(getattr(source, "name", "") or ""))
    if not name:
        raise ConfigurationError(
            f"{operation} cannot tell the file's name", hint="Pass filename='<name>.png'"
        )
    return name, payload


def _image_name(image: TrackerImage) -> str:
    run = image.run.label or image.run.name if image.run else None
    fov = image.number or f"image {image.id}"
    parts = [p for p in (run, fov) if p]
    name = " ".join(parts)
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
