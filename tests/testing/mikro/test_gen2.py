"""Generation 2 ("images") of the stand-in mikro server, spoken to over plain HTTP."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import zarr
from botocore.exceptions import ClientError

from napari_lablink.testing import MikroStandIn

from ..helpers import data_of, error_of, graphql, s3_client, zarr_store

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
}
"""
REQUEST_ACCESS = """
mutation RequestZarrAccess($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) {
    accessKey secretKey sessionToken bucket key path expiresIn region
  }
}
"""
IMAGES = """
query Images($filters: ImageFilter, $pagination: OffsetPaginationInput) {
  images(filters: $filters, pagination: $pagination) { id name tags store { shape dtype } }
}
"""
REQUEST_UPLOAD = """
mutation RequestZarrUpload($input: RequestZarrUploadInput!) {
  requestZarrUpload(input: $input) {
    accessKey secretKey sessionToken bucket key path store expiresIn maxBytes
  }
}
"""
FINISH_UPLOAD = """
mutation FinishZarrUpload($input: FinishZarrUploadInput!) {
  finishZarrUpload(input: $input) { id path shape dtype dimensionNames }
}
"""
FROM_ARRAY_LIKE = """
mutation FromArrayLike($input: FromArrayLikeInput!) {
  fromArrayLike(input: $input) { id name store { id path shape } }
}
"""

CELLS = np.random.default_rng(5).integers(0, 4000, (2, 1, 3, 40, 36), dtype=np.uint16)
TISSUE = np.random.default_rng(6).integers(0, 4000, (1, 1, 1, 64, 80), dtype=np.uint16)


@pytest.fixture(scope="module")
def seeded(mikro: MikroStandIn) -> dict[str, str]:
    return {
        "cells": mikro.add_image(
            CELLS,
            "Cells stack",
            channels=[
                {"name": "DAPI", "emissionWavelength": 461.0, "excitationWavelength": 358.0},
                {"name": "GFP", "emissionWavelength": 510.0},
            ],
            pixel_size=(0.2, 0.25, 0.5),
            tags=["cells"],
        ),
        "tissue": mikro.add_image(
            TISSUE, "Tissue Pyramid", chunks=(1, 1, 1, 32, 32), pyramid_levels=3, tags=["big"]
        ),
        "other": mikro.add_image(np.zeros((1, 1, 1, 4, 4), np.float32), "another image"),
    }


def ask(mikro: MikroStandIn, query: str, **variables: Any) -> Any:
    return graphql(mikro.gen2_graphql_url, query, variables, mikro.token)


def image(mikro: MikroStandIn, id: str) -> dict[str, Any]:
    return data_of(ask(mikro, GET_IMAGE, id=id))["image"]


def grant_credentials(grant: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_key_id": grant["accessKey"],
        "secret_access_key": grant["secretKey"],
        "session_token": grant["sessionToken"],
    }


def access(mikro: MikroStandIn, image_id: str) -> dict[str, Any]:
    store_id = image(mikro, image_id)["store"]["id"]
    return data_of(ask(mikro, REQUEST_ACCESS, input={"storeId": store_id}))["requestZarrAccess"]


