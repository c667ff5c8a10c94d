"""Fixtures for the stand-in servers' own tests: real servers on loopback, talked to with
httpx, boto3, zarr and xarray (never with the plugin's client; see helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from napari_lablink.testing import MikroStandIn, S3StandIn


@pytest.fixture(scope="module")
def s3() -> Iterator[S3StandIn]:
    with S3StandIn() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def mikro(s3: S3StandIn) -> Iterator[MikroStandIn]:
    with MikroStandIn(s3=s3) as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def _well_behaved(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults set by one test never leak into the next."""
    yield
    for name in ("s3", "mikro"):
        if name in request.fixturenames:
            request.getfixturevalue(name).faults.clear()
