"""Uploads whose answers get lost, or that fail half-way: never a duplicate, never half an image."""

from __future__ import annotations

import numpy as np
import pytest

import napari_lablink
from napari_lablink.client.errors import LablinkError, UploadError

RNG = np.random.default_rng(5)


def connect(mikro, kind: str):
    prefix = "/mikro" if kind == "image" else ""
    return napari_lablink.connect(
        f"mikro+http://{mikro.uri_authority}{prefix}", token=mikro.token, s3=mikro.s3_endpoint
    )


def unused_stores(mikro) -> list[str]:
    """Stores holding data (or waiting for it) that no image uses."""
    used = {image.store for image in mikro.state.images.values()}
    return [
        s.id for s in mikro.state.stores.values() if s.id not in used and s.state != "discarded"
    ]


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_a_lost_registration_answer_is_looked_up_not_resent(mikro_clean, kind) -> None:
    field = "fromArrayLike" if kind == "image" else "fromXArray"
    data = RNG.integers(0, 500, size=(20, 30), dtype=np.uint16)
    images, reps = len(mikro_clean.state.images), len(mikro_clean.state.representations)
    with connect(mikro_clean, kind) as server:
        # The server registers, the answer to the first registration is lost.
        original = server.session.graphql
        lost = {"count": 0}

        def losing(query, variables=None, **kwargs):
            if field in query and lost["count"] == 0:
                lost["count"] += 1
                mikro_clean.faults.fail_next(1, "lost")
            return original(query, variables, **kwargs)

        server.session.graphql = losing
        uri = server.upload(data, name=f"lost {kind}", kind=kind)
        server.session.graphql = original
        np.testing.assert_array_equal(server.get(uri).data.values[0, 0, 0], data)
    assert len(mikro_clean.calls(field)) == 1  # sent once: the look-up found it
    assert len(mikro_clean.state.images) + len(mikro_clean.state.representations) == (
        images + reps + 1
    )


def test_a_pyramid_whose_scale_registration_fails_is_rolled_back(mikro_clean) -> None:
    before = set(mikro_clean.state.images)
    stores_before = set(mikro_clean.state.stores)
    calls = {"n": 0}
    with connect(mikro_clean, "image") as server:
        original = server.session.graphql

        def failing(query, variables=None, **kwargs):
            if "fromArrayLike" in query:
                calls["n"] += 1
                if calls["n"] == 2:  # the first scale level
                    raise napari_lablink.ServerError("the server failed", server="test")
            return original(query, variables, **kwargs)

        server.session.graphql = failing
        data = RNG.integers(0, 9, size=(1, 1, 1, 1100, 1100), dtype=np.uint8)
        with pytest.raises(LablinkError) as caught:
            server.upload(data, name="pyramid", kind="image", dims="ctzyx", pyramid=True)
    assert caught.value.registered == ()
    assert "Nothing was registered" in str(caught.value)
    assert set(mikro_clean.state.images) == before
    new = set(mikro_clean.state.stores) - stores_before
    assert new and all(mikro_clean.state.stores[s].state == "discarded" for s in new)


def test_a_registration_lost_every_time_is_cleaned_up(mikro_clean) -> None:
    """Every answer to fromArrayLike lost: the server registered some, the client deletes them
    all and says nothing stayed."""
    before = set(mikro_clean.state.images)
    with connect(mikro_clean, "image") as server:
        original = server.session.graphql

        def losing(query, variables=None, **kwargs):
            if "fromArrayLike" in query:
                mikro_clean.faults.fail_next(1, "lost")
            return original(query, variables, **kwargs)

        server.session.graphql = losing
        uri = server.upload(np.ones((8, 8), np.uint16), name="stubborn", kind="image")
    # The look-up after the first lost answer found the image: one, not four.
    assert len(set(mikro_clean.state.images) - before) == 1
    assert napari_lablink.parse_uri(uri).object_id in mikro_clean.state.images


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_zero_size_uploads_are_refused_clearly(mikro_clean, kind) -> None:
    with connect(mikro_clean, kind) as server, pytest.raises(UploadError) as caught:
        server.upload(np.zeros((0, 10), np.uint16), name="empty", kind=kind)
    assert "no pixels" in str(caught.value) and caught.value.registered == ()
    assert mikro_clean.calls("requestZarrUpload") == []


def test_upload_key_tags_stay_out_of_sight(mikro_clean) -> None:
    with connect(mikro_clean, "image") as server:
        uri = server.upload(np.ones((8, 8), np.uint16), name="tagged", kind="image", tags=["a"])
        assert server.get(uri).server_metadata["tags"] == ["a"]
        listed = [e for e in server.browse("tagged") if e.uri.split("?")[0] == uri.split("?")[0]]
        assert listed and listed[0].tags == ("a",)
    (image,) = [i for i in mikro_clean.state.images.values() if i.name == "tagged"]
    assert any(t.startswith("lablink-upload:") for t in image.tags)


@pytest.mark.parametrize("kind", ["image", "representation"])
def test_a_registration_the_server_finishes_late_is_waited_for_not_resent(
    mikro_clean, kind, monkeypatch
) -> None:
    """The server hangs up first and registers 0.4 s later: the client, still looking, finds
    it and never registers a second copy."""
    field = "fromArrayLike" if kind == "image" else "fromXArray"
    monkeypatch.setattr(mikro_clean.faults, "slow_seconds", 0.4)
    images, reps = len(mikro_clean.state.images), len(mikro_clean.state.representations)
    data = RNG.integers(0, 500, size=(12, 16), dtype=np.uint16)
    with connect(mikro_clean, kind) as server:
        original = server.session.graphql

        sent = []

        def late(query, variables=None, **kwargs):
            if field in query:
                if not sent:
                    mikro_clean.faults.fail_next(1, "late")
                sent.append(query)
            return original(query, variables, **kwargs)

        server.session.graphql = late
        uri = server.upload(data, name=f"late {kind}", kind=kind)
        server.session.graphql = original
        np.testing.assert_array_equal(server.get(uri).data.values[0, 0, 0], data)
    assert len(sent) == len(mikro_clean.calls(field)) == 1
    assert len(mikro_clean.state.images) + len(mikro_clean.state.representations) == (
        images + reps + 1
    )


def test_a_late_registration_landing_beside_the_resent_one_is_deleted(
    mikro_clean, monkeypatch
) -> None:
    """The first attempt lands only while the second is being answered (both slow): the
    client keeps the one it was told about and deletes the other copy."""
    monkeypatch.setattr(mikro_clean.faults, "slow_seconds", 0.6)
    monkeypatch.setattr("napari_lablink.client.lost_answers.SETTLE_SECONDS", (0.05,))
    before = set(mikro_clean.state.images)
    with connect(mikro_clean, "image") as server:
        original = server.session.graphql

        sent = []

        def late_then_slow(query, variables=None, **kwargs):
            if "fromArrayLike" in query:
                mikro_clean.faults.fail_next(1, "slow" if sent else "late")
                sent.append(query)
            return original(query, variables, **kwargs)

        server.session.graphql = late_then_slow
        uri = server.upload(np.ones((8, 8), np.uint16), name="twice", kind="image")
    assert len(sent) == len(mikro_clean.calls("fromArrayLike")) == 2  # it was sent again ...
    new = set(mikro_clean.state.images) - before
    assert new == {napari_lablink.parse_uri(uri).object_id}  # ... and one image stayed
