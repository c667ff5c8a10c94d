"""The one registry of URI schemes: what every server kind is called, names and serves.

The URI parser, ``connect``, the profile store and the browser all read this table, so adding a
server kind means adding one entry here and its package under ``client/``. Server classes are
named by import path and imported on first use (by ``connection.server_class``): that keeps
start-up light and lets every module read the registry without importing the protocol packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["SCHEMES", "Scheme", "SchemeInfo", "scheme_info"]

Scheme = Literal["mikro", "mibi", "pims"]


@dataclass(frozen=True)
class SchemeInfo:
    """One server kind.

    ``kinds`` are the object kinds its URIs name, each with how many path segments may follow
    the kind's name (0 is an upload target such as ``.../image``). Kinds whose objects are file
    paths (PIMS) have ``path_kind`` instead: the whole path after the server is the object.
    """

    scheme: Scheme
    display_name: str
    #: ``module:Class`` of its :class:`~napari_lablink.client.connection.Server` subclass.
    server_class: str
    examples: tuple[str, ...]
    kinds: Mapping[str, tuple[int, ...]]
    path_kind: str | None
    #: What the browser's search box expects.
    browse_hint: str
    #: What a profile of this kind asks for besides its URL, in the order a form shows them
    #: (``token``, ``email``, ``password``, ``s3``): MIBItracker logs in, it takes no token.
    profile_fields: tuple[str, ...] = ()
    #: A path suffix users copy along with the address (the GraphQL endpoint), dropped from a
    #: profile's URL so that the prefix is the server's.
    url_suffix: str = ""


SCHEMES: dict[Scheme, SchemeInfo] = {
    info.scheme: info
    for info in (
        SchemeInfo(
            scheme="mikro",
            display_name="mikro",
            server_class="napari_lablink.client.mikro:MikroServer",
            examples=(
                "mikro://mikro.example.org/representation/42",
                "mikro+http://127.0.0.1:8080/mikro/image/7?s3=http://127.0.0.1:9000",
            ),
            kinds={"representation": (0, 1), "image": (0, 1)},
            path_kind=None,
            browse_hint="Search by name; #tag for generation-1 tags",
            profile_fields=("s3", "token"),
            url_suffix="/graphql",
        ),
        SchemeInfo(
            scheme="mibi",
            display_name="MIBItracker",
            server_class="napari_lablink.client.tracker.server:TrackerServer",
            examples=(
                "mibi://backend.mibitracker.example.org/images/1234",
                "mibi://backend.mibitracker.example.org/runs/20180122_1242_1243/FOV1",
            ),
            kinds={"images": (1,), "runs": (1, 2)},
            path_kind=None,
            browse_hint="Exact run label or name; empty lists all runs",
            profile_fields=("email", "password"),
        ),
        SchemeInfo(
            scheme="pims",
            display_name="Cytomine PIMS",
            server_class="napari_lablink.client.pims.server:PimsServer",
            examples=("pims://pims.example.org/upload-1/slide.ome.tiff",),
            kinds={},
            path_kind="file",
            browse_hint="Path of an image file on the server, e.g. upload-1/slide.ome.tiff",
        ),
    )
}


def scheme_info(scheme: str) -> SchemeInfo | None:
    """The registry's entry of ``scheme``, if it is one."""
    return SCHEMES.get(cast("Scheme", scheme))
