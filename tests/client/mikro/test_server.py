"""The mikro client against the stand-in server over real HTTP and moto's S3."""

from __future__ import annotations

import asyncio
import logging
import socket

import numpy as np
import pytest

import napari_lablink
from napari_lablink import (
    AuthenticationError,
    ClosedConnectionError,
    ConfigurationError,
    NotFoundError,
    ProtocolError,
    ServerUnavailableError,
)
from napari_lablink.testing import MikroStandIn, S3StandIn

from ..scripted_server import Reply, ScriptedServer

RNG = np.random.default_rng(7)
STACK = RNG.integers(0, 4000, size=(2, 1, 5, 96, 80), dtype=np.uint16)


def server_url(mikro: MikroStandIn, prefix: str = "") -> str:
    return f"mikro+http://{mikro.uri_authority}{prefix}"


@pytest.fixture(scope="module")
def rep_id(mikro: MikroStandIn) -> str:
    return mikro.add_representation(
        STACK,
        "stack gen1",
        physical_size={"x": 0.2, "y": 0.25, "z": 0.5},
        channels=[{"name": "DAPI", "color": "#0000ff"}, {"name": "GFP", "color": "rgb(0,255,0)"}],
        tags=["beads"],
        chunks=(1, 1, 1, 48, 40),
    )


@pytest.fixture(scope="module")
def image_id(mikro: MikroStandIn) -> str:
    return mikro.add_image(
        STACK,
        "stack gen2",
        chunks=(1, 1, 1, 32, 32),
        pixel_size=(0.2, 0.25, 0.5),
        channels=[
            {"name": "DAPI", "emissionWavelength": 461},
            {"name": "GFP", "emissionWavelength": 510},
        ],
        pyramid_levels=3,
    )


def test_generation1_representation(mikro_clean, rep_id) -> None:
    with napari_lablink.connect(
        server_url(mikro_clean), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        image = server.get(f"representation/{rep_id}")
        assert image.dims == ("c", "t", "z", "y", "x")
        assert image.shape == STACK.shape and image.dtype == np.uint16
        assert image.name == "stack gen1"
        assert image.pixel_size == {"x": 0.2, "y": 0.25, "z": 0.5}
        assert [c.name for c in image.channels] == ["DAPI", "GFP"]
        assert [c.color for c in image.channels] == [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0)]
        assert not image.multiscale and not image.is_labels
        # Opening read metadata documents only, no chunk.
        gets = [r.path for r in mikro_clean.s3.requests.snapshot() if r.method == "GET"]
        assert gets and all(p.rsplit("/", 1)[-1].startswith(".z") for p in gets)
        assert mikro_clean.s3.count("GET", path_contains=".zmetadata") == 1
        np.testing.assert_array_equal(image.data.values, STACK)
        assert image.data.coords["c"].values.tolist() == ["DAPI", "GFP"]
        np.testing.assert_allclose(image.data.coords["y"].values[:3], [0, 0.25, 0.5])


def test_generation2_image_with_pyramid(mikro_clean, image_id) -> None:
    image = napari_lablink.open_image(
        f"{server_url(mikro_clean, '/mikro')}/image/{image_id}?s3={mikro_clean.s3_endpoint}",
        token=mikro_clean.token,
    )
    assert image.multiscale and len(image.levels) == 3
    assert [lvl.shape[-2:] for lvl in image.levels] == [(96, 80), (48, 40), (24, 20)]
    assert image.levels[0].chunksize == (1, 1, 1, 32, 32)
    assert image.pixel_size == {"x": 0.2, "y": 0.25, "z": 0.5}
    assert [c.name for c in image.channels] == ["DAPI", "GFP"]
    assert image.channels[0].emission_wavelength == 461
    assert image.channels[0].color is not None and image.channels[0].color[2] == 1.0
    # Opening: one zarr.json per level, no chunk.
    assert mikro_clean.s3.count("GET") == 3
    assert mikro_clean.s3.count("GET", path_contains="/c/") == 0
    np.testing.assert_array_equal(image.levels[0].compute(), STACK)
    for level, expected_id in zip(image.levels[1:], image.server_metadata["pyramid"], strict=True):
        np.testing.assert_array_equal(level.compute(), mikro_clean.read_image(expected_id))


