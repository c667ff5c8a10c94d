"""A connection to a mikro server: GraphQL for metadata and grants, zarr on S3 for pixels.

The server class holds what both generations share (the session, the S3 endpoint, which
generation a server lists) and hands each object to the :class:`Generation` its URI kind names.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from napari_lablink.client.browse import Entry
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import ConfigurationError, ProtocolError
from napari_lablink.client.mikro.generation import Generation, Listed, UploadRequest
from napari_lablink.client.mikro.images import Images
from napari_lablink.client.mikro.representations import Representations
from napari_lablink.client.mikro.session import MikroSession
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.upload import Progress, to_ctzyx
from napari_lablink.config import Credentials
from napari_lablink.uri import RemoteURI

__all__ = ["MikroServer"]

_ENDPOINT_HINT = (
    'Add ?s3=<endpoint> to the URI, set LABLINK_S3_ENDPOINT, or put s3 = "<endpoint>" in the '
    "servers.toml table of this server"
)


class MikroServer(Server):
    """A connection to a mikro server (either generation; the URI's kind picks it)."""

    scheme = "mikro"

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.session = MikroSession.connect(
            self.uri.base_url, self.label, lambda: self.credentials.token
        )
        self.transport = self.session.transport
        generations: list[Generation] = [Images(self.session), Representations(self.session)]
        self._generations = {g.kind: g for g in generations}
        #: The generation whose listing this server answered, once one did.
        self._listing: Generation | None = None

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
        order = [images, representations] if self.uri.prefix else [representations, images]
        if self._listing is not None:
            order = [self._listing]
        failure: ProtocolError | None = None
        for generation in order:
            try:
                listed = generation.search(query, offset, limit)
            except ProtocolError as exc:
                failure = failure or exc
                continue
            self._listing = generation
            return [self._entry(generation.kind, item) for item in listed]
        assert failure is not None
        raise failure

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
        endpoint = uri.option("s3") or self.credentials.s3
        if not endpoint:
            raise ConfigurationError(
                "No S3 endpoint is configured: mikro servers do not say where their data lives",
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
        array = to_ctzyx(data, dims, rgb=rgb)
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
        new_id = generation.upload(request, endpoint, progress=progress, cancel=cancel)
        # Keep the S3 option, so the URI opens as it is (it names no secret).
        return str(replace(target, object_id=new_id, options=(("s3", endpoint),)))
