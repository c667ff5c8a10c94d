"""The stand-in lok/fakts server, driven over HTTP with httpx (never with the plugin's client)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from napari_lablink.testing.arkitekt import SHAPES, ArkitektStandIn, JWTVerifier, TokenRejected

MIKRO_REQUIREMENTS = [
    {"key": "mikro", "service": "live.arkitekt.mikro", "optional": False, "description": None},
    {"key": "s3", "service": "live.arkitekt.s3", "optional": False, "description": None},
]


class Clock:
    """A clock tests move by hand, shared by lok and the verifier."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=SHAPES)
def lok(request: pytest.FixtureRequest, clock: Clock) -> Iterator[ArkitektStandIn]:
    with ArkitektStandIn(
        shape=request.param,
        mikro_url="http://127.0.0.1:9/mikro",
        s3_url="http://127.0.0.1:10",
        clock=clock,
    ) as stand_in:
        yield stand_in


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def manifest(shape: str, **changes: Any) -> dict[str, Any]:
    requirements: Any = MIKRO_REQUIREMENTS
    if shape == "G2a":
        requirements = {r["key"]: {k: v for k, v in r.items() if k != "key"} for r in requirements}
    return {
        "identifier": "napari-lablink",
        "version": "0.1.0",
        "scopes": ["openid"],
        "requirements": requirements,
        **changes,
    }


def start(http: httpx.Client, lok: ArkitektStandIn, **changes: Any) -> str:
    body = {
        "manifest": manifest(lok.shape, **changes),
        "expiration_time_seconds": 300,
        "redirect_uris": [],
        "requested_client_kind": "development",
        "requested_client_role": "interface",
        "request_public": False,
    }
    answer = http.post(lok.base_url + "start/", json=body).json()
    assert answer["status"] == "granted", answer
    return str(answer["code"])


def challenge(http: httpx.Client, lok: ArkitektStandIn, code: str) -> dict[str, Any]:
    response = http.post(lok.base_url + "challenge/", json={"code": code})
    assert response.status_code == 200
    return dict(response.json())


def register(http: httpx.Client, lok: ArkitektStandIn) -> dict[str, Any]:
    code = start(http, lok)
    assert lok.approve(code) == {"status": "granted"}
    token = challenge(http, lok, code)["token"]
    answer = http.post(lok.base_url + "claim/", json={"token": token, "secure": False}).json()
    assert answer["status"] == "granted"
    return dict(answer["config"])


def credentials(shape: str, config: dict[str, Any]) -> tuple[str, str, str]:
    group = config["auth"] if shape == "G2b" else config["lok"]
    return group["token_url"], group["client_id"], group["client_secret"]


def test_discovery_document_per_shape(lok: ArkitektStandIn, http: httpx.Client) -> None:
    document = http.get(lok.url + "/.well-known/fakts").json()
    if lok.shape == "G2b":
        assert document == {
            "name": "lablink-stand-in",
            "version": "0.1.0",
            "protocol_version": "1",
            "description": "A stand-in Arkitekt deployment",
            "claim": f"{lok.url}/lok/f/claim/",
            "base_url": f"{lok.url}/lok/f/",
            "frontend_url": f"{lok.url}/",
        }
        assert http.get(lok.url + "/lok/.well-known/fakts").json() == document
    else:
        assert set(document) == {"name", "version", "description", "claim", "base_url"}
        assert document["version"] == "0.0.1"
        assert document["base_url"] == f"{lok.url}/f/"


def test_base_url_follows_the_forwarded_host(lok: ArkitektStandIn, http: httpx.Client) -> None:
    headers = {"X-Forwarded-Host": "lab.example.org"}
    document = http.get(lok.url + "/.well-known/fakts", headers=headers).json()
    assert document["base_url"].startswith("http://lab.example.org/")


def test_pending_then_granted_then_claimed(lok: ArkitektStandIn, http: httpx.Client) -> None:
    code = start(http, lok)
    assert len(code) == (6 if lok.shape == "G1" else 8)
    assert challenge(http, lok, code) == {
        "status": "waiting" if lok.shape == "G1" else "pending",
        "message": "User  has not verfied the challenge",
    }
    lok.approve(code)
    first, again = challenge(http, lok, code), challenge(http, lok, code)
    assert first["status"] == "granted" and first == again
    claimed = http.post(lok.base_url + "claim/", json={"token": first["token"], "secure": False})
    config = claimed.json()["config"]
    if lok.shape == "G2b":
        assert config["statuses"] == {"mikro": "granted", "s3": "granted"}
        assert config["instances"]["mikro"]["aliases"][0] == {
            "id": "1",
            "ssl": False,
            "host": "127.0.0.1",
            "port": 9,
            "path": "mikro",
            "challenge": "ht",
        }
        assert config["auth"]["client_token"] == first["token"]
        assert config["auth"]["token_url"] == f"{lok.url}/lok/o/token/"
    else:
        assert config["mikro"]["endpoint_url"] == "http://127.0.0.1:9/mikro/graphql"
        s3_group = "minio" if lok.shape == "G1" else "datalayer"
        assert config[s3_group] == {"endpoint_url": "http://127.0.0.1:10"}
        assert config["lok"]["token_url"] == f"{lok.url}/o/token/"
        assert config["lok"]["grant_type"] == "client-credentials"