def test_image_answers_every_documented_field(mikro: MikroStandIn, seeded: dict[str, str]) -> None:
    cells = image(mikro, seeded["cells"])
    store = cells.pop("store")
    assert store["bucket"] == "zarr"  # the logical name, not where the data is
    assert store["path"] == f"s3://mikro-zarr/{store['key']}"
    assert (store["shape"], store["chunks"], store["dtype"], store["version"]) == (
        [2, 1, 3, 40, 36],
        [1, 1, 1, 40, 36],
        "uint16",
        "3",
    )
    assert store["dimensionNames"] == ["c", "t", "z", "y", "x"]
    views = cells.pop("channelViews")
    assert [{k: v for k, v in view.items() if k != "id"} for view in views] == [
        {
            "name": "DAPI",
            "emissionWavelength": 461.0,
            "excitationWavelength": 358.0,
            "cMin": 0,
            "cMax": 0,
        },
        {
            "name": "GFP",
            "emissionWavelength": 510.0,
            "excitationWavelength": None,
            "cMin": 1,
            "cMax": 1,
        },
    ]
    (affine,) = cells.pop("affineTransformationViews")
    assert affine["affineMatrix"] == [
        [0.2, 0.0, 0.0, 0.0],
        [0.0, 0.25, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
    assert (affine["pixelSizeX"], affine["pixelSizeY"], affine["pixelSizeZ"]) == (0.2, 0.25, 0.5)
    assert cells == {
        "id": seeded["cells"],
        "name": "Cells stack",
        "tags": ["cells"],
        "derivedScaleViews": [],
    }


def test_pyramid_levels_are_derived_scale_images(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    tissue = image(mikro, seeded["tissue"])
    assert tissue["store"]["shape"] == [1, 1, 1, 64, 80]
    levels = sorted(tissue["derivedScaleViews"], key=lambda view: view["scaleX"])
    assert [(v["scaleX"], v["scaleY"], v["scaleZ"], v["scaleT"], v["scaleC"]) for v in levels] == [
        (2.0, 2.0, 1.0, 1.0, 1.0),
        (4.0, 4.0, 1.0, 1.0, 1.0),
    ]
    assert [v["image"]["store"]["shape"] for v in levels] == [[1, 1, 1, 32, 40], [1, 1, 1, 16, 20]]
    assert [v["image"]["store"]["chunks"] for v in levels] == [[1, 1, 1, 32, 32], [1, 1, 1, 16, 20]]
    half = mikro.read_image(levels[0]["image"]["id"])
    expected = TISSUE.reshape(1, 1, 1, 32, 2, 40, 2).mean(axis=(4, 6))
    np.testing.assert_array_equal(half, np.rint(expected).astype(np.uint16))
    assert half.dtype == np.uint16


def test_unknown_image_is_an_error_naming_the_id(mikro: MikroStandIn) -> None:
    data, message = error_of(ask(mikro, GET_IMAGE, id="31337"))
    assert data is None  # non-null field, as on the real server
    assert "31337" in message


@pytest.mark.parametrize(
    "query",
    [
        "query { image(id: 1001) { id views { id } } }",
        "query { image(id: 1001) { store { id fillValue } } }",
        "query { image(id: 1001) { channelViews { id acquisitionMode } } }",
        "query { images(filters: {notDerived: true}) { id } }",
        "query { images(order: {id: ASC}) { id } }",
        "query { representation(id: 1) { id } }",
        'mutation { requestZarrAccess(input: {storeId: "1"}) { accessKey endpoint } }',
    ],
)
def test_fields_and_arguments_outside_the_protocol_are_rejected(
    mikro: MikroStandIn, query: str
) -> None:
    data, message = error_of(ask(mikro, query))
    assert data is None
    assert any(
        text in message
        for text in ("Cannot query field", "Unknown argument", "not defined", "unknown field")
    ), message


def test_access_grant_reads_the_array_from_the_grant_bucket(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    grant = access(mikro, seeded["cells"])
    store = image(mikro, seeded["cells"])["store"]
    assert grant["bucket"] == "mikro-zarr" != store["bucket"]
    assert grant["key"] == store["key"]
    assert grant["path"] == store["path"]
    assert grant["region"] == "us-east-1"  # v2.0.0's field (early-2026 had datalayer)
    assert grant["expiresIn"] == 3600
    array = zarr.open_array(
        zarr_store(mikro.s3_endpoint, grant["bucket"], grant["key"], grant_credentials(grant)),
        mode="r",
    )
    assert array.metadata.dimension_names == ("c", "t", "z", "y", "x")
    np.testing.assert_array_equal(array[...], CELLS)


def test_access_grant_is_read_only_and_limited_to_its_store(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    grant = access(mikro, seeded["cells"])
    client = s3_client(mikro.s3_endpoint, grant_credentials(grant))
    assert client.get_object(Bucket=grant["bucket"], Key=f"{grant['key']}/zarr.json")
    other_key = image(mikro, seeded["tissue"])["store"]["key"]
    attempts = [
        lambda: client.get_object(Bucket=grant["bucket"], Key=f"{other_key}/zarr.json"),
        lambda: client.put_object(Bucket=grant["bucket"], Key=f"{grant['key']}/x", Body=b""),
        # A client that uses store.bucket ("zarr") instead of the grant's bucket fails too.
        lambda: client.get_object(Bucket="zarr", Key=f"{grant['key']}/zarr.json"),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as caught:
            attempt()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_access_to_an_unknown_store_is_an_error(mikro: MikroStandIn) -> None:
    data, message = error_of(ask(mikro, REQUEST_ACCESS, input={"storeId": "999999"}))
    assert data is None and "999999" in message
    _, message = error_of(ask(mikro, REQUEST_ACCESS, input={}))
    assert "storeId" in message


def test_images_filters_and_pagination(mikro: MikroStandIn, seeded: dict[str, str]) -> None:
    def ids(**variables: Any) -> list[str]:
        return [i["id"] for i in data_of(ask(mikro, IMAGES, **variables))["images"]]

    tissue_levels = {v["image"]["id"] for v in image(mikro, seeded["tissue"])["derivedScaleViews"]}
    everything = ids()
    assert set(seeded.values()) | tissue_levels <= set(everything)
    assert ids(filters={"ids": [seeded["cells"], seeded["other"]]}) == [
        seeded["cells"],
        seeded["other"],
    ]
    assert ids(filters={"search": "tissue"}) == [seeded["tissue"], *sorted(tissue_levels)]
    assert ids(filters={"name": {"exact": "Cells stack"}}) == [seeded["cells"]]
    assert ids(filters={"name": {"exact": "cells stack"}}) == []
    assert ids(filters={"name": {"iExact": "cells STACK"}}) == [seeded["cells"]]
    assert ids(filters={"name": {"contains": "Pyramid"}}) == ids(filters={"search": "tissue"})
    assert ids(filters={"name": {"contains": "pyramid"}}) == []
    assert ids(filters={"name": {"iContains": "ANOTHER"}}) == [seeded["other"]]
    assert ids(filters={"name": {"startsWith": "Tissue Pyramid ("}}) == sorted(tissue_levels)
    assert ids(pagination={"offset": 1, "limit": 2}) == everything[1:3]
    assert ids(pagination={"offset": 2}) == everything[2:]
    listed = data_of(ask(mikro, IMAGES, filters={"ids": [seeded["other"]]}))["images"]
    assert listed == [
        {
            "id": seeded["other"],
            "name": "another image",
            "tags": [],
            "store": {"shape": [1, 1, 1, 4, 4], "dtype": "float32"},
        }
    ]


def request_upload(mikro: MikroStandIn, **input: Any) -> dict[str, Any]:
    return data_of(ask(mikro, REQUEST_UPLOAD, input=input))["requestZarrUpload"]


def grant_store(endpoint: str, grant: dict[str, Any]) -> Any:
    """The zarr store a client holding ``grant`` writes to: the grant's bucket and key."""
    return zarr_store(endpoint, grant["bucket"], grant["key"], grant_credentials(grant))


@pytest.fixture
def upload(mikro: MikroStandIn) -> Any:
    """Ask for an upload grant; returns (grant, a writer of v3 arrays into it)."""

    def request(**input: Any) -> tuple[dict[str, Any], Any]:
        grant = request_upload(mikro, **input)

        def write_v3(array: np.ndarray, **kwargs: Any) -> None:
            target = zarr.create_array(
                store=grant_store(mikro.s3_endpoint, grant),
                shape=array.shape,
                dtype=array.dtype,
                zarr_format=3,
                **kwargs,
            )
            target[...] = array

        return grant, write_v3

    return request


def test_upload_finish_and_register_round_trip(
    mikro: MikroStandIn, seeded: dict[str, str], upload: Any
) -> None:
    pixels = np.random.default_rng(8).integers(0, 1000, (2, 1, 2, 30, 20), dtype=np.uint16)
    grant, write_v3 = upload(shape=list(pixels.shape), chunks=[1, 1, 1, 30, 20], version="3")
    assert grant["bucket"] == "mikro-zarr" and grant["path"] == f"s3://mikro-zarr/{grant['key']}"
    assert (grant["expiresIn"], grant["maxBytes"]) == (3600, 1 << 30)
    write_v3(pixels, chunks=(1, 1, 1, 30, 20), dimension_names=list("ctzyx"))
    finished = data_of(ask(mikro, FINISH_UPLOAD, input={"storeId": grant["store"], "valid": True}))
    assert finished["finishZarrUpload"] == {
        "id": grant["store"],
        "path": grant["path"],
        "shape": [2, 1, 2, 30, 20],
        "dtype": "uint16",
        "dimensionNames": ["c", "t", "z", "y", "x"],
    }
    matrix = [[0.1, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, 0.4, 0], [0, 0, 0, 1]]
    created = data_of(
        ask(
            mikro,
            FROM_ARRAY_LIKE,
            input={
                "array": grant["store"],
                "name": "Uploaded stack",
                "tags": ["upload"],
                "channelViews": [
                    {"name": "A", "emissionWavelength": 520.0, "cMin": 0, "cMax": 0},
                    {"name": "B", "cMin": 1, "cMax": 1},
                ],
                "transformationViews": [{"affineMatrix": matrix}],
            },
        )
    )["fromArrayLike"]
    assert created["name"] == "Uploaded stack"
    assert created["store"] == {
        "id": grant["store"],
        "path": grant["path"],
        "shape": [2, 1, 2, 30, 20],
    }
    again = image(mikro, created["id"])
    assert [v["name"] for v in again["channelViews"]] == ["A", "B"]
    assert again["affineTransformationViews"][0]["pixelSizeZ"] == 0.4
    assert again["tags"] == ["upload"]
    np.testing.assert_array_equal(mikro.read_image(created["id"]), pixels)


def test_registering_a_scale_view_builds_the_parents_pyramid(
    mikro: MikroStandIn, upload: Any
) -> None:
    ids = []
    for size in (32, 16):
        grant, write_v3 = upload()
        write_v3(np.ones((1, 1, 1, size, size), np.uint8), dimension_names=list("ctzyx"))
        data_of(ask(mikro, FINISH_UPLOAD, input={"storeId": grant["store"]}))
        scale = [] if not ids else [{"parent": ids[0], "scaleX": 2.0, "scaleY": 2.0}]
        created = data_of(
            ask(
                mikro,
                FROM_ARRAY_LIKE,
                input={"array": grant["store"], "name": f"level {size}", "scaleViews": scale},
            )
        )
        ids.append(created["fromArrayLike"]["id"])
    (view,) = image(mikro, ids[0])["derivedScaleViews"]
    assert (view["scaleX"], view["scaleY"], view["scaleZ"], view["scaleT"], view["scaleC"]) == (
        2.0,
        2.0,
        1.0,
        1.0,
        1.0,
    )
    assert view["image"]["id"] == ids[1]
    assert view["image"]["store"]["shape"] == [1, 1, 1, 16, 16]
    assert image(mikro, ids[1])["derivedScaleViews"] == []


def test_from_array_like_reads_an_unfinished_store_like_the_real_server(
    mikro: MikroStandIn, upload: Any
) -> None:
    grant, write_v3 = upload()
    write_v3(np.ones((1, 1, 1, 3, 3), np.int32), dimension_names=list("ctzyx"))
    created = data_of(ask(mikro, FROM_ARRAY_LIKE, input={"array": grant["store"], "name": "x"}))
    assert created["fromArrayLike"]["store"]["shape"] == [1, 1, 1, 3, 3]


def finish_error(mikro: MikroStandIn, store: str) -> str:
    data, message = error_of(ask(mikro, FINISH_UPLOAD, input={"storeId": store, "valid": True}))
    assert data is None
    return message


def test_finish_rejects_a_zarr_v2_store(mikro: MikroStandIn, upload: Any) -> None:
    grant, _ = upload()
    store = grant_store(mikro.s3_endpoint, grant)
    v2 = zarr.create_array(store=store, shape=(1, 1, 1, 4, 4), dtype="uint8", zarr_format=2)
    v2[...] = 1
    assert "Zarr v2 is not supported" in finish_error(mikro, grant["store"])


def test_finish_rejects_a_group(mikro: MikroStandIn, upload: Any) -> None:
    grant, _ = upload()
    store = grant_store(mikro.s3_endpoint, grant)
    group = zarr.open_group(store=store, mode="w", zarr_format=3)
    group.create_array("0", shape=(1, 1, 1, 4, 4), dtype="uint8", dimension_names=list("ctzyx"))
    assert "only Zarr v3 ARRAY stores" in finish_error(mikro, grant["store"])


def test_finish_rejects_other_dimension_names(mikro: MikroStandIn, upload: Any) -> None:
    grant, write_v3 = upload()
    write_v3(np.ones((4, 5), np.uint8), dimension_names=["x", "y"])
    message = finish_error(mikro, grant["store"])
    assert "['x', 'y']" in message and "['c', 't', 'z', 'y', 'x']" in message


def test_finish_rejects_an_empty_store(mikro: MikroStandIn, upload: Any) -> None:
    grant, _ = upload()
    assert "Could not find Zarr v3 metadata" in finish_error(mikro, grant["store"])


def test_finish_enforces_max_bytes(mikro: MikroStandIn) -> None:
    with MikroStandIn(s3=mikro.s3, max_upload_bytes=2000) as small:
        answer = graphql(small.gen2_graphql_url, REQUEST_UPLOAD, {"input": {}}, small.token)
        grant = data_of(answer)["requestZarrUpload"]
        assert grant["maxBytes"] == 2000
        noise = np.random.default_rng(0).integers(0, 2**31, (1, 1, 1, 40, 40), dtype=np.int32)
        target = zarr.create_array(
            store=grant_store(small.s3_endpoint, grant),
            shape=noise.shape,
            dtype=noise.dtype,
            dimension_names=list("ctzyx"),
            compressors=None,
        )
        target[...] = noise
        variables = {"input": {"storeId": grant["store"]}}
        _, message = error_of(
            graphql(small.gen2_graphql_url, FINISH_UPLOAD, variables, small.token)
        )
        assert "maxBytes" in message and "2000" in message
    assert mikro.s3.list_objects("mikro-zarr", grant["key"])  # the shared S3 keeps running


def test_finish_with_valid_false_discards_the_store(mikro: MikroStandIn, upload: Any) -> None:
    grant, write_v3 = upload()
    write_v3(np.ones((1, 1, 1, 4, 4), np.uint8), dimension_names=list("ctzyx"))
    assert mikro.s3.list_objects("mikro-zarr", grant["key"] + "/")
    finished = data_of(ask(mikro, FINISH_UPLOAD, input={"storeId": grant["store"], "valid": False}))
    assert finished["finishZarrUpload"]["id"] == grant["store"]
    assert mikro.s3.list_objects("mikro-zarr", grant["key"] + "/") == {}
    assert "discarded" in finish_error(mikro, grant["store"])
    _, message = error_of(ask(mikro, FROM_ARRAY_LIKE, input={"array": grant["store"], "name": "x"}))
    assert "discarded" in message


def test_upload_grant_writes_only_below_its_key(mikro: MikroStandIn, upload: Any) -> None:
    grant, _ = upload()
    client = s3_client(mikro.s3_endpoint, grant_credentials(grant))
    client.put_object(Bucket=grant["bucket"], Key=f"{grant['key']}/zarr.json", Body=b"{}")
    for bucket, key in ((grant["bucket"], "elsewhere/zarr.json"), ("zarr", f"{grant['key']}/x")):
        with pytest.raises(ClientError) as caught:
            client.put_object(Bucket=bucket, Key=key, Body=b"{}")
        assert caught.value.response["Error"]["Code"] == "AccessDenied"


def registered_store(mikro: MikroStandIn, upload: Any, channels: int = 2) -> str:
    grant, write_v3 = upload()
    write_v3(np.ones((channels, 1, 1, 4, 4), np.uint8), dimension_names=list("ctzyx"))
    data_of(ask(mikro, FINISH_UPLOAD, input={"storeId": grant["store"]}))
    return grant["store"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"channelViews": [{"name": "x", "cMin": 100, "cMax": 4000}]}, "channel indices"),
        ({"channelViews": [{"name": "x", "cMin": 1, "cMax": 0}]}, "cMin 1 > cMax 0"),
        ({"transformationViews": [{"affineMatrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]}, "4x4"),
        ({"scaleViews": [{"parent": "987654", "scaleX": 2.0}]}, "987654"),
        ({"scaleViews": [{"scaleX": 2.0}]}, "parent"),
        ({"scaleViews": [{"parent": "1001", "scaleX": -2.0}]}, "positive"),
    ],
)
def test_from_array_like_rejects_bad_views(
    mikro: MikroStandIn, seeded: dict[str, str], upload: Any, extra: dict[str, Any], expected: str
) -> None:
    store = registered_store(mikro, upload)
    before = len(mikro.state.images)
    response = ask(mikro, FROM_ARRAY_LIKE, input={"array": store, "name": "bad", **extra})
    data, message = error_of(response)
    assert data is None and expected in message
    assert len(mikro.state.images) == before


def test_from_array_like_needs_a_name_and_a_known_store(mikro: MikroStandIn, upload: Any) -> None:
    store = registered_store(mikro, upload)
    data, message = error_of(ask(mikro, FROM_ARRAY_LIKE, input={"array": store}))
    assert data is None and "name" in message
    _, message = error_of(ask(mikro, FROM_ARRAY_LIKE, input={"array": "123123", "name": "x"}))
    assert "123123" in message


def test_seeded_zarr_json_is_a_plain_v3_array(mikro: MikroStandIn, seeded: dict[str, str]) -> None:
    store = image(mikro, seeded["cells"])["store"]
    metadata = json.loads(mikro.s3.get_object("mikro-zarr", f"{store['key']}/zarr.json"))
    assert (metadata["zarr_format"], metadata["node_type"]) == (3, "array")
    assert metadata["dimension_names"] == ["c", "t", "z", "y", "x"]
    chunk_keys = [k for k in mikro.s3.list_objects("mikro-zarr", store["key"] + "/c/")]
    assert len(chunk_keys) == 2 * 3  # one chunk per plane


RGB_CONTEXTS = """
query Rendered($id: ID!) {
  image(id: $id) {
    rgbContexts {
      id name
      views { id cMin cMax colorMap gamma contrastLimitMin contrastLimitMax active baseColor }
    }
  }
}
"""


def contexts(mikro: MikroStandIn, image_id: str) -> list[dict[str, Any]]:
    return data_of(ask(mikro, RGB_CONTEXTS, id=image_id))["image"]["rgbContexts"]


def test_rgb_views_sent_with_an_image_come_back_in_one_default_context(
    mikro: MikroStandIn, upload: Any
) -> None:
    store = registered_store(mikro, upload)
    sent = [
        {"cMin": 0, "cMax": 1, "colorMap": "BLUE", "baseColor": [0.0, 0.0, 255.0, 255.0]},
        {
            "cMin": 1,
            "cMax": 2,
            "colorMap": "INTENSITY",
            "baseColor": [255.0, 165.0, 0.0, 255.0],
            "contrastLimitMin": 50.0,
            "contrastLimitMax": 2000.0,
            "active": False,
        },
    ]
    registered = data_of(
        ask(mikro, FROM_ARRAY_LIKE, input={"array": store, "name": "drawn", "rgbViews": sent})
    )["fromArrayLike"]
    (context,) = contexts(mikro, registered["id"])
    assert context["name"] == "Default"
    blue, orange = context["views"]
    assert (blue["colorMap"], blue["baseColor"], blue["active"]) == ("BLUE", [0, 0, 255, 255], True)
    assert blue["contrastLimitMin"] is None and blue["gamma"] is None
    assert (orange["cMin"], orange["cMax"], orange["colorMap"]) == (1, 2, "INTENSITY")
    assert orange["baseColor"] == [255, 165, 0, 255] and orange["active"] is False
    assert (orange["contrastLimitMin"], orange["contrastLimitMax"]) == (50.0, 2000.0)


@pytest.mark.parametrize(
    ("channels", "name", "maps", "active"),
    [
        (3, "RGB", ["RED", "GREEN", "BLUE"], [True] * 3),
        (2, "Default", ["VIRIDIS"] * 2, [True, False]),
    ],
)
def test_an_image_without_rgb_views_gets_the_servers_own(
    mikro: MikroStandIn, upload: Any, channels: int, name: str, maps: list[str], active: list[bool]
) -> None:
    store = registered_store(mikro, upload, channels=channels)
    registered = data_of(ask(mikro, FROM_ARRAY_LIKE, input={"array": store, "name": "plain"}))
    (context,) = contexts(mikro, registered["fromArrayLike"]["id"])
    assert context["name"] == name
    assert [v["colorMap"] for v in context["views"]] == maps
    assert [v["active"] for v in context["views"]] == active
    assert [(v["cMin"], v["cMax"]) for v in context["views"]] == [
        (i, i + 1) for i in range(channels)
    ]
    assert all(v["baseColor"] == [255, 255, 255, 255] for v in context["views"])
