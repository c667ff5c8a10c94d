"""A stand-in deployment (lok in front of both mikro generations and S3) for the client's tests.

The mikro stand-in checks bearer JWTs against lok's key, generation 2 as mikro-server-next does
and generation 1 with the single key the old server holds. All parties share one hand-moved clock
so tokens can expire without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from napari_lablink.client.arkitekt import ApprovalPrompt
from napari_lablink.testing import MikroStandIn, S3StandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn, JWTVerifier, SigningKey
from napari_lablink.testing.arkitekt.tokens import GEN1_REQUIRED_CLAIMS


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3StandIn]:
    with S3StandIn() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def mikro(s3: S3StandIn, key: SigningKey, clock: Clock) -> Iterator[MikroStandIn]:
    gen2 = JWTVerifier({key.kid: key.public_key}, clock=clock)
    gen1 = JWTVerifier(keyless=key.public_key, required_claims=GEN1_REQUIRED_CLAIMS, clock=clock)

    def check(generation: str, header: str | None) -> str | None:
        return (gen2 if generation == "gen2" else gen1).problem(header)

    with MikroStandIn(s3=s3, token_check=check) as stand_in:
        yield stand_in


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, mikro: MikroStandIn, key: SigningKey, clock: Clock
) -> Iterator[ArkitektStandIn]:
    """G2b unless the test is parametrized with ``shape``."""
    shape = getattr(request, "param", "G2b")
    mikro_url = mikro.base_url + ("/mikro" if shape != "G1" else "")
    with ArkitektStandIn(
        shape=shape,
        mikro_url=mikro_url,
        s3_url=mikro.s3_endpoint,
        signing_key=key,
        clock=clock,
        token_lifetime=600,
    ) as stand_in:
        yield stand_in


def approver(
    deployment: ArkitektStandIn, action: str = "approve", **extra: object
) -> tuple[Callable[[ApprovalPrompt], None], list[ApprovalPrompt]]:
    """A prompt callback that answers in lok's frontend as the user would, over HTTP."""
    seen: list[ApprovalPrompt] = []

    def prompt(p: ApprovalPrompt) -> None:
        seen.append(p)
        url = deployment.approve_route.format(code=p.code)
        httpx.post(url, json={"action": action, **extra}, timeout=10)

    return prompt, seen