def test_one_plane_fetches_only_its_chunks(mikro_clean, image_id) -> None:
    image = napari_lablink.open_image(
        f"{server_url(mikro_clean, '/mikro')}/image/{image_id}?s3={mikro_clean.s3_endpoint}",
        token=mikro_clean.token,
    )
    mikro_clean.s3.reset_requests()
    plane = image.data.isel(c=1, t=0, z=3).values
    np.testing.assert_array_equal(plane, STACK[1, 0, 3])
    # 96 x 80 in 32 x 32 chunks: 3 x 3 chunks, all of channel 1, plane 3.
    gets = [r.path for r in mikro_clean.s3.requests.snapshot() if r.method == "GET"]
    assert len(gets) == 9
    assert all("/c/1/0/3/" in path for path in gets)


def test_mask_representation_is_labels(mikro_clean) -> None:
    labels = np.zeros((1, 1, 1, 32, 32), dtype=np.uint32)
    labels[..., 4:10, 4:10] = 1
    rid = mikro_clean.add_representation(labels, "nuclei", variety="MASK")
    image = napari_lablink.open_image(
        f"{server_url(mikro_clean)}/representation/{rid}?s3={mikro_clean.s3_endpoint}",
        token=mikro_clean.token,
    )
    assert image.is_labels
    np.testing.assert_array_equal(image.data.values, labels)


def test_missing_s3_endpoint_says_where_to_set_it(mikro_clean, rep_id) -> None:
    with napari_lablink.connect(server_url(mikro_clean), token=mikro_clean.token) as server:
        with pytest.raises(ConfigurationError) as info:
            server.get(f"representation/{rep_id}")
    message = str(info.value)
    assert "No S3 endpoint is configured" in message
    assert f"representation {rep_id}" in message and mikro_clean.uri_authority in message
    assert "?s3=" in message and "LABLINK_S3_ENDPOINT" in message and "servers.toml" in message


def test_s3_endpoint_and_token_from_config_file(mikro_clean, rep_id, _isolated_config) -> None:
    _isolated_config.write_text(
        f'["{mikro_clean.uri_authority}"]\ntoken = "{mikro_clean.token}"\n'
        f's3 = "{mikro_clean.s3_endpoint}"\n'
    )
    with napari_lablink.connect(server_url(mikro_clean)) as server:
        assert server.get(f"representation/{rep_id}").shape == STACK.shape


def test_wrong_token_is_an_authentication_error_without_the_token(mikro_clean, rep_id) -> None:
    bad = "wrong-token-123456"
    with (
        napari_lablink.connect(
            server_url(mikro_clean), token=bad, s3=mikro_clean.s3_endpoint
        ) as server,
        pytest.raises(AuthenticationError) as info,
    ):
        server.get(f"representation/{rep_id}")
    assert bad not in str(info.value)
    assert "LABLINK_TOKEN" in str(info.value)


@pytest.mark.parametrize(("kind", "prefix"), [("representation", ""), ("image", "/mikro")])
def test_unknown_id_is_not_found(mikro_clean, kind, prefix) -> None:
    with (
        napari_lablink.connect(
            server_url(mikro_clean, prefix), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
        ) as server,
        pytest.raises(NotFoundError) as info,
    ):
        server.get(f"{kind}/99999")
    assert f"{kind} 99999" in str(info.value)


def test_server_down_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        napari_lablink.connect(
            f"mikro+http://127.0.0.1:{port}", token="t", s3="http://127.0.0.1:1"
        ) as server,
        pytest.raises(ServerUnavailableError) as info,
    ):
        server.get("representation/1")
    assert f"127.0.0.1:{port}" in str(info.value)


def test_garbage_answer_is_a_protocol_error() -> None:
    """A web page where GraphQL should be: only a scripted server answers like that."""
    scripted = ScriptedServer()
    scripted.default = Reply(200, b"<html>not graphql</html>")
    try:
        with (
            napari_lablink.connect(
                f"mikro+{scripted.url}", token="t", s3="http://127.0.0.1:1"
            ) as server,
            pytest.raises(ProtocolError, match="not JSON"),
        ):
            server.get("image/1")
    finally:
        scripted.stop()


