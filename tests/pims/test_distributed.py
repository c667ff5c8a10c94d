"""Opened PIMS images compute on a real dask.distributed cluster of worker processes.

Every window is fetched by a worker that got the array by pickle and opened its own session
with the real PIMS server.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from .test_client import open_remote, source_levels

pytestmark = [pytest.mark.pims, pytest.mark.timeout(900)]


def test_levels_compute_on_worker_processes(
    server, real_pims, pims_images, dask_client, monkeypatch
):
    image = pims_images["pyramid"]
    remote = open_remote(server, real_pims, image)
    sources = source_levels(image)

    def no_reads_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("a window was fetched in the test's process")

    monkeypatch.setattr(server.session, "window", no_reads_here)
    for number in (1, 2):  # the small levels: cheap on two shared cores
        level = remote.levels[number]
        np.testing.assert_array_equal(level.max(axis=0).compute(), sources[number].max(axis=0))
    np.testing.assert_array_equal(
        remote.levels[0][1, 0, 0, 1000:1100, 1000:1100].compute(),
        sources[0][1, 0, 0, 1000:1100, 1000:1100],
    )


def test_rgb_levels_compute_on_worker_processes(
    server, real_pims, pims_images, dask_client
) -> None:
    image = pims_images["rgb_pyramid"]
    remote = open_remote(server, real_pims, image)
    level = remote.levels[-1]
    np.testing.assert_array_equal(level.compute(), source_levels(image)[len(remote.levels) - 1])
    # What travelled to the workers is the same reader, not a copy of the pixels.
    assert len(pickle.dumps(level)) < level.nbytes