def test_denied_codes_answer_once_then_vanish(lok: ArkitektStandIn, http: httpx.Client) -> None:
    code = start(http, lok)
    assert lok.deny(code) == {"status": "denied"}
    assert challenge(http, lok, code) == {
        "status": "denied",
        "message": "The user has denied the request",
    }
    assert challenge(http, lok, code) == {"status": "error", "error": "Challenge does not exist"}


def test_codes_expire_even_when_granted(
    lok: ArkitektStandIn, http: httpx.Client, clock: Clock
) -> None:
    code = start(http, lok)
    lok.approve(code)
    clock.now += 301
    assert challenge(http, lok, code) == {
        "status": "expired",
        "message": "The user has not given an answer in enough time",
    }
    assert challenge(http, lok, code)["status"] == "error"


def test_approval_fails_without_an_instance_for_a_requirement(http: httpx.Client) -> None:
    with ArkitektStandIn(mikro_url="http://127.0.0.1:9/mikro") as lok:
        code = start(http, lok)
        assert lok.approve(code)["status"] == "error"
        assert challenge(http, lok, code)["status"] == "pending"


def test_a_declined_requirement_is_denied_in_the_statuses(http: httpx.Client) -> None:
    with ArkitektStandIn(mikro_url="http://127.0.0.1:9/mikro", s3_url="http://127.0.0.1:10") as lok:
        code = start(http, lok)
        lok.approve(code, declined={"s3"})
        token = challenge(http, lok, code)["token"]
        config = http.post(lok.base_url + "claim/", json={"token": token}).json()["config"]
        assert config["statuses"] == {"mikro": "granted", "s3": "denied"}
        assert set(config["instances"]) == {"mikro"}


def test_malformed_start_and_unknown_scope(http: httpx.Client) -> None:
    with ArkitektStandIn(mikro_url="http://127.0.0.1:9/mikro", s3_url="http://127.0.0.1:10") as lok:
        answer = http.post(lok.base_url + "start/", json={"manifest": {"version": "1"}}).json()
        assert answer["status"] == "error"
        assert answer["error"].startswith("Malformed request: ")
        code = start(http, lok, scopes=["read"])
        assert lok.approve(code) == {"status": "error", "error": "Unknown scopes: read"}


def test_the_test_route_and_approval_page(lok: ArkitektStandIn, http: httpx.Client) -> None:
    code = start(http, lok)
    page = http.get(lok.approval_url(code))
    assert page.status_code == 200 and code in page.text
    response = http.post(lok.approve_route.format(code=code), data={"action": "approve"})
    assert response.json() == {"status": "granted"}
    assert (
        http.post(lok.approve_route.format(code="nope"), json={"action": "deny"}).status_code == 404
    )


def test_auto_approve_grants_at_once(lok: ArkitektStandIn, http: httpx.Client) -> None:
    lok.auto_approve = True
    assert challenge(http, lok, start(http, lok))["status"] == "granted"


def test_client_credentials_give_an_rs256_jwt(
    lok: ArkitektStandIn, http: httpx.Client, clock: Clock
) -> None:
    token_url, client_id, secret = credentials(lok.shape, register(http, lok))
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = http.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": "openid read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    answer = response.json()
    assert response.status_code == 200
    assert answer["token_type"] == "Bearer" and answer["scope"] == "openid"
    assert answer["expires_in"] == (864000 if lok.shape == "G2b" else 86400)
    access = answer["access_token"]
    header = jwt.get_unverified_header(access)
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["exp"] == int(clock.now) + answer["expires_in"]
    if lok.shape == "G2b":
        assert header == {"typ": "at+jwt", "alg": "RS256", "kid": "lok-key-1"}
        assert set(claims) == {
            "iss",
            "exp",
            "iat",
            "jti",
            "client_id",
            "sub",
            "aud",
            "scope",
            "roles",
            "preferred_username",
            "nickname",
            "active_org",
            "client_app",
            "client_release",
            "client_device",
            "client_role",
        }
        assert claims["client_app"] == "napari-lablink" and claims["aud"] == ["rekuest"]
        jwks = http.get(lok.jwks_url).json()
        assert jwks["keys"][0]["kid"] == "lok-key-1" and jwks["keys"][0]["use"] == "sig"
        verifier = JWTVerifier.from_jwks(jwks, clock=clock)
    else:
        assert claims["iss"] == "herre"
        assert ("kid" in header, "iat" in claims) == ((lok.shape == "G2a",) * 2)
        verifier = lok.verifier(generation=1, clock=clock)
    assert verifier.verify(f"Bearer {access}")["client_id"] == client_id
    # In the body instead of Basic; no scope: none in the answer.
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    answer = http.post(token_url, data=body).json()
    assert "scope" not in answer
    assert jwt.decode(answer["access_token"], options={"verify_signature": False})["scope"] == (
        "openid email profile"
    )


