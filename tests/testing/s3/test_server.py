"""The S3 stand-in behaves like a real datalayer toward clients: credentials, counting, faults."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from napari_lablink.testing import S3StandIn
from napari_lablink.testing.s3.server import S3Request, S3Scope

from ..helpers import s3_client

BUCKET = "plates"


@pytest.fixture(scope="module", autouse=True)
def _objects(s3: S3StandIn) -> None:
    s3.create_bucket(BUCKET)
    s3.create_bucket("other")
    for key in ("a/zarr.json", "a/c/0/0", "a/c/0/1", "b/zarr.json"):
        s3.put_object(BUCKET, key, key.encode())
    s3.put_object("other", "x", b"x")


def error_code(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_admin_credentials_read_and_write_through_the_gateway(s3: S3StandIn) -> None:
    client = s3_client(s3.endpoint, s3.admin_credentials)
    client.put_object(Bucket=BUCKET, Key="admin/new", Body=b"payload")
    assert client.get_object(Bucket=BUCKET, Key="admin/new")["Body"].read() == b"payload"
    assert s3.get_object(BUCKET, "admin/new") == b"payload"


def test_issued_credentials_are_sts_session_credentials(s3: S3StandIn) -> None:
    credentials = s3.issue_credentials(120)
    assert credentials["access_key_id"].startswith("ASIA")
    assert credentials["session_token"]
    remaining = (credentials["expires_at"] - datetime.now(UTC)).total_seconds()
    assert 100 < remaining <= 120
    client = s3_client(s3.endpoint, credentials)
    assert client.get_object(Bucket=BUCKET, Key="a/c/0/0")["Body"].read() == b"a/c/0/0"


def test_unknown_key_is_invalid_access_key_id(s3: S3StandIn) -> None:
    client = s3_client(s3.endpoint, {"access_key_id": "AKIANOTKNOWN", "secret_access_key": "x"})
    assert error_code(lambda: client.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
        403,
        "InvalidAccessKeyId",
    )


def test_session_key_without_its_token_is_invalid_access_key_id(s3: S3StandIn) -> None:
    credentials = dict(s3.issue_credentials(60), session_token=None)
    client = s3_client(s3.endpoint, credentials)
    assert error_code(lambda: client.head_object(Bucket=BUCKET, Key="a/zarr.json"))[0] == 403
    assert error_code(lambda: client.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
        403,
        "InvalidAccessKeyId",
    )


def test_session_key_with_a_wrong_token_is_invalid_token(s3: S3StandIn) -> None:
    credentials = dict(s3.issue_credentials(60), session_token="forged")
    client = s3_client(s3.endpoint, credentials)
    assert error_code(lambda: client.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
        400,
        "InvalidToken",
    )


def test_anonymous_requests_are_denied(s3: S3StandIn) -> None:
    response = httpx.get(f"{s3.endpoint}/{BUCKET}/a/zarr.json")
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text


def test_revoke_all_expires_issued_credentials_but_not_admin_or_new_ones(s3: S3StandIn) -> None:
    old = s3_client(s3.endpoint, s3.issue_credentials(3600))
    assert old.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"
    assert s3.revoke_all() >= 1
    assert s3.active_credentials == 0
    assert error_code(lambda: old.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
        400,
        "ExpiredToken",
    )
    admin = s3_client(s3.endpoint, s3.admin_credentials)
    assert admin.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"
    fresh = s3_client(s3.endpoint, s3.issue_credentials(3600))
    assert fresh.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"


def test_credentials_expire_after_their_ttl(s3: S3StandIn) -> None:
    import time

    client = s3_client(s3.endpoint, s3.issue_credentials(0.3))
    time.sleep(0.4)
    assert error_code(lambda: client.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
        400,
        "ExpiredToken",
    )


@pytest.mark.parametrize(
    ("signature_version", "credential_field"),
    [("s3v4", "X-Amz-Credential"), ("s3", "AWSAccessKeyId")],
)
def test_presigned_urls_carry_the_credential_in_the_query(
    s3: S3StandIn, signature_version: str, credential_field: str
) -> None:
    client = s3_client(s3.endpoint, s3.issue_credentials(3600), signature_version)
    url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "a/c/0/1"})
    assert credential_field in url
    assert httpx.get(url).content == b"a/c/0/1"
    s3.revoke_all()
    expired = httpx.get(url)
    assert expired.status_code == 400
    assert "<Code>ExpiredToken</Code>" in expired.text


def test_scoped_credentials_reach_only_their_prefix(s3: S3StandIn) -> None:
    read_a = s3_client(s3.endpoint, s3.issue_credentials(60, scope=[S3Scope(BUCKET, "a")]))
    assert read_a.get_object(Bucket=BUCKET, Key="a/c/0/0")["Body"].read() == b"a/c/0/0"
    listed = read_a.list_objects_v2(Bucket=BUCKET, Prefix="a/")
    assert sorted(o["Key"] for o in listed["Contents"]) == ["a/c/0/0", "a/c/0/1", "a/zarr.json"]
    denied = (403, "AccessDenied")
    assert error_code(lambda: read_a.get_object(Bucket=BUCKET, Key="b/zarr.json")) == denied
    assert error_code(lambda: read_a.get_object(Bucket="other", Key="x")) == denied
    assert error_code(lambda: read_a.list_objects_v2(Bucket=BUCKET)) == denied
    assert error_code(lambda: read_a.put_object(Bucket=BUCKET, Key="a/new", Body=b"1")) == denied


def test_write_scope_allows_writes_below_the_prefix_only(s3: S3StandIn) -> None:
    scope = [S3Scope(BUCKET, "upload", write=True)]
    client = s3_client(s3.endpoint, s3.issue_credentials(60, scope=scope))
    client.put_object(Bucket=BUCKET, Key="upload/zarr.json", Body=b"{}")
    client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "upload/zarr.json"}]})
    assert "upload/zarr.json" not in s3.list_objects(BUCKET, "upload")
    denied = (403, "AccessDenied")
    assert error_code(lambda: client.put_object(Bucket=BUCKET, Key="uploaded", Body=b"")) == denied
    assert (
        error_code(
            lambda: client.delete_objects(
                Bucket=BUCKET, Delete={"Objects": [{"Key": "a/zarr.json"}]}
            )
        )
        == denied
    )
    assert error_code(lambda: client.create_bucket(Bucket="fresh")) == denied


def test_multipart_uploads_pass_through_a_write_grant(s3: S3StandIn) -> None:
    from boto3.s3.transfer import TransferConfig

    scope = [S3Scope(BUCKET, "multi", write=True)]
    client = s3_client(s3.endpoint, s3.issue_credentials(60, scope=scope))
    payload = bytes(range(256)) * (11 * 1024 * 1024 // 256)
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    s3.reset_requests()
    client.upload_fileobj(io.BytesIO(payload), BUCKET, "multi/part", Config=config)
    assert s3.count("PUT", path_contains="/multi/part") == 3  # three parts
    assert s3.count("POST", path_contains="/multi/part") == 2  # create and complete
    assert s3.get_object(BUCKET, "multi/part") == payload


def test_requests_are_counted_with_method_path_and_query(s3: S3StandIn) -> None:
    client = s3_client(s3.endpoint, s3.admin_credentials)
    s3.reset_requests()
    client.get_object(Bucket=BUCKET, Key="a/c/0/0")
    client.get_object(Bucket=BUCKET, Key="a/c/0/1")
    client.head_object(Bucket=BUCKET, Key="a/zarr.json")
    client.list_objects_v2(Bucket=BUCKET, Prefix="a/")
    httpx.get(f"{s3.endpoint}/{BUCKET}/a/zarr.json")  # rejected: counted too
    assert s3.count("GET", path_contains="/a/c/") == 2
    assert s3.count("HEAD") == 1
    assert s3.count(None) == 5
    assert s3.count("GET", path_contains="/a/zarr.json") == 1
    assert s3.requests[0] == S3Request("GET", f"/{BUCKET}/a/c/0/0", "")
    listing = [r for r in s3.requests if r.path == f"/{BUCKET}"]
    assert (
        len(listing) == 1 and "list-type=2" in listing[0].query and "prefix=a" in listing[0].query
    )
    s3.reset_requests()
    assert len(s3.requests) == 0


def test_planned_503_answers_slow_down_then_recovers(s3: S3StandIn) -> None:
    client = s3_client(s3.endpoint, s3.admin_credentials)
    s3.faults.fail_next(2, "503")
    s3.faults.retry_after = 2
    for _ in range(2):
        response = httpx.get(
            f"{s3.endpoint}/{BUCKET}/a/zarr.json",
            headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x/y"},
        )
        assert response.status_code == 503
        assert "<Code>SlowDown</Code>" in response.text
        assert response.headers["Retry-After"] == "2"
    assert client.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"


def test_drop_closes_the_connection_without_an_answer(s3: S3StandIn) -> None:
    s3.faults.fail_next(1, "drop", methods=["GET"])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{s3.endpoint}/{BUCKET}/a/zarr.json")
    client = s3_client(s3.endpoint, s3.admin_credentials)
    assert client.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"


def test_slow_answers_arrive_intact(s3: S3StandIn) -> None:
    s3.faults.slow_seconds = 0.05
    s3.faults.fail_next(1, "slow")
    client = s3_client(s3.endpoint, s3.admin_credentials)
    assert client.get_object(Bucket=BUCKET, Key="a/c/0/1")["Body"].read() == b"a/c/0/1"
    assert s3.faults.injected[-1].kind == "slow"


def test_random_faults_hit_only_the_chosen_methods(s3: S3StandIn) -> None:
    s3.faults.rate = 1.0
    s3.faults.methods = ["PUT"]
    client = s3_client(s3.endpoint, s3.admin_credentials)
    assert client.get_object(Bucket=BUCKET, Key="a/zarr.json")["Body"].read() == b"a/zarr.json"
    assert error_code(lambda: client.put_object(Bucket=BUCKET, Key="a/x", Body=b"")) == (
        503,
        "SlowDown",
    )


def test_large_objects_pass_through_unchanged(s3: S3StandIn) -> None:
    payload = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)
    client = s3_client(s3.endpoint, s3.admin_credentials)
    client.put_object(Bucket=BUCKET, Key="big/blob", Body=payload)
    assert client.get_object(Bucket=BUCKET, Key="big/blob")["Body"].read() == payload
    ranged = client.get_object(Bucket=BUCKET, Key="big/blob", Range="bytes=1000-1999")
    assert ranged["Body"].read() == payload[1000:2000]


def test_stand_ins_share_data_but_not_credentials(s3: S3StandIn) -> None:
    with S3StandIn() as other:
        other.create_bucket(BUCKET)  # already there: moto's data is process-wide
        assert other.get_object(BUCKET, "a/zarr.json") == b"a/zarr.json"
        foreign = s3_client(other.endpoint, s3.issue_credentials(60))
        assert error_code(lambda: foreign.get_object(Bucket=BUCKET, Key="a/zarr.json")) == (
            403,
            "InvalidAccessKeyId",
        )
    # Another stand-in stopping leaves the data of the running one alone.
    assert s3.get_object(BUCKET, "a/zarr.json") == b"a/zarr.json"


LAST_ONE_CLEANS_UP = """
from napari_lablink.testing import S3StandIn
with S3StandIn() as first:
    first.create_bucket("kept-data")
    first.put_object("kept-data", "k", b"v")
    with S3StandIn() as second:
        assert second.get_object("kept-data", "k") == b"v"
    assert first.get_object("kept-data", "k") == b"v"
with S3StandIn() as third:
    print(sorted(b["Name"] for b in third.admin_client().list_buckets()["Buckets"]))
"""


def test_the_last_stand_in_to_stop_deletes_every_bucket() -> None:
    # In a fresh process: here, the module's stand-in keeps running.
    done = subprocess.run(
        [sys.executable, "-c", LAST_ONE_CLEANS_UP], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_stop_refuses_new_and_cuts_kept_alive_connections() -> None:
    stand_in = S3StandIn().start()
    stand_in.create_bucket("bbb")
    stand_in.put_object("bbb", "k", b"v")
    signer = s3_client(stand_in.endpoint, stand_in.admin_credentials)
    url = signer.generate_presigned_url("get_object", Params={"Bucket": "bbb", "Key": "k"})
    host, port = stand_in.endpoint.removeprefix("http://").split(":")
    with httpx.Client() as client:
        assert client.get(url).content == b"v"
        stand_in.stop()
        with pytest.raises(httpx.TransportError):
            client.get(url)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass


def test_addresses_need_a_running_stand_in() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = S3StandIn().endpoint


def test_only_loopback_addresses_are_accepted() -> None:
    with pytest.raises(ValueError, match="loopback"):
        S3StandIn(host="0.0.0.0")
