"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from distributed import Client

_ENV = ("LABLINK_TOKEN", "LABLINK_MIBI_EMAIL", "LABLINK_MIBI_PASSWORD", "LABLINK_S3_ENDPOINT")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection imported pymmcore_plus (root logger now DEBUG) before any fixture runs."""
    logging.getLogger().setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _quiet_root_logger():
    """Importing pymmcore_plus sets the root logger to DEBUG for the whole process; every later
    test would then capture (and format) every library's debug records, and botocore's are
    malformed. Each test starts at WARNING; caplog.set_level still works inside a test."""
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(logging.WARNING)  # also for session fixtures set up before the next test


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads the developer's own servers.toml or LABLINK_* environment."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path_factory.mktemp("config") / "servers.toml"
    monkeypatch.setenv("LABLINK_CONFIG", str(config))
    monkeypatch.setenv("LABLINK_NO_BROWSER", "1")  # an approval never opens a real browser
    monkeypatch.delenv("LABLINK_FAKTS_TOKEN", raising=False)
    yield config
    from napari_lablink.client.arkitekt import deployments

    deployments.reset()  # logins of one test's stand-ins are not another test's


@pytest.fixture(scope="session")
def mikro():
    """One stand-in mikro server (both generations, S3 behind moto) for the whole session."""
    from napari_lablink.testing import MikroStandIn

    with MikroStandIn() as server:
        yield server


@pytest.fixture
def mikro_clean(mikro):
    """The session's stand-in with faults off and the request logs empty."""
    mikro.faults.clear()
    mikro.s3.faults.clear()
    mikro.s3.reset_requests()
    mikro.reset_operations()
    yield mikro
    mikro.faults.clear()
    mikro.s3.faults.clear()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    """A real dask.distributed cluster of two worker processes (one per module: workers keep
    per-process sessions, so each module starts with fresh ones)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=False,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