def test_wrong_secret_unknown_client_and_revocation(
    lok: ArkitektStandIn, http: httpx.Client
) -> None:
    config = register(http, lok)
    token_url, client_id, secret = credentials(lok.shape, config)
    form = {"grant_type": "client_credentials", "client_id": client_id}
    wrong = http.post(token_url, data={**form, "client_secret": "nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    assert lok.revoke_client(client_id) == 1
    gone = http.post(token_url, data={**form, "client_secret": secret})
    assert (gone.status_code, gone.json()) == (400, {"error": "invalid_client"})
    client_token = config["auth"]["client_token"] if lok.shape == "G2b" else None
    if client_token:
        answer = http.post(lok.base_url + "claim/", json={"token": client_token}).json()
        assert answer == {"status": "error", "message": "No Client found for this token"}


def test_reapproval_rotates_the_client_token(http: httpx.Client) -> None:
    with ArkitektStandIn(mikro_url="http://127.0.0.1:9/mikro", s3_url="http://127.0.0.1:10") as lok:
        first = register(http, lok)
        second = register(http, lok)
        assert first["auth"]["client_id"] == second["auth"]["client_id"]
        assert first["auth"]["client_token"] != second["auth"]["client_token"]
        old = http.post(lok.base_url + "claim/", json={"token": first["auth"]["client_token"]})
        assert old.json()["message"] == "No Client found for this token"


def test_redeem_tokens(http: httpx.Client, clock: Clock) -> None:
    with ArkitektStandIn(
        mikro_url="http://127.0.0.1:9/mikro", s3_url="http://127.0.0.1:10", clock=clock
    ) as lok:
        redeem = lok.add_redeem_token(lifetime=60)
        body = {"token": redeem, "manifest": manifest("G2b")}
        first = http.post(lok.base_url + "redeem/", json=body).json()
        assert first["status"] == "granted"
        assert http.post(lok.base_url + "redeem/", json=body).json() == first
        changed = {"token": redeem, "manifest": manifest("G2b", version="9")}
        assert http.post(lok.base_url + "redeem/", json=changed).json()["status"] == "error"
        bad = http.post(lok.base_url + "redeem/", json={**body, "token": "x"}).json()
        assert bad == {"status": "error", "message": "Invalid redeem token"}
        clock.now += 61
        late = http.post(lok.base_url + "redeem/", json=body).json()
        assert late == {"status": "error", "message": "Redeem token expired"}


def test_verifier_rejections(clock: Clock) -> None:
    with ArkitektStandIn(clock=clock) as lok, ArkitektStandIn(clock=clock) as other:
        verifier = lok.verifier(clock=clock)
        claims = {
            "sub": "1",
            "iss": "http://lok",
            "exp": int(clock.now) + 10,
            "iat": int(clock.now),
            "client_id": "c",
            "preferred_username": "demo",
            "roles": [],
            "scope": "openid",
        }
        good = lok.signing_key.sign(claims)
        assert verifier.problem(f"Bearer {good}") is None
        cases = {
            None: "No Authorization header",
            "Bearer": "Error decoding token header",
            "Bearer not-a-jwt": "Error decoding token header",
            f"Bearer {lok.signing_key.sign(claims, with_kid=False)}": "Error decoding token header",
            f"Bearer {good[:-4]}AAAA": "Error decoding token",
        }
        missing = {k: v for k, v in claims.items() if k != "roles"}
        cases[f"Bearer {lok.signing_key.sign(missing)}"] = "Error decoding token"
        # Same kid, another key: the signature does not match.
        cases[f"Bearer {other.signing_key.sign(claims)}"] = "Error decoding token"
        for header, message in cases.items():
            assert verifier.problem(header) == message, header
        clock.now += 11
        with pytest.raises(TokenRejected, match=r"^Error decoding token$"):
            verifier.verify(f"Bearer {good}")
