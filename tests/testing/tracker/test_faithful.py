"""The stand-in MIBItracker in the respects where it once differed from the real one: its
``summed_image.tiff`` opens under mibidata's rules, and the image-set list and run deletion exist.
Driven over HTTP with plain httpx, never the plugin's client.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from napari_lablink.testing.tracker.server import TrackerStandIn
from tests.mibidata_rules import read_like_mibidata

PLANE = np.arange(24 * 24, dtype=np.uint16).reshape(24, 24)


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def api(tracker: TrackerStandIn) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"JWT {tracker.issue_token()}"}
    with httpx.Client(base_url=tracker.base_url, headers=headers, timeout=10) as client:
        yield client


def _summed_image(api: httpx.Client, image_id: int) -> bytes:
    image = api.get(f"/images/{image_id}/").json()
    path = f"{image['run']['path']}/{image['folder']}/summed_image.tiff"
    url = api.get("/download/", params={"path": path}).json()["url"]
    with httpx.Client(timeout=10) as web:  # signed URL: no token
        return web.get(url).content


def test_summed_image_has_date_and_stage_position(tracker: TrackerStandIn, api: httpx.Client):
    run = tracker.add_run("RUN-A", "tonsil run", run_date="2021-03-04")
    image_id = tracker.add_image(
        run, "FOV2", {"CD45": (150, PLANE)}, 400.0, coordinates=(-1250.5, 3000.0)
    )
    strict = read_like_mibidata(io.BytesIO(_summed_image(api, image_id)))
    assert strict.date == dt.datetime(2021, 3, 4)  # the run's date
    assert strict.coordinates == pytest.approx((-1250.5, 3000.0))
    assert strict.description["mibi.run"] == "tonsil run"
    assert strict.description["mibi.fov_id"] == strict.description["mibi.folder"] == "FOV2"
    assert strict.channels == [(150, "CD45")]
    np.testing.assert_array_equal(strict.data[..., 0], PLANE)


def test_summed_image_without_known_position_is_at_0_0(tracker: TrackerStandIn, api):
    run = tracker.add_run("RUN-B")
    image_id = tracker.add_image(run, "FOV1", {"CD3": (143, PLANE)}, 400.0)
    assert read_like_mibidata(io.BytesIO(_summed_image(api, image_id))).coordinates == (0, 0)


def test_imagesets_are_listed(tracker: TrackerStandIn, api: httpx.Client) -> None:
    run = tracker.add_run("RUN-C")
    first = tracker.add_image(run, "FOV1", {"CD3": (143, PLANE)}, 400.0)
    second = tracker.add_image(run, "FOV2", {"CD3": (143, PLANE)}, 400.0)
    assert api.get("/imagesets/", params={"paging": "no"}).json() == []
    made = [
        api.post("/imagesets/", json={"images": ids, "name": name}).json()
        for ids, name in (([first], "one"), ([first, second], "two"))
    ]
    assert api.get("/imagesets/", params={"paging": "no"}).json() == made
    page = api.get("/imagesets/").json()
    assert page["count"] == 2 and page["results"] == made and page["next"] is None
    root = api.get("/").json()
    assert api.get(root["imagesets"], params={"paging": "no"}).status_code == 200


def test_deleting_a_run_removes_it_and_its_images(tracker: TrackerStandIn, api) -> None:
    run = tracker.add_run("RUN-D", fovs=["FOV1"])
    kept_run = tracker.add_run("RUN-E")
    image_id = tracker.add_image(run, "FOV2", {"CD3": (143, PLANE)}, 400.0)
    kept = tracker.add_image(kept_run, "FOV1", {"CD3": (143, PLANE)}, 400.0)
    imageset = api.post("/imagesets/", json={"images": [image_id, kept], "name": "s"}).json()
    path = api.get(f"/images/{image_id}/").json()["run"]["path"]

    deleted = api.delete(f"/runs/{run}/")
    assert deleted.status_code == 204 and deleted.content == b""

    assert api.get(f"/runs/{run}/").status_code == 404
    assert api.get(f"/images/{image_id}/").status_code == 404
    assert [r["id"] for r in api.get("/runs/", params={"paging": "no"}).json()] == [kept_run]
    assert api.get(f"/imagesets/{imageset['id']}/").json()["images"] == [kept]
    summed = api.get("/download/", params={"path": f"{path}/FOV2/summed_image.tiff"})
    assert summed.status_code == 404
    again = api.delete(f"/runs/{run}/")
    assert again.status_code == 404 and again.json() == {"detail": "Not found."}
    assert api.get(f"/images/{kept}/").status_code == 200


def test_deleting_a_run_needs_a_token(tracker: TrackerStandIn) -> None:
    run = tracker.add_run("RUN-F")
    with httpx.Client(base_url=tracker.base_url, timeout=10) as anonymous:
        assert anonymous.delete(f"/runs/{run}/").status_code == 401
    assert run in tracker.state.runs
