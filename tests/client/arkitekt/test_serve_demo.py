"""``napari-lablink serve arkitekt --demo --auto-approve`` end to end: log in with nothing but the
printed deployment URL, then read the demo images' records with the tokens lok issues."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from napari_lablink.client.arkitekt import ApprovalPrompt, login


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Any]]:
    command = [sys.executable, "-m", "napari_lablink.cli", "serve", "arkitekt", "--demo"]
    process = subprocess.Popen(
        [*command, "--auto-approve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready, "serve arkitekt printed nothing within 120 s"
        yield json.loads(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.communicate()


def test_the_json_line(served: dict[str, Any]) -> None:
    assert served["server"] == "arkitekt" and served["auto_approve"] is True
    assert served["deployment"] == served["deployments"]["gen2"]["url"]
    assert served["approve"] == served["deployment"] + "/_test/device/{code}"
    uris = served["uris"]
    assert set(uris) == {"cells_gen1", "cells_gen2", "tissue_pyramid", "nuclei_labels_gen1"}
    for name, uri in uris.items():
        gen1 = name.endswith("_gen1")
        home = served["deployments"]["gen1" if gen1 else "gen2"]["url"]
        assert uri.startswith(f"mikro+{home}/{'representation' if gen1 else 'image'}/")
        assert "?" not in uri and "token" not in uri


@pytest.mark.parametrize("generation", ["gen2", "gen1"])
def test_login_and_read_the_demo_images(served: dict[str, Any], generation: str) -> None:
    prompts: list[ApprovalPrompt] = []
    deployment = served["deployments"][generation]["url"]
    with login(deployment, prompt=prompts.append, environ={}, poll_interval=0.05) as session:
        assert len(prompts) == 1  # shown, then approved at once
        url = session.mikro_graphql_url
        assert url is not None and session.s3_endpoint is not None
        if generation == "gen2":
            query = "{ images { id name } }"
        else:
            query = "{ representations { id name } }"
        answer = httpx.post(url, json={"query": query}, auth=session.auth_for(url), timeout=30)
        records = answer.json()["data"]["images" if generation == "gen2" else "representations"]
        ids = {r["id"] for r in records}
        wanted = [
            u for n, u in served["uris"].items() if n.endswith("_gen1") == (generation == "gen1")
        ]
        assert wanted and all(u.rsplit("/", 1)[1] in ids for u in wanted)
        anonymous = httpx.post(url, json={"query": query}, timeout=30).json()
        if generation == "gen2":
            assert anonymous["errors"][0]["message"] == "No Authorization header"
        else:  # generation 1 serves reads anonymously, as the real server does
            assert anonymous["data"]["representations"]


def test_open_image_with_nothing_but_the_printed_uri(served: dict[str, Any]) -> None:
    """The done-when of the login work: no token, no S3 setting, one call."""
    import numpy as np

    from napari_lablink import open_image

    for name in ("cells_gen2", "cells_gen1"):
        image = open_image(served["uris"][name])
        assert image.shape == (3, 1, 16, 256, 256)
        assert np.asarray(image.data[0, 0, 8]).any()
