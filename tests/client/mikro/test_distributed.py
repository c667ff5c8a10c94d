"""Opened images compute, renew their grants and upload on a real dask.distributed cluster.

The cluster is a ``LocalCluster`` of two worker processes: every chunk is read in a process that
got the array by pickle, never by sharing memory with the test.
"""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np

import napari_lablink
from napari_lablink.client.mikro.datalayer import GrantedStore

RNG = np.random.default_rng(16)
IMAGE = RNG.integers(0, 60000, size=(2, 1, 4, 64, 96), dtype=np.uint16)
CHUNKS = (1, 1, 1, 32, 32)  # 2 * 4 * 2 * 3 = 48 chunks


def connect(mikro, prefix: str = "/mikro"):
    return napari_lablink.connect(
        f"mikro+http://{mikro.uri_authority}{prefix}", token=mikro.token, s3=mikro.s3_endpoint
    )


def store_of(array: da.Array) -> GrantedStore:
    (layer,) = array.dask.layers.values()
    return layer.read.read.__self__._read.array.store  # guarded, read ahead, zarr chunks


def test_a_max_projection_computes_on_worker_processes(mikro_clean, dask_client) -> None:
    image_id = mikro_clean.add_image(IMAGE, "distributed", chunks=CHUNKS)
    with connect(mikro_clean) as server:
        image = server.get(mikro_clean.image_uri(image_id))
        mikro_clean.s3.reset_requests()
        projection = image.levels[0].max(axis=2).compute()
    np.testing.assert_array_equal(projection, IMAGE.max(axis=2))
    # Every chunk read once, by the workers: nothing read ahead where the graph was culled.
    assert mikro_clean.s3.count("GET", "/c/") == 48


def test_workers_renew_expired_grants_themselves(mikro_clean, dask_client) -> None:
    image_id = mikro_clean.add_image(IMAGE, "renewed", chunks=CHUNKS)
    with connect(mikro_clean) as server:
        image = server.get(mikro_clean.image_uri(image_id))
        assert int(image.levels[0].sum().compute()) == int(IMAGE.sum())
        asked = len(mikro_clean.calls("requestZarrAccess"))
        mikro_clean.expire_credentials()
        total = image.levels[0][1].sum().compute()
        assert int(total) == int(IMAGE[1].sum())
        # Each worker process asked for its own new grant (the test's process read nothing).
        assert 1 <= len(mikro_clean.calls("requestZarrAccess")) - asked <= 2
        assert store_of(image.levels[0]).grant.expires_at is not None


def test_generation1_representations_compute_too(mikro_clean, dask_client) -> None:
    rep_id = mikro_clean.add_representation(IMAGE, "gen1", chunks=CHUNKS)
    with connect(mikro_clean, prefix="") as server:
        image = server.get(mikro_clean.representation_uri(rep_id))
        np.testing.assert_array_equal(
            image.levels[0].mean(axis=(3, 4)).compute(), IMAGE.mean(axis=(3, 4))
        )


def test_a_persisted_array_uploads(mikro_clean, dask_client) -> None:
    source = da.from_array(IMAGE, chunks=(1, 1, 2, 64, 96)) + np.uint16(1)
    persisted = source.persist()
    with connect(mikro_clean) as server:
        uri = server.upload(persisted, name="persisted", kind="image", dims="ctzyx")
        image = server.get(uri)
        np.testing.assert_array_equal(image.levels[0].compute(), IMAGE + 1)


def test_secrets_travel_only_inside_pickles_never_into_reprs_or_logs(
    mikro_clean, dask_client
) -> None:
    image_id = mikro_clean.add_image(IMAGE, "secret", chunks=CHUNKS)
    with connect(mikro_clean) as server:
        image = server.get(mikro_clean.image_uri(image_id))
        level = image.levels[0]
        grant = store_of(level).grant
        secrets = [mikro_clean.token, grant.secret_access_key, grant.session_token]
        # The worker needs them, so they are in the pickle ...
        payload = pickle.dumps(level)
        assert all(s.encode() in payload for s in secrets)
        # ... but no description of the graph, its tasks or its store names them.
        plane = level[0, 0, 0]
        plane.__dask_optimize__(plane.dask, plane.__dask_keys__())
        described = [repr(level), repr(level.dask), repr(store_of(level)), repr(grant)]
        described += [repr(task) for task in dict(plane.dask).values()]
        described += [repr(pickle.loads(payload).dask.layers)]
        level.max().compute()
        logs = [dask_client.get_worker_logs(), dask_client.get_scheduler_logs()]
    for text in [*described, repr(logs)]:
        assert not any(s in text for s in secrets)
