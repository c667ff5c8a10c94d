"""The mikro protocol, both generations: GraphQL for metadata and grants, zarr on S3 for pixels.

Generation 1 ("representations") keeps an xarray Dataset (zarr v2, variable ``data``, dims
c,t,z,y,x) at ``store``; generation 2 ("images") a zarr v3 array with dimension names, plus a
pyramid of derived images. The queries ask only for the fields docs/protocols/mikro.md lists:
a field the real server lacks fails the whole query there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import zarr

from napari_lablink.client.browse import Entry, split_tags
from napari_lablink.client.colors import parse_color, wavelength_to_rgb
from napari_lablink.client.connection import Server
from napari_lablink.client.datalayer import GrantedStore, S3Grant, lazy_array
from napari_lablink.client.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from napari_lablink.client.mikro_write import UploadRequest, upload_image, upload_representation
from napari_lablink.client.models import DIMS, Channel, RemoteImage
from napari_lablink.client.transport import HeaderAuth, Transport
from napari_lablink.client.upload import Progress, to_ctzyx
from napari_lablink.config import Credentials
from napari_lablink.uri import RemoteURI

__all__ = ["MikroServer"]

GET_REPRESENTATION = """
query GetRepresentation($id: ID!) {
  representation(id: $id) {
    id name store shape dims variety tags
    omero { physicalSize { x y z t c } scale channels { name color } }
    sample { id name }
    origins { id }
  }
}"""

REQUEST_CREDENTIALS = """
query Request { request { accessKey secretKey sessionToken status } }"""

GET_IMAGE = """
query GetImage($id: ID!) {
  image(id: $id) {
    id name tags
    store { id path bucket key shape chunks dtype dimensionNames version }
    channelViews { id name emissionWavelength excitationWavelength cMin cMax }
    affineTransformationViews { id affineMatrix pixelSizeX pixelSizeY pixelSizeZ }
    derivedScaleViews {
      id scaleX scaleY scaleZ scaleT scaleC image { id store { id shape chunks dtype } }
    }
  }
}"""

REQUEST_ZARR_ACCESS = """
mutation RequestZarrAccess($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) {
    accessKey secretKey sessionToken bucket key path expiresIn
  }
}"""

LIST_REPRESENTATIONS = """
query Representations($name: String, $tags: [String], $limit: Int, $offset: Int) {
  representations(name: $name, tags: $tags, limit: $limit, offset: $offset) { id name shape tags }
}"""

LIST_IMAGES = """
query Images($filters: ImageFilter, $pagination: OffsetPaginationInput) {
  images(filters: $filters, pagination: $pagination) { id name tags store { shape dtype } }
}"""

_AUTH_WORDS = ("token", "authenticat", "permission", "unauthori", "credential", "not allowed")
_MISSING_WORDS = ("does not exist", "not found", "no representation", "no image", "matching query")
_ENDPOINT_HINT = (
    'Add ?s3=<endpoint> to the URI, set LABLINK_S3_ENDPOINT, or put s3 = "<endpoint>" in the '
    "servers.toml table of this server"
)


class MikroServer(Server):
    """A connection to a mikro server (either generation; the URI's kind picks the queries)."""

    scheme = "mikro"

    def __init__(self, uri: RemoteURI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        base = self.uri.base_url
        self.transport = Transport(
            base,
            label=self.label,
            auth=HeaderAuth(httpx.URL(base), "Bearer", lambda: self.credentials.token),
            secrets=lambda: self.credentials.secrets,
        )
        #: The generation whose listing query this server answered ("representation"/"image").
        self._listing: str | None = None

    def _close(self) -> None:
        self.transport.close()

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
        first = "image" if self.uri.prefix else "representation"
        order = [first, "representation" if first == "image" else "image"]
        if self._listing is not None:
            order = [self._listing]
        failure: ProtocolError | None = None
        for kind in order:
            try:
                entries = self._list(kind, query, offset, limit)
            except ProtocolError as exc:
                failure = failure or exc
                continue
            self._listing = kind
            return entries
        assert failure is not None
        raise failure

    def _list(self, kind: str, query: str, offset: int, limit: int) -> list[Entry]:
        # The S3 endpoint names no secret and makes a copied URI open anywhere.
        endpoint = self.options.get("s3") or self.credentials.s3
        options = (("s3", endpoint),) if endpoint else ()
        if kind == "representation":
            name, tags = split_tags(query)
            variables = {"name": name or None, "tags": tags or None, "limit": limit}
            found = self.graphql(
                LIST_REPRESENTATIONS, variables | {"offset": offset}, obj="representations"
            )["representations"]
        else:
            variables = {
                "filters": {"search": query} if query.strip() else None,
                "pagination": {"offset": offset, "limit": limit},
            }
            found = self.graphql(LIST_IMAGES, variables, obj="images")["images"]
        entries = []
        for item in found or []:
            store = (item.get("store") or {}) if kind == "image" else item
            shape = store.get("shape")
            uri = replace(self.uri, kind=kind, object_id=str(item["id"]), options=options)
            entries.append(
                Entry(
                    uri=str(uri),
                    name=item.get("name") or f"{kind} {item['id']}",
                    kind="image",
                    shape=tuple(shape) if shape else None,
                    dims=DIMS if shape and len(shape) == len(DIMS) else None,
                    dtype=store.get("dtype") if kind == "image" else None,
                    tags=tuple(item.get("tags") or ()),
                )
            )
        return entries

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
        if kind not in ("image", "representation"):
            raise ConfigurationError(
                f"Unknown kind {kind!r}",
                server=self.label,
                hint="Use kind='image' (generation 2) or kind='representation' (generation 1)",
            )
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
        write = upload_image if kind == "image" else upload_representation
        new_id = write(self, endpoint, request, progress=progress, cancel=cancel)
        # Keep the S3 option, so the URI opens as it is (it names no secret).
        return str(replace(target, object_id=new_id, options=(("s3", endpoint),)))

    # -- GraphQL ------------------------------------------------------------------------------

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        obj: str | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Run one operation; GraphQL errors become typed errors with the server's message.

        Set ``idempotent=False`` for mutations that create something: they are then not retried
        after a connection drop, so a retry cannot register an object twice.
        """
        self._check_open()
        response = self.transport.request(
            "POST",
            "graphql",
            json={"query": query, "variables": variables or {}},
            idempotent=idempotent,
            obj=obj,
        )
        try:
            body = response.json()
        except ValueError:
            raise self.transport.protocol_error(
                f"The GraphQL endpoint answered HTTP {response.status_code} with something that "
                "is not JSON",
                obj,
            ) from None
        if not isinstance(body, dict):
            raise self.transport.protocol_error("The GraphQL answer is not a JSON object", obj)
        errors = body.get("errors")
        if errors:
            raise self._graphql_error(errors, obj)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self.transport.protocol_error("The GraphQL answer has no data", obj)
        return data

    def _graphql_error(self, errors: Any, obj: str | None) -> Exception:
        messages = [
            str(e.get("message", e)) if isinstance(e, dict) else str(e)
            for e in (errors if isinstance(errors, list) else [errors])
        ]
        said = self.transport.scrub("; ".join(messages))[:300]
        lowered = said.lower()
        if any(w in lowered for w in _AUTH_WORDS):
            return AuthenticationError(
                f"The server refused the token ({said})", server=self.label, obj=obj
            )
        if any(w in lowered for w in _MISSING_WORDS):
            return NotFoundError(f"Not found ({said})", server=self.label, obj=obj)
        if any(w in lowered for w in ("cannot query field", "unknown argument", "unknown field")):
            return ProtocolError(
                f"The server does not understand the query ({said})", server=self.label, obj=obj
            )
        return ServerError(
            f"The server answered with an error ({said})", server=self.label, obj=obj
        )

    # -- opening ------------------------------------------------------------------------------

    def _open(self, uri: RemoteURI) -> RemoteImage:
        if uri.object_id is None:
            raise ConfigurationError(
                f"{uri.without_options()} names a kind of object but no id",
                server=self.label,
                hint=f"Use {uri.server}/{uri.kind}/<id>",
            )
        if uri.kind == "representation":
            return self._open_representation(uri)
        return self._open_image(uri)

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

    def _open_representation(self, uri: RemoteURI) -> RemoteImage:
        obj = f"representation {uri.object_id}"
        rep = self.graphql(GET_REPRESENTATION, {"id": uri.object_id}, obj=obj)["representation"]
        if rep is None:
            raise NotFoundError("No such representation", server=self.label, obj=obj)
        endpoint = self._s3_endpoint(uri)
        bucket, _, key = str(rep.get("store") or "").partition("/")
        if not bucket or not key:
            raise ProtocolError(
                f"The representation's store {rep.get('store')!r} is not '<bucket>/<key>'",
                server=self.label,
                obj=obj,
            )

        def grant() -> S3Grant:
            creds = self.graphql(REQUEST_CREDENTIALS, obj=obj)["request"]
            return _grant(creds, bucket, key, None, self, obj)

        store = GrantedStore(endpoint, grant)
        group = zarr.open_group(store, mode="r", zarr_format=2, use_consolidated=True)
        array = group["data"]
        dims = tuple(array.attrs.get("_ARRAY_DIMENSIONS") or rep.get("dims") or ())
        if dims != DIMS:
            raise ProtocolError(
                f"The Dataset's variable 'data' has dims {dims}, not {DIMS}",
                server=self.label,
                obj=obj,
            )
        omero = rep.get("omero") or {}
        size = omero.get("physicalSize") or {}
        pixel_size = {d: float(size[d]) for d in ("z", "y", "x") if size.get(d)}
        described = omero.get("channels") or []
        channels = [
            Channel(
                name=(described[i].get("name") if i < len(described) else None) or f"Channel {i}",
                color=parse_color(described[i].get("color")) if i < len(described) else None,
            )
            for i in range(array.shape[0])
        ]
        variety = rep.get("variety")
        return RemoteImage(
            uri=str(uri.without_options()),
            name=rep.get("name") or obj,
            dims=DIMS,
            levels=[lazy_array(array, f"mikro-{store.label}-0")],
            pixel_size=pixel_size,
            channels=channels,
            is_labels=variety == "MASK",
            is_rgb=variety == "RGB" and array.shape[0] in (3, 4),
            server_metadata={k: rep.get(k) for k in ("id", "name", "tags", "variety", "store")}
            | {"sample": rep.get("sample"), "origins": rep.get("origins")},
        )

    def _open_image(self, uri: RemoteURI) -> RemoteImage:
        obj = f"image {uri.object_id}"
        image = self.graphql(GET_IMAGE, {"id": uri.object_id}, obj=obj)["image"]
        if image is None:
            raise NotFoundError("No such image", server=self.label, obj=obj)
        endpoint = self._s3_endpoint(uri)
        views = sorted(
            (v for v in image.get("derivedScaleViews") or [] if v.get("image")),
            key=lambda v: (v.get("scaleX") or 1) * (v.get("scaleY") or 1),
        )
        store_ids = [image["store"]["id"]] + [v["image"]["store"]["id"] for v in views]
        # Each level needs its own grant; ask for them together so a pyramid opens in one round.
        with ThreadPoolExecutor(max_workers=min(8, len(store_ids))) as pool:
            arrays = list(pool.map(lambda sid: self._open_store(endpoint, sid, obj), store_ids))
        full = arrays[0]
        dims = tuple(full.metadata.dimension_names or ())
        if not dims and full.ndim == len(DIMS):
            dims = DIMS
        if len(dims) != full.ndim or any(d not in DIMS for d in dims):
            raise ProtocolError(
                f"The array's dimension names {dims} are not among {DIMS}",
                server=self.label,
                obj=obj,
            )
        order = sorted(range(len(dims)), key=lambda i: DIMS.index(dims[i]))
        levels = []
        for n, array in enumerate(arrays):
            if array.ndim != full.ndim:
                raise ProtocolError(
                    f"Pyramid level {n} has {array.ndim} dims, not {full.ndim}",
                    server=self.label,
                    obj=obj,
                )
            level = lazy_array(array, f"mikro-{image['store']['id']}-{store_ids[n]}")
            levels.append(level.transpose(order) if order != list(range(len(dims))) else level)
        dims = tuple(dims[i] for i in order)
        pixel_size = _pixel_size(image.get("affineTransformationViews") or [])
        return RemoteImage(
            uri=str(uri.without_options()),
            name=image.get("name") or obj,
            dims=dims,
            levels=levels,
            # A spacing along an axis of one plane means nothing (and would not round-trip).
            pixel_size={
                d: s for d, s in pixel_size.items() if d in dims and full.shape[dims.index(d)] > 1
            },
            channels=_channels(image.get("channelViews") or [], levels[0].shape, dims),
            server_metadata={
                "id": image.get("id"),
                "name": image.get("name"),
                "tags": image.get("tags"),
                "store": {k: image["store"].get(k) for k in ("id", "path", "shape", "dtype")},
                "pyramid": [v["image"]["id"] for v in views],
            },
        )

    def _open_store(self, endpoint: str, store_id: str, obj: str) -> zarr.Array:
        def grant() -> S3Grant:
            access = self.graphql(REQUEST_ZARR_ACCESS, {"input": {"storeId": store_id}}, obj=obj)[
                "requestZarrAccess"
            ]
            bucket, key = access.get("bucket"), access.get("key")
            if not bucket or not key:
                raise ProtocolError(
                    "The zarr access grant names no bucket or key", server=self.label, obj=obj
                )
            expires_in = access.get("expiresIn")
            expires = time.time() + float(expires_in) if expires_in else None
            return _grant(access, bucket, key, expires, self, obj)

        store = GrantedStore(endpoint, grant)
        return zarr.open_array(store, mode="r", zarr_format=3)


def _grant(
    creds: dict[str, Any] | None,
    bucket: str,
    key: str,
    expires_at: float | None,
    server: MikroServer,
    obj: str,
) -> S3Grant:
    if not creds or not creds.get("accessKey") or not creds.get("secretKey"):
        raise AuthenticationError(
            "The server granted no S3 credentials",
            server=server.label,
            obj=obj,
            hint="Ask the server's administrator for data access",
        )
    return S3Grant(
        access_key_id=creds["accessKey"],
        secret_access_key=creds["secretKey"],
        session_token=creds.get("sessionToken"),
        bucket=bucket,
        key=key,
        expires_at=expires_at,
    )


def _pixel_size(views: list[dict[str, Any]]) -> dict[str, float]:
    for view in views:
        sizes = {d: view.get(f"pixelSize{d.upper()}") for d in ("x", "y", "z")}
        if any(sizes.values()):
            return {d: float(s) for d, s in sizes.items() if s}
    return {}


def _channels(
    views: list[dict[str, Any]], shape: tuple[int, ...], dims: tuple[str, ...]
) -> list[Channel]:
    """Channel descriptions from channel views.

    A view's ``cMin``/``cMax`` are the (inclusive) channel indices it describes, as for all mikro
    views; views without them describe the remaining channels in order.
    """
    count = shape[dims.index("c")] if "c" in dims else 0
    assigned: dict[int, dict[str, Any]] = {}
    unbound = []
    for view in views:
        c_min, c_max = view.get("cMin"), view.get("cMax")
        if c_min is None:
            unbound.append(view)
            continue
        for index in range(int(c_min), int(c_max if c_max is not None else c_min) + 1):
            assigned.setdefault(index, view)
    free = iter(unbound)
    channels = []
    for i in range(count):
        view = assigned.get(i) or next(free, None) or {}
        emission = view.get("emissionWavelength")
        channels.append(
            Channel(
                name=view.get("name") or f"Channel {i}",
                color=wavelength_to_rgb(emission),
                emission_wavelength=emission,
                excitation_wavelength=view.get("excitationWavelength"),
            )
        )
    return channels