def test_expired_credentials_are_requested_again_once(mikro_clean, rep_id) -> None:
    with napari_lablink.connect(
        server_url(mikro_clean), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        image = server.get(f"representation/{rep_id}")
        assert len(mikro_clean.calls("request")) == 1
        assert mikro_clean.expire_credentials() >= 1
        np.testing.assert_array_equal(image.data.isel(c=0, t=0, z=0).values, STACK[0, 0, 0])
        assert len(mikro_clean.calls("request")) == 2


def test_s3_refusing_fresh_credentials_is_an_authentication_error(mikro_clean, rep_id) -> None:
    """Another S3 than the data's own: it knows none of the server's credentials."""
    with S3StandIn() as other_s3:
        endpoint = other_s3.endpoint
        with (
            napari_lablink.connect(
                server_url(mikro_clean), token=mikro_clean.token, s3=endpoint
            ) as server,
            pytest.raises(AuthenticationError) as info,
        ):
            server.get(f"representation/{rep_id}")
    assert "S3 refused freshly granted credentials" in str(info.value)
    assert endpoint in str(info.value)


def test_graphql_faults_are_retried(mikro_clean, image_id) -> None:
    mikro_clean.faults.fail_next(2, "503")
    mikro_clean.s3.faults.fail_next(2, "503", methods=["GET"])
    image = napari_lablink.open_image(
        f"{server_url(mikro_clean, '/mikro')}/image/{image_id}?s3={mikro_clean.s3_endpoint}",
        token=mikro_clean.token,
    )
    np.testing.assert_array_equal(image.levels[0].compute(), STACK)
    assert mikro_clean.faults.pending == 0 and mikro_clean.s3.faults.pending == 0


def test_closed_connection(mikro_clean, rep_id) -> None:
    server = napari_lablink.connect(
        server_url(mikro_clean), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    )
    server.close()
    with pytest.raises(ClosedConnectionError, match="connection is closed"):
        server.get(f"representation/{rep_id}")


def test_async_with(mikro_clean, rep_id) -> None:
    async def main():
        async with napari_lablink.connect(
            server_url(mikro_clean), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
        ) as server:
            return await server.aget(f"representation/{rep_id}"), server

    image, server = asyncio.run(main())
    assert image.shape == STACK.shape and server.closed


def test_uri_of_another_server_is_refused(mikro_clean) -> None:
    with napari_lablink.connect(server_url(mikro_clean), token="t") as server:
        with pytest.raises(napari_lablink.InvalidURIError, match="not on this connection's server"):
            server.get("mikro://elsewhere.org/image/1")


def test_no_secret_in_logs_errors_or_metadata(mikro_clean, rep_id, caplog) -> None:
    # The client's loggers (botocore, used by the stand-in, has broken DEBUG format strings).
    for name in ("napari_lablink", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    messages = []
    with napari_lablink.connect(
        server_url(mikro_clean), token=mikro_clean.token, s3=mikro_clean.s3_endpoint
    ) as server:
        image = server.get(f"representation/{rep_id}")
        _ = image.data.isel(c=0, t=0, z=0).values
        mikro_clean.expire_credentials()
        _ = image.data.isel(c=1, t=0, z=0).values
        for ref in ("representation/424242", "image/1"):
            try:
                server.get(ref)
            except napari_lablink.LablinkError as exc:
                messages.append(str(exc))
    # Every S3 secret the stand-in handed out (its registry is internal; tests may look).
    sessions = list(mikro_clean.s3._registry._sessions.values())
    grants = [s.secret_access_key for s in sessions] + [s.session_token for s in sessions]
    assert len(grants) >= 4
    client_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("napari_lablink.testing")
    )
    for secret in [mikro_clean.token, *grants]:
        assert secret not in client_log
        assert all(secret not in m for m in messages)
        assert secret not in repr(image.server_metadata) and secret not in repr(image)
    assert messages
