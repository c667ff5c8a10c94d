"""A connection to a mikro server: GraphQL for metadata and grants, zarr on S3 for pixels.

The server class holds what both generations share (the session, the S3 endpoint, which
generation a server lists) and hands each object to the :class:`Generation` its URI kind names.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from napari_lablink.client.arrays import COLOUR_SAMPLES, check_upload_array
from napari_lablink.client.browse import Entry
from napari_lablink.client.config import Credentials
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import (
    AmbiguousArrayError,
    ConfigurationError,
    LablinkError,
    ProtocolError,
    mark_upload_failure,
)
from napari_lablink.client.mikro.generation import Generation, Listed, UploadRequest
from napari_lablink.client.mikro.images import Images
from napari_lablink.client.mikro.representations import Representations
from napari_lablink.client.mikro.roi_server import RoiMethods
from napari_lablink.client.mikro.route import mikro_route
from napari_lablink.client.mikro.session import MikroSession
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.transport import Transport
from napari_lablink.client.upload import Progress, to_ctzyx
from napari_lablink.client.uri import RemoteURI, check_s3_endpoint

__all__ = ["NO_S3_ENDPOINT", "MikroServer"]

#: The message of the error for an object whose S3 endpoint nobody configured.
NO_S3_ENDPOINT = "No S3 endpoint is configured: mikro servers do not say where their data lives"
_ENDPOINT_HINT = (
    'Add ?s3=<endpoint> to the URI, set LABLINK_S3_ENDPOINT, or put s3 = "<endpoint>" in the '
    "servers.toml table of this server"
)


class MikroServer(RoiMethods, Server):
    """A connection to a mikro server (either generation; the URI's kind picks it), with the
    ROIs of its images (:class:`RoiMethods`)."""

    scheme = "mikro"

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        route = mikro_route(self.uri, credentials)
        self.transport = Transport(
            route.base_url, label=self.label, auth=route.auth, secrets=route.secrets
        )
        #: The S3 endpoint an Arkitekt deployment granted; explicit settings take precedence.
        self._granted_s3 = route.granted_s3
        session = self._arkitekt = route.session
        self._images_first = bool(self.uri.prefix) or (
            session is not None and session.configuration.shape != "G1"
        )
        self.session = MikroSession(self.transport, route.worker_login)
        generations: list[Generation] = [Images(self.session), Representations(self.session)]
        self._generations = {g.kind: g for g in generations}
        #: The generation whose listing this server answered, once one did.
        self._listing: Generation | None = None
        #: Ids of pyramid levels seen in listings: browsing shows a pyramid as one image.
        self._levels: set[str] = set()
        #: (kind, query, shown offset) -> the server's offset it starts at, once levels were
        #: skipped before it: browse's offsets count shown entries.
        self._cursors: dict[tuple[str, str, int], int] = {}

    @property
    def closed(self) -> bool:
        """Closed, or its Arkitekt login was (logged out): a shared connection is then redone."""
        return super().closed or (self._arkitekt is not None and self._arkitekt.closed)

    def _close(self) -> None:
        self.transport.close()

    def _generation(self, kind: str) -> Generation:
        generation = self._generations.get(kind)
        if generation is None:
            raise ConfigurationError(
                f"Unknown kind {kind!r}",
                server=self.label,
                hint="Use kind='image' (generation 2) or kind='representation' (generation 1)",
            )
        return generation

    # -- browsing -------------------------------------------------------------------------------

    def browse(
        self, query: str = "", *, parent: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[Entry]:
        """Images (generation 2, by search text) or representations (generation 1, by name and
        ``#tag`` words) of this server, ``limit`` from ``offset``; mikro has no folders, so
        ``parent`` must be None.

        The URI does not say the generation, so the listing that fits the prefix is tried first
        (a prefix usually means generation 2) and the other one if the server lacks the field.
        """
        self._check_open()
        if parent is not None:
            raise ConfigurationError(
                "mikro lists no folders", server=self.label, obj=parent, hint="Browse from the top"
            )
        images, representations = self._generations["image"], self._generations["representation"]
        order = [images, representations] if self._images_first else [representations, images]
        if self._listing is not None:
            order = [self._listing]
        failure: ProtocolError | None = None
        for generation in order:
            try:
                listed = self._shown(generation, query, offset, limit)
            except ProtocolError as exc:
                failure = failure or exc
                continue
            self._listing = generation
            return [self._entry(generation.kind, item) for item in listed]
        assert failure is not None
        raise failure

    def _shown(self, generation: Generation, query: str, offset: int, limit: int) -> list[Listed]:
        """``limit`` listed objects from the ``offset``-th shown one, pyramid levels skipped
        (fetching on until the page is full or the server has no more)."""
        at = self._cursors.get((generation.kind, query, offset), offset)
        shown: list[Listed] = []
        while len(shown) < limit:
            page = generation.search(query, at, limit)
            for item in page:
                self._levels.update(item.levels)
            for item in page:
                if item.object_id not in self._levels:
                    # Where each shown entry starts: a later page may start at any of them.
                    self._cursors[(generation.kind, query, offset + len(shown))] = at
                    shown.append(item)
                at += 1
                if len(shown) == limit:
                    break
            if len(page) < limit:
                break
        self._cursors[(generation.kind, query, offset + len(shown))] = at
        return shown

    def _entry(self, kind: str, item: Listed) -> Entry:
        # The S3 endpoint names no secret and makes a copied URI open anywhere.
        endpoint = self.options.get("s3") or self.credentials.s3
        options = (("s3", endpoint),) if endpoint else ()
        uri = replace(self.uri, kind=kind, object_id=item.object_id, options=options)
        shape = item.shape
        return Entry(
            uri=str(uri),
            name=item.name,
            kind="image",
            shape=shape,
            dims=DIMS if shape and len(shape) == len(DIMS) else None,
            dtype=item.dtype,
            pixel_size=item.pixel_size,
            channels=item.channels,
            tags=item.tags,
        )

    # -- opening --------------------------------------------------------------------------------

    def _open(self, uri: RemoteURI) -> RemoteImage:
        if uri.object_id is None:
            raise ConfigurationError(
                f"{uri.without_options()} names a kind of object but no id",
                server=self.label,
                hint=f"Use {uri.server}/{uri.kind}/<id>",
            )
        generation = self._generation(uri.kind)
        return generation.open(uri.object_id, self._s3_endpoint(uri), str(uri.without_options()))

    def _s3_endpoint(self, uri: RemoteURI) -> str:
        endpoint = uri.option("s3") or self.credentials.s3 or self._granted_s3
        if endpoint:
            return check_s3_endpoint(endpoint)
        if not endpoint:
            raise ConfigurationError(
                NO_S3_ENDPOINT,
                server=self.label,
                obj=f"{uri.kind} {uri.object_id}" if uri.object_id else f"new {uri.kind}",
                hint=_ENDPOINT_HINT,
            )
        return endpoint

    # -- uploading ------------------------------------------------------------------------------

    def upload(
        self,
        data: object,
        *,
        name: str,
        kind: str = "image",
        dims: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        channels: Sequence[str | Channel] = (),
        pixel_size: Mapping[str, float] | None = None,
        labels: bool = False,
        rgb: bool = False,
        pyramid: bool = False,
        origins: Sequence[str] = (),
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        s3: str | None = None,
    ) -> str:
        """Upload an array (numpy, dask or xarray) and return the URI of the new object.

        ``kind`` is ``"image"`` (generation 2) or ``"representation"`` (generation 1). Axes are
        named by ``dims`` or an xarray's dims, else napari's conventions apply (see
        :func:`~napari_lablink.client.upload.to_ctzyx`). Data streams chunk by chunk; on any
        failure or cancellation nothing is registered on the server.
        """
        self._check_open()
        generation = self._generation(kind)
        target = replace(
            self.uri,
            kind=kind,
            options=tuple({**self.options, **({"s3": s3} if s3 else {})}.items()),
        )
        endpoint = self._s3_endpoint(target)
        # Both generations store whatever they get: a colour photo taken as planes would be lost.
        names = dims if dims is not None else getattr(data, "dims", None)  # an xarray's own
        shape = getattr(data, "shape", None)
        if shape is not None:
            check_upload_array(shape, dims=names, rgb=rgb and names is None)
        array = to_ctzyx(data, dims, rgb=rgb)
        if rgb and array.shape[0] not in COLOUR_SAMPLES:
            raise AmbiguousArrayError(
                f"rgb=True needs 3 or 4 colour samples; the axis named as colour has "
                f"{array.shape[0]}",
                server=self.label,
                obj=f"new {kind} {name!r}",
            )
        described = [c if isinstance(c, Channel) else Channel(name=str(c)) for c in channels]
        if described and len(described) != array.shape[0]:
            raise ConfigurationError(
                f"{len(described)} channel names for {array.shape[0]} channels",
                server=self.label,
                obj=f"new {kind} {name!r}",
                hint="Give one name per channel, or none",
            )
        request = UploadRequest(
            data=array,
            name=name,
            tags=tuple(tags),
            channels=tuple(described),
            pixel_size=dict(pixel_size or {}),
            labels=labels,
            rgb=rgb,
            pyramid=pyramid,
            origins=tuple(origins),
        )
        try:
            new_id = generation.upload(request, endpoint, progress=progress, cancel=cancel)
        except LablinkError as exc:
            if exc.registered is None:  # failed before anything could be registered
                mark_upload_failure(exc)
            raise
        # Keep the S3 option, so the URI opens as it is (it names no secret); a granted
        # endpoint comes with the login instead.
        kept = (("s3", endpoint),) if endpoint != self._granted_s3 else ()
        return str(replace(target, object_id=new_id, options=kept))
