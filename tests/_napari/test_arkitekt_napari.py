"""The reader and writer on an Arkitekt deployment's URIs, in a real viewer: with nothing set but
the login, images open and uploads round-trip; an approval still pending never blocks napari."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from napari_lablink._napari.approval import NAPARI_APPROVAL
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink.client.arkitekt import ApprovalPolicy, deployments
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn, JWTVerifier, SigningKey

pytestmark = pytest.mark.viewer


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[MikroStandIn, ArkitektStandIn, dict[str, str]]]:
    key = SigningKey()
    verifier = JWTVerifier({key.kid: key.public_key})
    with (
        MikroStandIn(token_check=lambda generation, header: verifier.problem(header)) as mikro,
        ArkitektStandIn(
            mikro_url=f"{mikro.base_url}/mikro", s3_url=mikro.s3_endpoint, signing_key=key
        ) as lok,
    ):
        yield mikro, lok, mikro.seed_demo()


def test_reader_and_writer_with_an_auto_approving_deployment(make_napari_viewer, lab) -> None:
    mikro, lok, ids = lab
    lok.auto_approve = True
    assert deployments.policy is NAPARI_APPROVAL  # the glue's policy is in force
    viewer = make_napari_viewer()
    viewer.open(f"mikro+{lok.url}/image/{ids['cells_gen2']}", plugin="napari-lablink")
    assert wait_for_opens(120)  # opening runs in the background
    layers = list(viewer.layers)
    assert [layer.name for layer in layers] == ["DAPI", "Beads", "Actin"]
    expected = mikro.read_image(ids["cells_gen2"])
    np.testing.assert_array_equal(np.asarray(layers[0].data[5]), expected[0, 0, 5])
    (client,) = lok.clients()
    metadata = json.dumps([layer.metadata for layer in layers], default=str)
    assert client.client_secret not in metadata and client.client_token not in metadata
    assert "?s3=" not in metadata

    written = viewer.layers.save(f"mikro+{lok.url}/image", plugin="napari-lablink")
    (uri,) = written
    assert uri.startswith(f"mikro+{lok.url}/image/") and "?" not in uri
    before = len(viewer.layers)
    viewer.open(uri, plugin="napari-lablink")
    assert wait_for_opens(120)
    back = list(viewer.layers)[before:]
    np.testing.assert_array_equal(np.asarray(back[0].data[5]), expected[0, 0, 5])


def test_a_pending_approval_is_a_notification_not_a_frozen_viewer(
    make_napari_viewer, lab, notifications
) -> None:
    _, lok, ids = lab
    lok.auto_approve = False
    deployments.policy = ApprovalPolicy(prompt=NAPARI_APPROVAL.prompt, wait=0.5)
    try:
        viewer = make_napari_viewer()
        uri = f"mikro+{lok.url}/image/{ids['cells_gen2']}"
        assert viewer.open(uri, plugin="napari-lablink") == []
        assert wait_for_opens(60)  # the background open gives up after the policy's wait
        (code,) = lok.pending_codes()
        (message,) = [n for n in notifications if "waiting for approval" in n]
        assert f"{lok.url}/configure/{code}" in message and code in message
        assert "Add Arkitekt deployment" in message and "napari-lablink login HOST" in message
        lok.approve(code)
        layers: list = []
        for _ in range(50):  # approved in the browser: the next open works
            viewer.open(uri, plugin="napari-lablink")
            assert wait_for_opens(60)
            layers = list(viewer.layers)
            if layers:
                break
        assert [layer.name for layer in layers] == ["DAPI", "Beads", "Actin"]
    finally:
        deployments.policy = NAPARI_APPROVAL
