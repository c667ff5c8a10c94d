"""The stand-in mikro server where it must answer exactly like the real servers did: the words
and status codes of refused tokens, generation 1's anonymous reads, v2.0.0's grant fields, the
URL prefix defaults and label images as mask views. Over real HTTP, never with the plugin's client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr

from napari_lablink.testing import MikroStandIn, S3StandIn
from tests.testing.helpers import data_of, error_of, graphql, zarr_store

IMAGES = "query Images { images { id name } }"
GET_REPRESENTATION = "query GetRepresentation($id: ID!) { representation(id: $id) { id shape } }"
REQUEST = "query Request { request { accessKey secretKey sessionToken status } }"
FROM_XARRAY = "mutation FromXArray($x: XArrayInput!) { fromXArray(xarray: $x) { id } }"
ACCESS = """
mutation RequestZarrAccess($input: RequestZarrAccessInput!) {
  requestZarrAccess(input: $input) { accessKey bucket key expiresIn %s }
}
"""
MASKS = """
query GetImage($id: ID!) {
  image(id: $id) {
    id
    maskViews { id referenceView { id image { id name } } }
    instanceMaskViews { id referenceView { id image { id } } }
  }
}
"""
REQUEST_UPLOAD = """
mutation RequestZarrUpload($input: RequestZarrUploadInput!) {
  requestZarrUpload(input: $input) { accessKey secretKey sessionToken bucket key store }
}
"""
FROM_ARRAY_LIKE = """
mutation FromArrayLike($input: FromArrayLikeInput!) { fromArrayLike(input: $input) { id } }
"""
CELLS = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 1, 1, 8, 8)


# -- refused tokens --------------------------------------------------------------------------


def test_generation_2_without_a_token_says_no_authorization_header(mikro: MikroStandIn) -> None:
    response = graphql(mikro.gen2_graphql_url, IMAGES)
    assert response.status_code == 200
    assert response.json() == {"data": None, "errors": [{"message": "No Authorization header"}]}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("wrong-token", "Error decoding token header"),  # not even a JWT
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "Error decoding token"),
    ],
)
def test_generation_2_with_a_wrong_token_cannot_decode_it(
    mikro: MikroStandIn, token: str, message: str
) -> None:
    data, said = error_of(graphql(mikro.gen2_graphql_url, IMAGES, token=token))
    assert (data, said) == (None, message)


def test_generation_1_answers_a_wrong_token_with_an_html_403_page(mikro: MikroStandIn) -> None:
    before = mikro.s3.active_credentials
    response = graphql(mikro.gen1_graphql_url, REQUEST, token="wrong-token-123")
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<title>403 Forbidden</title>" in response.text
    assert "wrong-token-123" not in response.text and mikro.token not in response.text
    assert mikro.s3.active_credentials == before  # no credentials for a wrong token


def test_generation_1_serves_reads_anonymously(mikro: MikroStandIn) -> None:
    rep_id = mikro.add_representation(CELLS, "anonymous cells")
    read = data_of(graphql(mikro.gen1_graphql_url, GET_REPRESENTATION, {"id": rep_id}))
    assert read == {"representation": {"id": rep_id, "shape": [2, 1, 1, 8, 8]}}
    listed = data_of(graphql(mikro.gen1_graphql_url, "{ representations { id } }"))
    assert {"id": rep_id} in listed["representations"]
    granted = data_of(graphql(mikro.gen1_graphql_url, REQUEST))["request"]  # even credentials
    assert granted["status"] == "success" and granted["accessKey"]


def test_generation_1_refuses_anonymous_mutations(mikro: MikroStandIn) -> None:
    response = graphql(mikro.gen1_graphql_url, FROM_XARRAY, {"x": "zarr/nothing.zarr"})
    data, message = error_of(response)
    assert data is None
    assert message == "You do not have permission to perform this action"


# -- versions: grant fields and URL prefixes --------------------------------------------------


def _grant(stand_in: MikroStandIn, field: str) -> Any:
    image_id = stand_in.add_image(CELLS, "cells")
    store = data_of(
        graphql(
            stand_in.gen2_graphql_url,
            "query G($id: ID!) { image(id: $id) { store { id } } }",
            {"id": image_id},
            stand_in.token,
        )
    )["image"]["store"]["id"]
    return graphql(
        stand_in.gen2_graphql_url, ACCESS % field, {"input": {"storeId": store}}, stand_in.token
    )


def test_v2_0_0_grants_carry_region_and_no_datalayer(mikro: MikroStandIn) -> None:
    assert mikro.gen2_version == "2.0.0"  # the default
    grant = data_of(_grant(mikro, "region"))["requestZarrAccess"]
    assert grant["region"] == "us-east-1" and grant["bucket"] == "mikro-zarr"
    _, message = error_of(_grant(mikro, "datalayer"))
    assert "Cannot query field 'datalayer'" in message


def test_early_2026_grants_carry_datalayer_and_no_region(s3: S3StandIn) -> None:
    with MikroStandIn(s3=s3, gen2_version="early-2026") as early:
        assert data_of(_grant(early, "datalayer"))["requestZarrAccess"]["datalayer"] == "zarr"
        _, message = error_of(_grant(early, "region"))
        assert "Cannot query field 'region'" in message


def test_prefix_defaults_of_each_version(s3: S3StandIn) -> None:
    with MikroStandIn(s3=s3, gen2_version="early-2026", gen2_prefix=None) as early:
        assert early.gen2_graphql_url == f"{early.base_url}/lovekit/graphql"
        assert data_of(graphql(early.gen2_graphql_url, IMAGES, token=early.token))
    with MikroStandIn(s3=s3, gen2_prefix=None, gen1_prefix="old") as current:
        assert current.gen2_graphql_url == f"{current.base_url}/graphql"  # v2.0.0: no prefix
        assert data_of(graphql(current.gen2_graphql_url, IMAGES, token=current.token))
    with pytest.raises(ValueError, match="different URL prefixes"):
        MikroStandIn(s3=s3, gen2_prefix=None)  # generation 1 is at /graphql too
    with pytest.raises(ValueError, match="gen2_version must be one of"):
        MikroStandIn(s3=s3, gen2_version="1.9")


# -- label images ----------------------------------------------------------------------------


def _masks(mikro: MikroStandIn, image_id: str) -> dict[str, Any]:
    return data_of(graphql(mikro.gen2_graphql_url, MASKS, {"id": image_id}, mikro.token))["image"]


def test_a_seeded_label_image_has_a_mask_view_of_itself(mikro: MikroStandIn) -> None:
    labels_id = mikro.add_image(CELLS[:1], "nuclei", labels=True)
    answer = _masks(mikro, labels_id)
    (mask,) = answer["maskViews"]
    assert mask["referenceView"]["image"] == {"id": labels_id, "name": "nuclei"}
    assert answer["instanceMaskViews"] == []
    plain = _masks(mikro, mikro.add_image(CELLS, "cells"))
    assert plain["maskViews"] == [] and plain["instanceMaskViews"] == []


def _upload_store(mikro: MikroStandIn, array: np.ndarray) -> str:
    grant = data_of(graphql(mikro.gen2_graphql_url, REQUEST_UPLOAD, {"input": {}}, mikro.token))[
        "requestZarrUpload"
    ]
    credentials = {
        "access_key_id": grant["accessKey"],
        "secret_access_key": grant["secretKey"],
        "session_token": grant["sessionToken"],
    }
    target = zarr.create_array(
        store=zarr_store(mikro.s3_endpoint, grant["bucket"], grant["key"], credentials),
        shape=array.shape,
        dtype=array.dtype,
        zarr_format=3,
        dimension_names=list("ctzyx"),
    )
    target[...] = array
    return grant["store"]


def test_uploaded_masks_point_at_the_image_they_label(mikro: MikroStandIn) -> None:
    first = mikro.add_image(CELLS[:1], "semantic", labels=True)
    reference = _masks(mikro, first)["maskViews"][0]["referenceView"]["id"]
    created = data_of(
        graphql(
            mikro.gen2_graphql_url,
            FROM_ARRAY_LIKE,
            {
                "input": {
                    "array": _upload_store(mikro, CELLS[:1]),
                    "name": "instances",
                    "instanceMaskViews": [{"referenceView": reference, "labels": {"1": "cell"}}],
                }
            },
            mikro.token,
        )
    )["fromArrayLike"]
    answer = _masks(mikro, created["id"])
    assert answer["maskViews"] == []
    (instance,) = answer["instanceMaskViews"]
    assert instance["referenceView"] == {"id": reference, "image": {"id": first}}


def test_a_mask_of_an_unknown_view_is_refused(mikro: MikroStandIn) -> None:
    response = graphql(
        mikro.gen2_graphql_url,
        FROM_ARRAY_LIKE,
        {
            "input": {
                "array": _upload_store(mikro, CELLS[:1]),
                "name": "orphan",
                "maskViews": [{"referenceView": "999999"}],
            }
        },
        mikro.token,
    )
    data, message = error_of(response)
    assert data is None and message == "ReferenceView with id '999999' does not exist."
