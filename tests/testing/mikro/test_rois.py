"""ROIs of the stand-in mikro server, both generations, over raw GraphQL and raw websockets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from napari_lablink.testing import MikroStandIn
from tests.testing.helpers import data_of, error_of, graphql

PIXELS = np.zeros((1, 1, 4, 30, 20), dtype=np.uint8)

CREATE_GEN2 = """
mutation CreateRoi($input: RoiInput!) {
  createRoi(input: $input) { id kind vectors pinned name image { id } createdAt }
}"""
UPDATE_GEN2 = """
mutation UpdateRoi($input: UpdateRoiInput!) { updateRoi(input: $input) { id kind vectors } }"""
DELETE_GEN2 = "mutation DeleteRoi($input: DeleteRoiInput!) { deleteRoi(input: $input) }"
IMAGE_ROIS = "query ($id: ID!) { image(id: $id) { rois { id kind vectors } } }"
LIST_GEN2 = """
query Rois($filters: ROIFilter, $pagination: OffsetPaginationInput) {
  rois(filters: $filters, pagination: $pagination) { id kind }
}"""

CREATE_GEN1 = """
mutation CreateROI($representation: ID!, $vectors: [InputVector]!, $type: RoiTypeInput!,
                   $label: String, $tags: [String]) {
  createROI(representation: $representation, vectors: $vectors, type: $type, label: $label,
            tags: $tags) {
    id type label color tags vectors { x y z t c } representation { id } createdAt
  }
}"""
DELETE_GEN1 = "mutation ($id: ID!) { deleteROI(id: $id) { id } }"
LIST_GEN1 = """
query ($representation: ID, $type: [RoiTypeInput]) {
  rois(representation: $representation, type: $type) { id type label }
}"""

SUBSCRIBE_GEN2 = """
subscription Rois($image: ID!) {
  rois(image: $image) { create { id kind vectors } update { id kind vectors } delete }
}"""
SUBSCRIBE_GEN1 = """
subscription Rois($representation: ID!) {
  rois(representation: $representation) { create { id type vectors { x y } } delete }
}"""


@pytest.fixture(scope="module")
def image_id(mikro: MikroStandIn) -> str:
    return mikro.add_image(PIXELS, "roi target")


@pytest.fixture(scope="module")
def representation_id(mikro: MikroStandIn) -> str:
    return mikro.add_representation(PIXELS, "roi target")


def test_gen2_create_update_delete(mikro: MikroStandIn, image_id: str) -> None:
    url, token = mikro.gen2_graphql_url, mikro.token
    vectors = [[0, 0, 1, 2.5, 3], [0, 0, 1, 10, 12]]
    made = data_of(
        graphql(
            url,
            CREATE_GEN2,
            {"input": {"image": image_id, "vectors": vectors, "kind": "RECTANGLE"}},
            token,
        )
    )["createRoi"]
    assert made["kind"] == made["name"] == "RECTANGLE"
    assert made["vectors"] == [[0.0, 0.0, 1.0, 2.5, 3.0], [0.0, 0.0, 1.0, 10.0, 12.0]]
    assert made["image"] == {"id": image_id} and made["pinned"] is False
    moved = [[0, 0, 2, 3, 4], [0, 0, 2, 5, 6]]
    updated = data_of(
        graphql(url, UPDATE_GEN2, {"input": {"roi": made["id"], "vectors": moved}}, token)
    )["updateRoi"]
    assert updated["vectors"][0] == [0.0, 0.0, 2.0, 3.0, 4.0]
    kept = data_of(
        graphql(
            url,
            UPDATE_GEN2,
            {"input": {"roi": made["id"], "vectors": [], "kind": "ELLIPSIS"}},
            token,
        )
    )["updateRoi"]
    assert kept["kind"] == "ELLIPSIS" and kept["vectors"] == updated["vectors"]
    listed = data_of(graphql(url, IMAGE_ROIS, {"id": image_id}, token))["image"]["rois"]
    assert made["id"] in [r["id"] for r in listed]
    by_filter = data_of(
        graphql(url, LIST_GEN2, {"filters": {"image": image_id, "kind": "ELLIPSIS"}}, token)
    )["rois"]
    assert [r["id"] for r in by_filter] == [made["id"]]
    gone = data_of(graphql(url, DELETE_GEN2, {"input": {"id": made["id"]}}, token))
    assert gone["deleteRoi"] == made["id"]
    listed = data_of(graphql(url, IMAGE_ROIS, {"id": image_id}, token))["image"]["rois"]
    assert made["id"] not in [r["id"] for r in listed]


def test_gen2_vectors_must_have_five_numbers(mikro: MikroStandIn, image_id: str) -> None:
    variables = {"input": {"image": image_id, "vectors": [[1, 2]], "kind": "POINT"}}
    _, message = error_of(graphql(mikro.gen2_graphql_url, CREATE_GEN2, variables, mikro.token))
    assert "FiveDVector" in message


def test_gen2_unknown_image_and_kind(mikro: MikroStandIn) -> None:
    variables = {"input": {"image": "999999", "vectors": [[0, 0, 0, 1, 1]], "kind": "POINT"}}
    _, message = error_of(graphql(mikro.gen2_graphql_url, CREATE_GEN2, variables, mikro.token))
    assert "does not exist" in message
    variables["input"]["kind"] = "ELLIPSE"  # generation 1's output name is no RoiKind
    _, message = error_of(graphql(mikro.gen2_graphql_url, CREATE_GEN2, variables, mikro.token))
    assert "ELLIPSE" in message


def test_gen1_ellipsis_in_ellipse_out(mikro: MikroStandIn, representation_id: str) -> None:
    url, token = mikro.gen1_graphql_url, mikro.token
    vectors = [{"x": 3, "y": 4, "z": 0, "t": 0, "c": 0}, {"x": 2, "y": 1}]
    made = data_of(
        graphql(
            url,
            CREATE_GEN1,
            {
                "representation": representation_id,
                "vectors": vectors,
                "type": "ELLIPSIS",
                "label": "cell",
                "tags": ["a"],
            },
            token,
        )
    )["createROI"]
    assert made["type"] == "ELLIPSE"
    assert made["label"] == "cell" and made["tags"] == ["a"] and made["color"] is None
    assert made["vectors"][0] == {"x": 3.0, "y": 4.0, "z": 0.0, "t": 0.0, "c": 0.0}
    assert made["vectors"][1] == {"x": 2.0, "y": 1.0, "z": None, "t": None, "c": None}
    assert made["representation"] == {"id": representation_id}
    listed = data_of(
        graphql(url, LIST_GEN1, {"representation": representation_id, "type": ["ELLIPSIS"]}, token)
    )["rois"]
    assert [r["id"] for r in listed] == [made["id"]]
    _, message = error_of(
        graphql(
            url,
            CREATE_GEN1,
            {"representation": representation_id, "vectors": vectors, "type": "ELLIPSE"},
            token,
        )
    )
    assert "ELLIPSE" in message
    assert data_of(graphql(url, DELETE_GEN1, {"id": made["id"]}, token))["deleteROI"] == {
        "id": made["id"]
    }
    nested = data_of(
        graphql(
            url,
            "query ($id: ID!) { representation(id: $id) { rois { id } } }",
            {"id": representation_id},
            token,
        )
    )
    assert nested["representation"]["rois"] == []


# -- subscriptions --------------------------------------------------------------------------


def _subscribe(ws: ClientConnection, id: str, query: str, **variables: str) -> None:
    payload = {"query": query, "variables": variables}
    ws.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))


def _receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))


def _subscribed(ws: ClientConnection, id: str, query: str, **variables: str) -> None:
    """Subscribe, then wait until the server has registered it: it handles a connection's
    messages in order, so its pong to a ping sent after the subscribe says the subscribe is
    done and a change made from now on is streamed."""
    _subscribe(ws, id, query, **variables)
    ws.send(json.dumps({"type": "ping"}))
    assert _receive(ws) == {"type": "pong"}


@pytest.fixture
def gen2_socket(mikro: MikroStandIn) -> Iterator[ClientConnection]:
    with connect(mikro.gen2_websocket_url, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {"token": mikro.token}}))
        assert _receive(ws) == {"type": "connection_ack"}
        yield ws


def test_gen2_subscription_streams_create_update_delete(
    mikro: MikroStandIn, image_id: str, gen2_socket: ClientConnection
) -> None:
    ws = gen2_socket
    _subscribed(ws, "1", SUBSCRIBE_GEN2, image=image_id)
    url, token = mikro.gen2_graphql_url, mikro.token
    made = data_of(
        graphql(
            url,
            CREATE_GEN2,
            {"input": {"image": image_id, "vectors": [[0, 0, 0, 5, 6]], "kind": "POINT"}},
            token,
        )
    )["createRoi"]
    event = _receive(ws)
    assert event["id"] == "1" and event["type"] == "next"
    assert event["payload"]["data"]["rois"] == {
        "create": {"id": made["id"], "kind": "POINT", "vectors": [[0.0, 0.0, 0.0, 5.0, 6.0]]},
        "update": None,
        "delete": None,
    }
    graphql(url, UPDATE_GEN2, {"input": {"roi": made["id"], "vectors": [[0, 0, 1, 1, 1]]}}, token)
    assert _receive(ws)["payload"]["data"]["rois"]["update"]["vectors"] == [[0, 0, 1, 1, 1]]
    graphql(url, DELETE_GEN2, {"input": {"id": made["id"]}}, token)
    assert _receive(ws)["payload"]["data"]["rois"]["delete"] == made["id"]
    ws.send(json.dumps({"type": "ping"}))
    assert _receive(ws) == {"type": "pong"}
    ws.send(json.dumps({"id": "1", "type": "complete"}))


def test_gen1_subscription_answers_ellipse(mikro: MikroStandIn, representation_id: str) -> None:
    headers = {"Authorization": f"Bearer {mikro.token}"}
    with connect(
        mikro.gen1_websocket_url, subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:
        ws.send(json.dumps({"type": "connection_init"}))  # the handshake header authorizes
        assert _receive(ws)["type"] == "connection_ack"
        _subscribed(ws, "a", SUBSCRIBE_GEN1, representation=representation_id)
        variables = {
            "representation": representation_id,
            "type": "ELLIPSIS",
            "vectors": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
        }
        made = data_of(graphql(mikro.gen1_graphql_url, CREATE_GEN1, variables, mikro.token))
        event = _receive(ws)["payload"]["data"]["rois"]
        assert event["create"]["id"] == made["createROI"]["id"]
        assert event["create"]["type"] == "ELLIPSE"
        assert event["create"]["vectors"] == [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}]


def test_subscription_refuses_bad_token(mikro: MikroStandIn) -> None:
    with connect(mikro.gen2_websocket_url, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {"token": "wrong"}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_subscription_errors_for_unknown_image(gen2_socket: ClientConnection) -> None:
    _subscribe(gen2_socket, "x", SUBSCRIBE_GEN2, image="0")
    answer = _receive(gen2_socket)
    assert answer["type"] == "error" and answer["id"] == "x"
    assert "does not exist" in answer["payload"][0]["message"]


def test_subscription_needs_the_subprotocol(mikro: MikroStandIn) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(mikro.gen2_websocket_url, subprotocols=["graphql-ws"])  # the legacy protocol
    assert refused.value.response.status_code == 400


def test_dropped_websockets_unsubscribe(
    mikro: MikroStandIn, image_id: str, gen2_socket: ClientConnection
) -> None:
    before = mikro.rois.subscriber_count()
    _subscribed(gen2_socket, "1", SUBSCRIBE_GEN2, image=image_id)
    assert mikro.rois.subscriber_count() == before + 1
    assert mikro.drop_websockets() >= 1
    with pytest.raises(ConnectionClosed):
        gen2_socket.recv(timeout=10)
    for _ in range(100):
        if mikro.rois.subscriber_count() == before:
            break
        time.sleep(0.05)
    assert mikro.rois.subscriber_count() == before
