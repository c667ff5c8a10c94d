"""Listing what a server holds (``Server.browse``) against the mikro and tracker stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import napari_lablink
from napari_lablink import ConfigurationError, NotFoundError
from napari_lablink.client.browse import Entry, split_tags
from napari_lablink.client.mikro import MikroServer
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.testing import MikroStandIn, TrackerStandIn

STACK = np.arange(2 * 3 * 8 * 6, dtype=np.uint16).reshape(2, 1, 3, 8, 6)
PLANE = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16)


@pytest.fixture(scope="module")
def mikro() -> Iterator[MikroStandIn]:
    """A stand-in of its own: the session's one collects other modules' images."""
    with MikroStandIn() as stand_in:
        for n in range(5):
            stand_in.add_representation(
                STACK, f"beads {n}", tags=["beads", "odd" if n % 2 else "even"]
            )
        stand_in.add_representation(STACK, "nuclei", tags=["cells"])
        for n in range(4):
            stand_in.add_image(STACK, f"tissue {n}", pixel_size=(0.2, 0.25, 0.5))
        stand_in.add_image(STACK, "colon slide")
        yield stand_in


def mikro_server(stand_in: MikroStandIn, prefix: str) -> MikroServer:
    server = napari_lablink.connect(
        f"mikro+http://{stand_in.uri_authority}{prefix}",
        token=stand_in.token,
        s3=stand_in.s3_endpoint,
    )
    assert isinstance(server, MikroServer)
    return server


def test_split_tags() -> None:
    assert split_tags("beads #odd tag:cells  big") == ("beads big", ["odd", "cells"])
    assert split_tags("#") == ("#", [])


def test_generation1_lists_representations_by_name_tags_and_page(mikro: MikroStandIn) -> None:
    with mikro_server(mikro, "") as server:
        everything = server.browse()
        assert [e.name for e in everything] == [f"beads {n}" for n in range(5)] + ["nuclei"]
        first = everything[0]
        assert first.kind == "image" and not first.has_children
        assert first.shape == STACK.shape and first.dims == ("c", "t", "z", "y", "x")
        assert first.tags == ("beads", "even")
        assert first.uri.startswith(f"mikro+http://{mikro.uri_authority}/representation/")
        assert f"s3={mikro.s3_endpoint}" in first.uri
        # Every listed URI opens, and to the image listed.
        opened = napari_lablink.open_image(first.uri, token=mikro.token)
        assert opened.name == "beads 0" and opened.shape == STACK.shape

        assert [e.name for e in server.browse("beads", offset=2, limit=2)] == ["beads 2", "beads 3"]
        assert [e.name for e in server.browse("beads", offset=4, limit=2)] == ["beads 4"]
        assert server.browse("beads", offset=6) == []
        assert [e.name for e in server.browse("#odd")] == ["beads 1", "beads 3"]
        assert [e.name for e in server.browse("3 tag:odd")] == ["beads 3"]
        assert [e.name for e in server.browse("NUC")] == ["nuclei"]
    ops = [op.name for op in mikro.operations if op.generation == "gen1"]
    assert "Representations" in ops


def test_generation2_lists_images_by_search_and_page(mikro: MikroStandIn) -> None:
    mikro.reset_operations()
    with mikro_server(mikro, "/mikro") as server:
        everything = server.browse()
        assert [e.name for e in everything] == [f"tissue {n}" for n in range(4)] + ["colon slide"]
        entry = everything[0]
        assert entry.shape == STACK.shape and entry.dtype == "uint16"
        assert entry.uri.startswith(f"mikro+http://{mikro.uri_authority}/mikro/image/")
        assert [e.name for e in server.browse("tissue", offset=1, limit=2)] == [
            "tissue 1",
            "tissue 2",
        ]
        assert [e.name for e in server.browse("colon")] == ["colon slide"]
        assert server.browse("no such thing") == []
        with pytest.raises(ConfigurationError, match="no folders"):
            server.browse(parent=entry.uri)
    # The prefixed endpoint was asked for images straight away, never for representations.
    assert [op.name for op in mikro.operations] == ["Images"] * 4


def test_listing_falls_back_to_the_generation_the_server_speaks(mikro: MikroStandIn) -> None:
    """Generation 2 under no prefix: the representations query fails, images is tried next."""
    with MikroStandIn(s3=mikro.s3, gen1_prefix="old", gen2_prefix="") as other:
        other.add_image(STACK, "only image")
        with mikro_server(other, "") as server:
            assert [e.name for e in server.browse()] == ["only image"]
            assert [e.name for e in server.browse("only")] == ["only image"]
        assert [op.name for op in other.operations] == ["Representations", "Images", "Images"]


@pytest.fixture(scope="module")
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        for n in range(3):
            stand_in.add_run(f"RUN-{n}", "tonsil" if n < 2 else "colon")
        stand_in.add_image(
            "RUN-1",
            "FOV1",
            {"CD45": (150, PLANE), "dsDNA": (89, PLANE)},
            400.0,
            description="Tonsil_R1C1",
        )
        stand_in.add_image("RUN-1", "FOV2", {"CD8": (160, PLANE)}, 400.0)
        yield stand_in


def tracker_server(stand_in: TrackerStandIn) -> TrackerServer:
    server = napari_lablink.connect(
        f"mibi+http://127.0.0.1:{stand_in.port}", email=stand_in.email, password=stand_in.password
    )
    assert isinstance(server, TrackerServer)
    return server


def test_tracker_runs_fovs_and_channels(tracker: TrackerStandIn) -> None:
    base = f"mibi+http://127.0.0.1:{tracker.port}"
    with tracker_server(tracker) as server:
        runs = server.browse()
        assert [(e.name, e.kind, e.uri) for e in runs] == [
            (f"RUN-{n} ({'tonsil' if n < 2 else 'colon'})", "run", f"{base}/runs/RUN-{n}")
            for n in range(3)
        ]
        assert [e.has_children for e in runs] == [False, True, False]
        assert [e.name for e in server.browse(offset=1, limit=1)] == ["RUN-1 (tonsil)"]
        assert [e.name for e in server.browse("tonsil")] == ["RUN-0 (tonsil)", "RUN-1 (tonsil)"]
        assert [e.name for e in server.browse("RUN-2")] == ["RUN-2 (colon)"]
        assert server.browse("RUN") == []  # the tracker matches labels and names exactly

        fovs = server.browse(parent=runs[1].uri)
        assert [e.name for e in fovs] == ["FOV1 (Tonsil_R1C1)", "FOV2"]
        fov = fovs[0]
        assert fov.kind == "fov" and fov.has_children
        assert fov.shape == (2, 16, 16) and fov.dims == ("c", "y", "x")
        assert fov.channels == ("CD45", "dsDNA")
        assert fov.pixel_size == {"y": 25.0, "x": 25.0}
        assert [e.name for e in server.browse("fov2", parent=runs[1].uri)] == ["FOV2"]
        image = server.get(fov.uri)
        assert image.name.startswith("RUN-1 FOV1")

        channels = server.browse(parent=fov.uri)
        assert [(e.name, e.channels, e.shape) for e in channels] == [
            ("CD45", ("CD45",), (16, 16)),
            ("dsDNA", ("dsDNA",), (16, 16)),
        ]
        # A channel's URI is its image's, narrowed to that channel (opening it opens it alone).
        assert [e.uri for e in channels] == [f"{fov.uri}?channels={n}" for n in ("CD45", "dsDNA")]
        assert not any(e.has_children for e in channels)
        assert [e.name for e in server.browse(parent=f"{runs[1].uri}/FOV2")] == ["CD8"]
        assert server.browse(parent=runs[0].uri) == []
        with pytest.raises(NotFoundError, match="image 999"):
            server.browse(parent=f"{base}/images/999")


def test_entries_are_plain_values() -> None:
    entry = Entry(uri="mikro://h/image/1", name="x", kind="image", shape=(1, 2))
    assert entry.model_dump()["shape"] == (1, 2)
    with pytest.raises(ValueError):
        Entry(uri="mikro://h/image/1", name="x", kind="table")


def test_a_pyramid_is_listed_once_and_pages_count_listed_images(mikro: MikroStandIn) -> None:
    """Levels are images of their own on the server; the listing shows their full image only,
    and offsets count the images shown, whichever page the levels fell on."""
    with MikroStandIn(s3=mikro.s3) as other:
        big = np.zeros((1, 1, 1, 32, 32), np.uint16)
        other.add_image(big, "pyramid A", pyramid_levels=3, channels=[{"name": "DAPI"}])
        other.add_image(big, "pyramid B", pyramid_levels=2, pixel_size=(0.5, 0.5, 1.0))
        other.add_image(big, "flat")
        with mikro_server(other, "/mikro") as server:
            everything = server.browse()
            assert [e.name for e in everything] == ["pyramid A", "pyramid B", "flat"]
            assert everything[0].channels == ("DAPI",)
            assert everything[1].pixel_size == {"x": 0.5, "y": 0.5, "z": 1.0}
            pages = [server.browse(offset=n, limit=1) for n in range(4)]
            assert [[e.name for e in page] for page in pages] == [
                ["pyramid A"],
                ["pyramid B"],
                ["flat"],
                [],
            ]
            assert [e.name for e in server.browse(offset=1, limit=2)] == ["pyramid B", "flat"]
