"""Generation 1 ("representations") of the stand-in mikro server, spoken to over plain HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest
import xarray as xr

from napari_lablink.testing import MikroStandIn

from ..helpers import data_of, error_of, graphql, s3_client, zarr_store

GET_REPRESENTATION = """
query GetRepresentation($id: ID!) {
  representation(id: $id) {
    id name store shape dims variety tags
    omero { physicalSize { x y z t c } scale channels { name color } }
    sample { id name }
    origins { id }
  }
}
"""
REQUEST = "query Request { request { accessKey secretKey sessionToken status } }"
REPRESENTATIONS = """
query Representations($name: String, $tags: [String], $limit: Int, $offset: Int) {
  representations(name: $name, tags: $tags, limit: $limit, offset: $offset) { id name shape tags }
}
"""
FROM_XARRAY = """
mutation FromXArray($xarray: XArrayInput!, $name: String, $variety: RepresentationVarietyInput,
                    $tags: [String], $origins: [ID], $omero: OmeroRepresentationInput) {
  fromXArray(xarray: $xarray, name: $name, variety: $variety, tags: $tags,
             origins: $origins, omero: $omero) { id name store shape dims variety }
}
"""

STACK = np.arange(2 * 1 * 3 * 20 * 24, dtype=np.uint16).reshape(2, 1, 3, 20, 24)


@pytest.fixture(scope="module")
def seeded(mikro: MikroStandIn) -> dict[str, str]:
    return {
        "stack": mikro.add_representation(
            STACK,
            "Stack one",
            physical_size={"x": 0.2, "y": 0.25, "z": 0.5, "t": None, "c": None},
            channels=[{"name": "DAPI", "color": "rgb(0,0,255)"}, {"name": "GFP", "color": None}],
            tags=["alpha", "beta"],
            chunks=(1, 1, 1, 20, 24),
        ),
        "mask": mikro.add_representation(
            (STACK % 3).astype(np.uint16)[:1], "Mask of stack", variety="MASK", tags=["beta"]
        ),
        "plain": mikro.add_representation(np.zeros((1, 2, 1, 8, 8), np.float32), "Plain thing"),
    }


def ask(mikro: MikroStandIn, query: str, **variables: Any) -> Any:
    return graphql(mikro.gen1_graphql_url, query, variables, mikro.token)


def request_credentials(mikro: MikroStandIn) -> dict[str, Any]:
    granted = data_of(ask(mikro, REQUEST))["request"]
    return {
        "access_key_id": granted["accessKey"],
        "secret_access_key": granted["secretKey"],
        "session_token": granted["sessionToken"],
    }


def test_representation_answers_every_documented_field(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    representation = data_of(ask(mikro, GET_REPRESENTATION, id=seeded["stack"]))["representation"]
    bucket, key = representation.pop("store").split("/", 1)
    assert (bucket, key.endswith(".zarr")) == ("zarr", True)
    assert representation == {
        "id": seeded["stack"],
        "name": "Stack one",
        "shape": [2, 1, 3, 20, 24],
        "dims": ["c", "t", "z", "y", "x"],
        "variety": "VOXEL",
        "tags": ["alpha", "beta"],
        "omero": {
            "physicalSize": {"x": 0.2, "y": 0.25, "z": 0.5, "t": None, "c": None},
            "scale": None,
            "channels": [{"name": "DAPI", "color": "rgb(0,0,255)"}, {"name": "GFP", "color": None}],
        },
        "sample": None,
        "origins": [],
    }


def test_representation_without_omero_and_mask_variety(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    mask = data_of(ask(mikro, GET_REPRESENTATION, id=seeded["mask"]))["representation"]
    assert (mask["variety"], mask["shape"], mask["omero"]) == ("MASK", [1, 1, 3, 20, 24], None)


def test_unknown_representation_is_an_error_naming_the_id(mikro: MikroStandIn) -> None:
    data, message = error_of(ask(mikro, GET_REPRESENTATION, id="424242"))
    assert data == {"representation": None}  # nullable field, as on the real server
    assert "424242" in message


@pytest.mark.parametrize(
    "query",
    [
        "query { representation(id: 1) { id thumbnail } }",
        "query { representation(id: 1) { omero { channels { name emmissionWavelength } } } }",
        'query { representations(ordering: "-id") { id } }',
        "query { image(id: 1) { id } }",
    ],
)
def test_fields_and_arguments_outside_the_protocol_are_rejected(
    mikro: MikroStandIn, query: str
) -> None:
    data, message = error_of(ask(mikro, query))
    assert data is None
    assert "Cannot query field" in message or "Unknown argument" in message


def test_request_grants_session_credentials_that_read_the_store(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    granted = data_of(ask(mikro, REQUEST))["request"]
    assert granted["status"] == "success"
    assert granted["accessKey"].startswith("ASIA") and granted["sessionToken"]
    store = data_of(ask(mikro, GET_REPRESENTATION, id=seeded["stack"]))["representation"]["store"]
    bucket, key = store.split("/", 1)
    credentials = request_credentials(mikro)
    dataset = xr.open_zarr(zarr_store(mikro.s3_endpoint, bucket, key, credentials))
    assert dataset.attrs == {"fileversion": "v1"}
    assert list(dataset.data_vars) == ["data"]
    assert dataset["data"].dims == ("c", "t", "z", "y", "x")
    np.testing.assert_array_equal(dataset["data"].values, STACK)


def test_seeded_store_is_exactly_what_xarray_to_zarr_consolidated_writes(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    store = data_of(ask(mikro, GET_REPRESENTATION, id=seeded["stack"]))["representation"]["store"]
    bucket, key = store.split("/", 1)
    objects = mikro.s3.list_objects(bucket, key + "/")
    metadata = {k.removeprefix(key + "/") for k in objects if "/." in k}
    assert metadata == {".zgroup", ".zattrs", ".zmetadata", "data/.zarray", "data/.zattrs"}
    consolidated = json.loads(mikro.s3.get_object(bucket, f"{key}/.zmetadata"))["metadata"]
    assert consolidated["data/.zattrs"]["_ARRAY_DIMENSIONS"] == ["c", "t", "z", "y", "x"]
    assert consolidated["data/.zarray"]["zarr_format"] == 2
    assert consolidated["data/.zarray"]["chunks"] == [1, 1, 1, 20, 24]
    assert consolidated[".zattrs"] == {"fileversion": "v1"}
    assert len([k for k in objects if k.startswith(f"{key}/data/") and "/." not in k]) == 6


def test_default_chunks_follow_the_old_clients(mikro: MikroStandIn) -> None:
    id = mikro.add_representation(np.zeros((2, 1, 16, 64, 64), np.uint16), "Default chunks")
    bucket, key = mikro.state.representation(id).store.split("/", 1)
    zarray = json.loads(mikro.s3.get_object(bucket, f"{key}/data/.zarray"))
    assert zarray["chunks"] == [1, 1, 16, 64, 64]  # c chunk 1, whole stack (< 20 MB) per chunk


def test_representations_filter_by_name_and_tags_and_page(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    def ids(**variables: Any) -> list[str]:
        return [
            r["id"] for r in data_of(ask(mikro, REPRESENTATIONS, **variables))["representations"]
        ]

    assert ids(name="stack") == [seeded["stack"], seeded["mask"]]
    assert ids(tags=["alpha"]) == [seeded["stack"]]
    assert ids(tags=["beta"]) == [seeded["stack"], seeded["mask"]]
    everything = ids()
    assert set(seeded.values()) <= set(everything)
    assert ids(limit=2) == everything[:2]
    assert ids(limit=2, offset=1) == everything[1:3]
    listed = data_of(ask(mikro, REPRESENTATIONS, name="plain"))["representations"]
    assert listed == [
        {"id": seeded["plain"], "name": "Plain thing", "shape": [1, 2, 1, 8, 8], "tags": []}
    ]


def write_dataset(mikro: MikroStandIn, dataset: xr.Dataset, **kwargs: Any) -> str:
    """Write like a generation-1 client: to zarr/<uuid>.zarr with credentials from request."""
    key = f"{uuid.uuid4()}.zarr"
    store = zarr_store(mikro.s3_endpoint, "zarr", key, request_credentials(mikro))
    dataset.to_zarr(store, mode="w", **kwargs)
    return f"zarr/{key}"


def test_from_xarray_registers_a_dataset_the_client_wrote(
    mikro: MikroStandIn, seeded: dict[str, str]
) -> None:
    pixels = np.random.default_rng(3).integers(0, 255, (1, 1, 4, 10, 12), dtype=np.uint8)
    dataset = xr.Dataset(
        {"data": xr.DataArray(pixels, dims=list("ctzyx"))}, attrs={"fileversion": "v1"}
    )
    path = write_dataset(mikro, dataset, consolidated=True, zarr_format=2)
    omero = {
        "physicalSize": {"x": 0.1, "y": 0.1, "z": 0.3},
        "scale": [1.0, 1.0, 1.0, 1.0, 1.0],
        "channels": [{"name": "Cy5", "color": "#ff0000", "emmissionWavelength": 670.0}],
    }
    created = data_of(
        ask(
            mikro,
            FROM_XARRAY,
            xarray=path,
            name="Uploaded",
            variety="VOXEL",
            tags=["upload"],
            origins=[seeded["stack"]],
            omero=omero,
        )
    )["fromXArray"]
    assert created["store"] == path
    assert (created["shape"], created["dims"], created["variety"]) == (
        [1, 1, 4, 10, 12],
        ["c", "t", "z", "y", "x"],
        "VOXEL",
    )
    again = data_of(ask(mikro, GET_REPRESENTATION, id=created["id"]))["representation"]
    assert again["origins"] == [{"id": seeded["stack"]}]
    assert again["omero"]["physicalSize"] == {"x": 0.1, "y": 0.1, "z": 0.3, "t": None, "c": None}
    assert again["omero"]["channels"] == [{"name": "Cy5", "color": "#ff0000"}]
    np.testing.assert_array_equal(mikro.read_representation(created["id"]), pixels)


def test_from_xarray_defaults_to_unknown_variety(mikro: MikroStandIn) -> None:
    dataset = xr.Dataset({"data": xr.DataArray(np.ones((1, 1, 1, 2, 2)), dims=list("ctzyx"))})
    path = write_dataset(mikro, dataset, consolidated=True, zarr_format=2)
    created = data_of(ask(mikro, FROM_XARRAY, xarray=path))["fromXArray"]
    assert created["variety"] == "UNKNOWN"
    assert created["name"] == path.split("/", 1)[1].removesuffix(".zarr")


def test_from_xarray_rejects_a_store_that_does_not_exist(mikro: MikroStandIn) -> None:
    path = f"zarr/{uuid.uuid4()}.zarr"
    data, message = error_of(ask(mikro, FROM_XARRAY, xarray=path))
    assert data == {"fromXArray": None}
    assert path in message and "does not exist" in message


def test_from_xarray_rejects_missing_dims(mikro: MikroStandIn) -> None:
    dataset = xr.Dataset({"data": xr.DataArray(np.ones((5, 6)), dims=["y", "x"])})
    path = write_dataset(mikro, dataset, consolidated=True, zarr_format=2)
    _, message = error_of(ask(mikro, FROM_XARRAY, xarray=path))
    assert "['y', 'x']" in message and "all five" in message


def test_from_xarray_rejects_a_dataset_without_data_variable(mikro: MikroStandIn) -> None:
    dataset = xr.Dataset({"image": xr.DataArray(np.ones((1, 1, 1, 2, 2)), dims=list("ctzyx"))})
    path = write_dataset(mikro, dataset, consolidated=True, zarr_format=2)
    _, message = error_of(ask(mikro, FROM_XARRAY, xarray=path))
    assert "no variable 'data'" in message


def test_from_xarray_rejects_zarr_v3(mikro: MikroStandIn) -> None:
    dataset = xr.Dataset({"data": xr.DataArray(np.ones((1, 1, 1, 2, 2)), dims=list("ctzyx"))})
    path = write_dataset(mikro, dataset, consolidated=False, zarr_format=3)
    _, message = error_of(ask(mikro, FROM_XARRAY, xarray=path))
    assert "zarr format 3" in message


@pytest.mark.parametrize("path", ["s3://zarr/x.zarr", "x.zarr", "zarr/"])
def test_from_xarray_rejects_a_malformed_store_path(mikro: MikroStandIn, path: str) -> None:
    _, message = error_of(ask(mikro, FROM_XARRAY, xarray=path))
    assert "'<bucket>/<key>'" in message


def test_from_xarray_rejects_unknown_origins(mikro: MikroStandIn) -> None:
    dataset = xr.Dataset({"data": xr.DataArray(np.ones((1, 1, 1, 2, 2)), dims=list("ctzyx"))})
    path = write_dataset(mikro, dataset, consolidated=True, zarr_format=2)
    _, message = error_of(ask(mikro, FROM_XARRAY, xarray=path, origins=["777777"]))
    assert "777777" in message


def test_request_credentials_reach_every_bucket_and_can_write(mikro: MikroStandIn) -> None:
    client = s3_client(mikro.s3_endpoint, request_credentials(mikro))
    client.put_object(Bucket="zarr", Key="scratch/object", Body=b"1")
    assert client.get_object(Bucket="zarr", Key="scratch/object")["Body"].read() == b"1"
