"""The stand-in mikro server as an HTTP server: routes, authentication, faults, what it records."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError

from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.mikro.server import Operation

from ..helpers import data_of, error_of, graphql, s3_client

REQUEST = "query Request { request { accessKey secretKey sessionToken status } }"
IMAGES = "query Images { images { id name } }"


@pytest.fixture(autouse=True)
def _fresh_log(mikro: MikroStandIn) -> None:
    mikro.reset_operations()


def test_addresses(mikro: MikroStandIn) -> None:
    authority = f"127.0.0.1:{mikro.port}"
    assert mikro.uri_authority == authority
    assert mikro.base_url == f"http://{authority}"
    assert mikro.gen1_graphql_url == f"http://{authority}/graphql"
    assert mikro.gen2_graphql_url == f"http://{authority}/mikro/graphql"
    assert mikro.s3_endpoint == mikro.s3.endpoint
    assert mikro.representation_uri("7") == (
        f"mikro+http://{authority}/representation/7?s3={mikro.s3.endpoint}"
    )
    assert mikro.image_uri("1001", with_s3=False) == f"mikro+http://{authority}/mikro/image/1001"


def test_a_bad_token_gets_no_credentials(mikro: MikroStandIn) -> None:
    before = mikro.s3.active_credentials
    graphql(mikro.gen1_graphql_url, REQUEST, token="nope")
    assert mikro.s3.active_credentials == before


def test_custom_token_and_prefixes(mikro: MikroStandIn) -> None:
    with MikroStandIn(
        s3=mikro.s3, token="static", gen1_prefix="old", gen2_prefix="api/v2"
    ) as other:
        assert other.gen1_graphql_url.endswith("/old/graphql")
        assert other.gen2_graphql_url.endswith("/api/v2/graphql")
        assert data_of(graphql(other.gen2_graphql_url, IMAGES, token="static")) == {"images": []}
        assert httpx.post(other.base_url + "/graphql", json={"query": IMAGES}).status_code == 404
        assert other.representation_uri("3", with_s3=False).endswith(
            f"{other.port}/old/representation/3"
        )


def test_routes_methods_and_bodies(mikro: MikroStandIn) -> None:
    assert httpx.post(mikro.base_url + "/nothing/graphql", json={}).status_code == 404
    assert httpx.get(mikro.base_url + "/.well-known/fakts").status_code == 404
    get = httpx.get(mikro.gen2_graphql_url)
    assert (get.status_code, get.headers["Allow"]) == (405, "POST")
    for body in (b"{not json", b'{"variables": {}}', b'{"query": 3}', b"[]"):
        response = httpx.post(mikro.gen1_graphql_url, content=body)
        assert response.status_code == 400
        assert "query" in response.json()["errors"][0]["message"]


def test_syntax_errors_are_graphql_errors(mikro: MikroStandIn) -> None:
    data, message = error_of(graphql(mikro.gen2_graphql_url, "query { images {", token=mikro.token))
    assert data is None and "Syntax Error" in message


def test_operations_are_recorded_with_name_and_variables(mikro: MikroStandIn) -> None:
    graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token)
    graphql(mikro.gen1_graphql_url, "{ request { status } }", token=mikro.token)
    graphql(
        mikro.gen2_graphql_url,
        "query A { images { id } } query B($id: ID!) { image(id: $id) { id } }",
        {"id": "1"},
        mikro.token,
        operation_name="B",
    )
    graphql(mikro.gen1_graphql_url, REQUEST, token="bad")  # recorded although refused
    assert mikro.operations == [
        Operation("gen2", "Images", {}),
        Operation("gen1", "request", {}),
        Operation("gen2", "B", {"id": "1"}),
        Operation("gen1", "Request", {}),
    ]
    assert mikro.calls("request") == [{}, {}]
    assert mikro.calls("image", generation="gen2") == [{"id": "1"}]
    assert mikro.calls("images") == [{}]  # operation A was not the one executed
    mikro.reset_operations()
    assert mikro.operations == [] and mikro.calls("request") == []


def test_injected_503_then_recovery(mikro: MikroStandIn) -> None:
    mikro.faults.fail_next(2, "503")
    mikro.faults.retry_after = 1
    for _ in range(2):
        response = graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token)
        assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert data_of(graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token))["images"] is not None
    assert mikro.operations == [Operation("gen2", "Images", {})]  # faulted requests never arrived


def test_injected_drop_closes_without_answer(mikro: MikroStandIn) -> None:
    mikro.faults.fail_next(1, "drop", path_contains="/mikro/graphql")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token)
    assert data_of(graphql(mikro.gen1_graphql_url, REQUEST, token=mikro.token))["request"]


def test_injected_slow_answer_is_still_correct(mikro: MikroStandIn) -> None:
    mikro.faults.slow_seconds = 0.05
    mikro.faults.rate = 1.0
    mikro.faults.kinds = {"slow"}
    assert data_of(graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token))["images"] is not None
    assert mikro.faults.injected[-1].kind == "slow"


def test_faults_of_graphql_and_s3_are_separate(mikro: MikroStandIn) -> None:
    mikro.faults.fail_next(1, "503")
    assert mikro.s3.faults.pending == 0
    assert graphql(mikro.gen2_graphql_url, IMAGES, token=mikro.token).status_code == 503


def request_credentials(mikro: MikroStandIn) -> dict[str, Any]:
    granted = data_of(graphql(mikro.gen1_graphql_url, REQUEST, token=mikro.token))["request"]
    return {
        "access_key_id": granted["accessKey"],
        "secret_access_key": granted["secretKey"],
        "session_token": granted["sessionToken"],
    }


def test_expire_credentials_revokes_every_grant_and_new_ones_work(mikro: MikroStandIn) -> None:
    mikro.add_representation(np.zeros((1, 1, 1, 2, 2), np.uint8), "tiny")
    old = s3_client(mikro.s3_endpoint, request_credentials(mikro))
    assert old.list_objects_v2(Bucket="zarr")["KeyCount"] > 0
    assert mikro.expire_credentials() >= 1
    with pytest.raises(ClientError) as caught:
        old.list_objects_v2(Bucket="zarr")
    assert caught.value.response["Error"]["Code"] == "ExpiredToken"
    fresh = s3_client(mikro.s3_endpoint, request_credentials(mikro))
    assert fresh.list_objects_v2(Bucket="zarr")["KeyCount"] > 0


def test_short_lived_grants_say_so(mikro: MikroStandIn) -> None:
    with MikroStandIn(s3=mikro.s3, credential_ttl=30.5) as short:
        query = "mutation { requestZarrUpload(input: {}) { expiresIn } }"
        granted = data_of(graphql(short.gen2_graphql_url, query, token=short.token))
        assert granted["requestZarrUpload"]["expiresIn"] == 31


def test_stop_cuts_kept_alive_connections(mikro: MikroStandIn) -> None:
    other = MikroStandIn(s3=mikro.s3).start()
    url = other.gen2_graphql_url
    with httpx.Client(headers={"Authorization": f"Bearer {other.token}"}) as client:
        assert client.post(url, json={"query": IMAGES}).status_code == 200
        other.stop()
        with pytest.raises(httpx.TransportError):
            client.post(url, json={"query": IMAGES})
    with pytest.raises(RuntimeError, match="not running"):
        _ = other.gen2_graphql_url
    assert httpx.get(mikro.s3_endpoint).status_code == 403  # a shared S3 outlives the server


def test_constructor_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="different URL prefixes"):
        MikroStandIn(gen1_prefix="mikro", gen2_prefix="/mikro/")
    with pytest.raises(ValueError, match="below 2\\*\\*31"):
        MikroStandIn(max_upload_bytes=1 << 31)
    with pytest.raises(ValueError, match="loopback"):
        MikroStandIn(host="0.0.0.0")


def test_owned_s3_starts_and_stops_with_the_server() -> None:
    with MikroStandIn() as own:
        assert httpx.get(own.s3_endpoint).status_code == 403
        endpoint = own.s3_endpoint
    with pytest.raises(httpx.ConnectError):
        httpx.get(endpoint)
