"""Work sent to dask.distributed workers from an Arkitekt login outlives any one access token.

The workers are real processes: they cannot log in, so they get the grant's client credentials
and fetch and renew their own access tokens at the deployment's token endpoint. The stand-ins
share a hand-moved clock, so every token expires at once without waiting.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from napari_lablink import open_image
from napari_lablink.client.arkitekt import ApprovalPolicy, deployments
from napari_lablink.client.arkitekt.workers import WorkerTokens
from napari_lablink.client.connection import shared_connection
from napari_lablink.client.mikro.server import MikroServer
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn

from .conftest import Clock

RNG = np.random.default_rng(16)
IMAGE = RNG.integers(0, 60000, size=(2, 1, 4, 64, 96), dtype=np.uint16)


@pytest.fixture
def logged_in(deployment: ArkitektStandIn) -> Iterator[None]:
    """Logins started by connections are approved in lok's frontend, as a user would."""

    def prompt(p: object) -> None:
        httpx.post(deployment.approve_route.format(code=p.code), json={"action": "approve"})  # type: ignore[attr-defined]

    before = deployments.policy
    deployments.policy = ApprovalPolicy(prompt=prompt)
    yield
    deployments.policy = before


def test_workers_renew_their_access_tokens_after_they_expire(
    deployment: ArkitektStandIn, mikro: MikroStandIn, clock: Clock, logged_in: None, dask_client
) -> None:
    image_id = mikro.add_image(IMAGE, "distributed", chunks=(1, 1, 1, 32, 32))
    level = open_image(f"mikro+{deployment.url}/image/{image_id}").levels[0]
    # The workers read with the S3 grant the array brought: no token needed yet.
    np.testing.assert_array_equal(level.max(axis=2).compute(), IMAGE.max(axis=2))
    issued = deployment.lok.issued_tokens
    mikro.expire_credentials()
    np.testing.assert_array_equal(level[0].sum(axis=1).compute(), IMAGE[0].sum(axis=1))
    # Renewing the grant took a token: each worker that read asked lok for its own.
    assert 1 <= deployment.lok.issued_tokens - issued <= 2
    clock.now += 2 * deployment.token_lifetime  # every token issued so far has expired
    mikro.expire_credentials()
    issued = deployment.lok.issued_tokens
    np.testing.assert_array_equal(level[1].mean(axis=(2, 3)).compute(), IMAGE[1].mean(axis=(2, 3)))
    # mikro refused the workers' tokens; each worker renewed its own and read on.
    assert 1 <= deployment.lok.issued_tokens - issued <= 2


def test_the_client_secret_travels_only_inside_pickles(
    deployment: ArkitektStandIn, mikro: MikroStandIn, logged_in: None, dask_client
) -> None:
    image_id = mikro.add_image(IMAGE, "secret")
    uri = f"mikro+{deployment.url}/image/{image_id}"
    level = open_image(uri).levels[0]
    server = shared_connection(uri)
    assert isinstance(server, MikroServer)
    (registered,) = deployment.clients()
    secret = registered.client_secret
    assert secret.encode() in pickle.dumps(level)  # the workers need it ...
    tokens = WorkerTokens.of(server._arkitekt.configuration)  # type: ignore[union-attr]
    assert tokens.client_secret == secret
    level.sum().compute()
    # ... but no description of it or the work, and no log of the cluster, shows it.
    texts = [repr(tokens), repr(level.dask), repr(dask_client.get_worker_logs())]
    texts.append(repr(dask_client.get_scheduler_logs()))
    assert not any(secret in text for text in texts)
