"""Clients the stand-in tests talk through: boto3, obstore-backed zarr and plain httpx for
GraphQL (never the plugin's client)."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import zarr.storage
from botocore.config import Config
from obstore.store import S3Store


def s3_client(endpoint: str, credentials: dict[str, Any], signature_version: str = "s3v4") -> Any:
    """A boto3 client through the gateway, without retries (tests see every answer)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["secret_access_key"],
        aws_session_token=credentials.get("session_token"),
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            signature_version=signature_version,
        ),
    )


def zarr_store(endpoint: str, bucket: str, key: str, credentials: dict[str, Any]) -> Any:
    """A zarr store on bucket/key through the gateway, as a client holding a grant makes it."""
    store = S3Store(
        bucket,
        prefix=key,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=credentials["access_key_id"],
        secret_access_key=credentials["secret_access_key"],
        session_token=credentials.get("session_token"),
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        retry_config={"max_retries": 0},
    )
    return zarr.storage.ObjectStore(store)


#: One pooled client for all GraphQL calls of the tests (a new client per call costs ~50 ms).
_HTTP = httpx.Client(timeout=30)


def graphql(
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    operation_name: str | None = None,
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation_name is not None:
        payload["operationName"] = operation_name
    return _HTTP.post(url, json=payload, headers=headers)


def data_of(response: httpx.Response) -> dict[str, Any]:
    """The data of a successful GraphQL answer (fails the test on any error)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def error_of(response: httpx.Response) -> tuple[Any, str]:
    """(data, first error message) of a GraphQL answer that must carry errors."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("errors"), body
    return body.get("data"), body["errors"][0]["message"]
