"""The mikro stand-in behind a stand-in lok: JWTs checked as the real servers do, health checks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from napari_lablink.testing import MikroStandIn, S3StandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn, JWTVerifier, SigningKey

from .test_lok_stand_in import Clock, credentials, register

QUERY = {"query": "query { images { id } }"}


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def mikro_jwt(s3: S3StandIn, key: SigningKey, clock: Clock) -> Iterator[MikroStandIn]:
    verifier = JWTVerifier({key.kid: key.public_key}, clock=clock)
    with MikroStandIn(s3=s3, token_check=lambda gen, header: verifier.problem(header)) as mikro:
        yield mikro


@pytest.fixture(scope="module")
def lok(mikro_jwt: MikroStandIn, key: SigningKey, clock: Clock) -> Iterator[ArkitektStandIn]:
    with ArkitektStandIn(
        mikro_url=f"{mikro_jwt.base_url}/mikro",
        s3_url=mikro_jwt.s3_endpoint,
        signing_key=key,
        clock=clock,
        token_lifetime=60,
    ) as stand_in:
        yield stand_in


def test_only_valid_jwts_reach_generation_2(
    mikro_jwt: MikroStandIn, lok: ArkitektStandIn, clock: Clock
) -> None:
    with httpx.Client(timeout=10) as http:
        token_url, client_id, secret = credentials("G2b", register(http, lok))
        form = {"grant_type": "client_credentials", "client_id": client_id}
        access = http.post(token_url, data={**form, "client_secret": secret}).json()
        bearer = {"Authorization": f"Bearer {access['access_token']}"}
        url = mikro_jwt.gen2_graphql_url
        ok = http.post(url, json=QUERY, headers=bearer)
        assert ok.status_code == 200 and ok.json()["data"] == {"images": []}
        static = http.post(url, json=QUERY, headers={"Authorization": f"Bearer {mikro_jwt.token}"})
        assert static.status_code == 200
        missing = http.post(url, json=QUERY)
        # The real generation-2 server refuses inside an HTTP 200 GraphQL answer.
        assert (missing.status_code, missing.json()) == (
            200,
            {"data": None, "errors": [{"message": "No Authorization header"}]},
        )
        clock.now += 61
        expired = http.post(url, json=QUERY, headers=bearer)
        assert expired.status_code == 200
        assert expired.json()["errors"][0]["message"] == "Error decoding token"


def test_health_checks_the_aliases_name(mikro_jwt: MikroStandIn) -> None:
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{mikro_jwt.base_url}/mikro/ht").status_code == 200
        assert http.get(f"{mikro_jwt.base_url}/ht").status_code == 200
        assert http.get(f"{mikro_jwt.base_url}/other/ht").status_code == 404
        assert http.get(f"{mikro_jwt.s3_endpoint}/minio/health/live").status_code == 200
