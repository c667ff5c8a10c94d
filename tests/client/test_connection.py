"""The Server contract and the scheme registry every part reads it through."""

from __future__ import annotations

import pytest

import napari_lablink
from napari_lablink.client.connection import Server, Uploader, as_uploader, server_class
from napari_lablink.client.errors import ClosedConnectionError, ConfigurationError
from napari_lablink.client.schemes import SCHEMES
from napari_lablink.client.uri import parse_uri
from napari_lablink.testing import MikroStandIn, TrackerStandIn


def test_every_scheme_names_its_server_class_and_valid_examples() -> None:
    for scheme, info in SCHEMES.items():
        found = server_class(scheme)
        assert issubclass(found, Server) and found.scheme == scheme
        assert [parse_uri(example).scheme for example in info.examples] == [scheme] * len(
            info.examples
        )


def test_only_servers_that_take_uploads_are_uploaders() -> None:
    uploaders = {s for s in SCHEMES if issubclass(server_class(s), Uploader)}
    assert uploaders == {"mikro"}


def test_check_probes_the_server_and_uploads_need_an_uploader(mikro: MikroStandIn) -> None:
    with TrackerStandIn() as tracker:
        url = f"mibi+http://127.0.0.1:{tracker.port}"
        with napari_lablink.connect(url, email=tracker.email, password=tracker.password) as server:
            tracker.clear_requests()
            server.check()
            assert [(r.method, r.path) for r in tracker.requests] == [("OPTIONS", "/")]
            with pytest.raises(ConfigurationError, match="MIBItracker servers take no uploads"):
                as_uploader(server)
        with pytest.raises(ClosedConnectionError):
            server.check()
    url = f"mikro+http://{mikro.uri_authority}/mikro"
    with napari_lablink.connect(url, token=mikro.token) as server:
        server.check()
        assert as_uploader(server) is server
