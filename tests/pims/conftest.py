"""Fixtures that run the real Cytomine PIMS server once per session, and connect to it.

A venv that cannot be built is a failure with the build's own message, never a skip: the real
server is what these tests are for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from napari_lablink.client.connection import connect
from napari_lablink.client.pims.server import PimsServer
from napari_lablink.testing.pims.images import TestImage, write_all
from napari_lablink.testing.pims.server import PimsSetupError, RealPims, ensure_pims_venv


@pytest.fixture(scope="session")
def pims_venv() -> Path:
    try:
        return ensure_pims_venv()
    except PimsSetupError as error:
        reason = str(error)
    pytest.fail(f"cannot build the PIMS venv: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def pims_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TestImage]:
    return write_all(tmp_path_factory.mktemp("pims-images"))


@pytest.fixture(scope="session")
def real_pims(pims_venv: Path, pims_images: dict[str, TestImage]) -> Iterator[RealPims]:
    server = RealPims([image.path for image in pims_images.values()], venv=pims_venv)
    try:
        server.start()
    except PimsSetupError as error:
        reason = str(error)
    else:
        try:
            yield server
        finally:
            server.stop()
        return
    pytest.fail(f"cannot start the real PIMS server: {reason}", pytrace=False)


@pytest.fixture(scope="module")
def server(real_pims: RealPims) -> Iterator[PimsServer]:
    with connect(f"pims+http://127.0.0.1:{real_pims.port}") as connection:
        assert isinstance(connection, PimsServer)
        yield connection
