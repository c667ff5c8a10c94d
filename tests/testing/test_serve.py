"""serve_mikro and serve_tracker: one JSON line saying where everything is, clean stop."""

from __future__ import annotations

import io
import json
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from napari_lablink.testing.serve import serve_tracker

SERVE = (
    "from napari_lablink.testing.serve import serve_mikro; "
    "raise SystemExit(serve_mikro(demo={demo}))"
)


def start(demo: bool) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(demo=demo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], 120)
    if not ready:
        process.kill()
        pytest.fail("serve_mikro printed nothing within 120 s")
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        pytest.fail(f"serve_mikro ended early: {process.stderr.read()}")
    return process, json.loads(line)


def stop(process: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def demo_server() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    process, info = start(demo=True)
    yield process, info
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_prints_endpoints_token_and_demo_uris(
    demo_server: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    _, info = demo_server
    assert set(info) == {"graphql", "s3", "token", "uris"}
    base = info["graphql"]["gen1"].removesuffix("/graphql")
    assert base.startswith("http://127.0.0.1:")
    assert info["graphql"]["gen2"] == f"{base}/mikro/graphql"
    assert info["s3"].startswith("http://127.0.0.1:")
    authority = base.removeprefix("http://")
    uris = info["uris"]
    assert set(uris) == {"cells_gen1", "cells_gen2", "tissue_pyramid", "nuclei_labels_gen1"}
    for name, uri in uris.items():
        kind = "representation" if name.endswith("_gen1") else "mikro/image"
        assert uri.startswith(f"mikro+http://{authority}/{kind}/")
        assert uri.endswith(f"?s3={info['s3']}")


def test_the_printed_uri_opens_with_the_printed_token(
    demo_server: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    _, info = demo_server
    image_id = info["uris"]["tissue_pyramid"].split("?")[0].rsplit("/", 1)[1]
    query = "query($id: ID!) { image(id: $id) { name store { id shape } } }"
    headers = {"Authorization": f"Bearer {info['token']}"}
    answer = httpx.post(
        info["graphql"]["gen2"],
        json={"query": query, "variables": {"id": image_id}},
        headers=headers,
    ).json()["data"]["image"]
    assert answer["name"] == "Tissue pyramid"
    assert answer["store"]["shape"] == [2, 1, 1, 2048, 2048]
    grant_query = (
        "mutation($input: RequestZarrAccessInput!) { requestZarrAccess(input: $input) "
        "{ accessKey secretKey sessionToken bucket key } }"
    )
    variables = {"input": {"storeId": answer["store"]["id"]}}
    grant = httpx.post(
        info["graphql"]["gen2"],
        json={"query": grant_query, "variables": variables},
        headers=headers,
    ).json()["data"]["requestZarrAccess"]
    s3 = boto3.client(
        "s3",
        endpoint_url=info["s3"],
        region_name="us-east-1",
        aws_access_key_id=grant["accessKey"],
        aws_secret_access_key=grant["secretKey"],
        aws_session_token=grant["sessionToken"],
        config=Config(s3={"addressing_style": "path"}),
    )
    metadata = json.loads(
        s3.get_object(Bucket=grant["bucket"], Key=f"{grant['key']}/zarr.json")["Body"].read()
    )
    assert metadata["shape"] == [2, 1, 1, 2048, 2048]


def test_sigterm_stops_cleanly_and_frees_the_ports(
    demo_server: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    process, info = demo_server
    returncode, out, err = stop(process, signal.SIGTERM)
    assert returncode == 0, err
    assert out == ""  # exactly one line was printed, and it was read at start
    for url in (info["graphql"]["gen2"], info["s3"]):
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, json={})


def test_sigint_stops_a_server_without_demo_content() -> None:
    process, info = start(demo=False)
    try:
        assert info["uris"] == {}
        headers = {"Authorization": f"Bearer {info['token']}"}
        answer = httpx.post(
            info["graphql"]["gen2"], json={"query": "{ images { id } }"}, headers=headers
        )
        assert answer.json() == {"data": {"images": []}}
    finally:
        returncode, _, err = stop(process, signal.SIGINT)
    assert returncode == 0, err
    assert "Traceback" not in err


# -- the tracker --------------------------------------------------------------------------


def test_serve_tracker_prints_one_json_line_and_serves_until_stopped() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_tracker, kwargs={"demo": True, "size": 64, "out": out, "stop": stop}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not out.getvalue().endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.02)
        (line,) = out.getvalue().splitlines()
        info = json.loads(line)
        base = info["base_url"]
        assert base.startswith("http://127.0.0.1:")
        authority = base.removeprefix("http://")
        assert f"mibi+http://{authority}/images/1" in info["images"]
        assert f"mibi+http://{authority}/runs/{info['run_label']}/FOV1" in info["images"]
        login = httpx.post(
            f"{base}/api-token-auth/", json={"email": info["email"], "password": info["password"]}
        )
        assert login.status_code == 200
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/images/")


def test_serve_tracker_process_stops_cleanly_on_sigterm() -> None:
    code = "from napari_lablink.testing.serve import serve_tracker as s; raise SystemExit(s())"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert httpx.options(f"{info['base_url']}/").status_code == 401  # up, and asks for a token
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
