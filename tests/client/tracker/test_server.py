"""The MIBItracker client against the stand-in tracker over real HTTP on loopback.

Each test gets its own stand-in (a socket and a thread): tests that upload, inject faults or move
the server's clock cannot disturb each other.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import dask
import imagecodecs
import numpy as np
import pytest
import tifffile

import napari_lablink
from napari_lablink import (
    AuthenticationError,
    ClosedConnectionError,
    ConfigurationError,
    NotFoundError,
    ServerError,
    ServerUnavailableError,
)
from napari_lablink.client.config import Credentials
from napari_lablink.client.errors import AmbiguousImageError, ChannelDataError
from napari_lablink.client.tracker.models import TrackerImage
from napari_lablink.client.tracker.server import TrackerServer
from napari_lablink.client.uri import parse_server_uri
from napari_lablink.formats.mibitiff import read_mibitiff, write_mibitiff
from napari_lablink.testing.tracker.server import TrackerStandIn

RNG = np.random.default_rng(11)
SIZE = 32
FOV_UM = 400.0


def _plane(high: int = 4000) -> np.ndarray:
    """Counts beyond 255, so anything but a 16-bit round trip would show."""
    return RNG.integers(0, high, size=(SIZE, SIZE), dtype=np.uint16)


CHANNELS = {"CD45": (150, _plane()), "dsDNA": (89, _plane()), "CD3": (143, _plane())}
MASK = _plane(2)


class Clock:
    """The client's monotonic clock, moved by the test together with the stand-in's."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        run = stand_in.add_run("RUN-A", "tonsil run")
        stand_in.image_id = stand_in.add_image(  # type: ignore[attr-defined]
            run,
            "FOV1",
            {**CHANNELS, "mask": (None, MASK)},
            FOV_UM,
            description="Tonsil_R1C1",
            settings={"CD45": {"color": "Cyan", "hex": "#00FFFF", "intensity_higher": 40}},
        )
        yield stand_in


def url_of(tracker: TrackerStandIn) -> str:
    return f"mibi+http://127.0.0.1:{tracker.port}"


@pytest.fixture
def server(tracker: TrackerStandIn) -> Iterator[TrackerServer]:
    with napari_lablink.connect(
        url_of(tracker), email=tracker.email, password=tracker.password
    ) as connection:
        assert isinstance(connection, TrackerServer)
        yield connection


def api_requests(tracker: TrackerStandIn) -> list:
    return [r for r in tracker.requests if not r.signed]


# -- session ---------------------------------------------------------------------------------


def test_login_sends_jwt_to_the_api_and_nothing_to_signed_urls(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    image_id = tracker.image_id
    np.testing.assert_array_equal(server.get_channel_data(image_id, "CD45"), CHANNELS["CD45"][1])
    assert server.download_file("runs/RUN-A/FOV1/pngs/CD3.png").read()[:4] == b"\x89PNG"
    log = tracker.requests
    assert (log[0].method, log[0].path, log[0].authorization) == ("POST", "/api-token-auth/", False)
    signed = [r for r in log if r.signed]
    assert len(signed) == 2 and not any(r.authorization for r in signed)
    assert all(r.authorization for r in log[1:] if not r.signed)


def test_bad_password_is_refused_with_the_servers_words(tracker: TrackerStandIn) -> None:
    with pytest.raises(AuthenticationError) as caught:
        napari_lablink.connect(url_of(tracker), email=tracker.email, password="wrong-password")
    message = str(caught.value)
    assert "Unable to log in with provided credentials." in message
    assert tracker.email in message and f"127.0.0.1:{tracker.port}" in message
    assert "wrong-password" not in message
    assert [(r.path, r.status) for r in tracker.requests] == [("/api-token-auth/", 400)]


def test_no_login_configured_says_where_to_put_one(tracker: TrackerStandIn) -> None:
    with pytest.raises(ConfigurationError, match="LABLINK_MIBI_EMAIL"):
        napari_lablink.connect(url_of(tracker))
    assert tracker.requests == []


def test_login_from_environment(tracker: TrackerStandIn, monkeypatch) -> None:
    monkeypatch.setenv("LABLINK_MIBI_EMAIL", tracker.email)
    monkeypatch.setenv("LABLINK_MIBI_PASSWORD", tracker.password)
    with napari_lablink.connect(url_of(tracker)) as server:
        assert server.image(tracker.image_id).number == "FOV1"


def test_existing_token_is_validated_with_options(tracker: TrackerStandIn) -> None:
    token = tracker.issue_token()
    with napari_lablink.connect(url_of(tracker), token=token) as server:
        assert server.image(tracker.image_id).folder == "FOV1"
    assert [(r.method, r.path) for r in tracker.requests][:1] == [("OPTIONS", "/")]
    tracker.clear_requests()
    with pytest.raises(AuthenticationError, match="refused the token") as caught:
        napari_lablink.connect(url_of(tracker), token=token[:-4] + "AAAA")
    assert token[:-4] not in str(caught.value)
    assert [(r.method, r.status) for r in tracker.requests] == [("OPTIONS", 401)]


def test_refused_token_falls_back_to_the_password(tracker: TrackerStandIn) -> None:
    with napari_lablink.connect(
        url_of(tracker), token="stale.token.value", email=tracker.email, password=tracker.password
    ) as server:
        assert server.image(tracker.image_id).number == "FOV1"
    assert [(r.path, r.status) for r in tracker.requests][:2] == [
        ("/", 401),
        ("/api-token-auth/", 200),
    ]


def test_api_below_a_path_prefix() -> None:
    with TrackerStandIn(prefix="/tracker/api") as stand_in:
        run = stand_in.add_run("PRE", "prefixed run")
        image_id = stand_in.add_image(run, "FOV1", {"CD45": (150, MASK)}, FOV_UM)
        url = f"mibi+http://127.0.0.1:{stand_in.port}/tracker/api"
        with napari_lablink.connect(url, token=stand_in.issue_token()) as server:
            image = server.get(f"images/{image_id}")
            assert image.uri == f"{url}/images/{image_id}"
            np.testing.assert_array_equal(image.levels[0][0].compute(), MASK)
        paths = [r.path for r in stand_in.requests if not r.signed]
        assert paths[0] == "/tracker/api/" and all(p.startswith("/tracker/api/") for p in paths)


def test_token_is_refreshed_once_300_seconds_have_passed(tracker: TrackerStandIn) -> None:
    clock = Clock()
    credentials = Credentials(email=tracker.email, password=tracker.password)
    with TrackerServer(parse_server_uri(url_of(tracker)), credentials, clock=clock) as server:
        clock.now += 299
        server.image(tracker.image_id)
        assert not any("refresh" in r.path for r in tracker.requests)
        first_token = server.session.token
        clock.now += 1
        tracker.advance_clock(300)
        server.image(tracker.image_id)
        refreshes = [r for r in tracker.requests if r.path == "/api-token-refresh/"]
        assert [(r.method, r.status) for r in refreshes] == [("POST", 200)]
        assert server.session.token != first_token
        server.image(tracker.image_id)  # within 300 s of the refresh: no other refresh
        assert len([r for r in tracker.requests if r.path == "/api-token-refresh/"]) == 1


def test_expired_token_logs_in_again_with_the_password(tracker: TrackerStandIn) -> None:
    clock = Clock()
    credentials = Credentials(email=tracker.email, password=tracker.password)
    with TrackerServer(parse_server_uri(url_of(tracker)), credentials, clock=clock) as server:
        clock.now += 25 * 3600
        tracker.advance_clock(25 * 3600)  # tokens live 24 h: refreshing is refused
        assert server.image(tracker.image_id).number == "FOV1"
    paths = [(r.path, r.status) for r in tracker.requests]
    assert paths[1:4] == [
        ("/api-token-refresh/", 400),
        ("/api-token-auth/", 200),
        (f"/images/{tracker.image_id}/", 200),
    ]


def test_token_refused_before_its_refresh_is_due_logs_in_again(tracker: TrackerStandIn) -> None:
    """As after a sleeping laptop: the client's clock says fresh, the server says expired."""
    with napari_lablink.connect(
        url_of(tracker), email=tracker.email, password=tracker.password
    ) as server:
        tracker.advance_clock(25 * 3600)
        assert server.image(tracker.image_id).number == "FOV1"
    assert [(r.path, r.status) for r in tracker.requests][1:] == [
        (f"/images/{tracker.image_id}/", 401),
        ("/api-token-auth/", 200),
        (f"/images/{tracker.image_id}/", 200),
    ]


def test_expired_token_without_password_asks_to_log_in_again(tracker: TrackerStandIn) -> None:
    clock = Clock()
    token = tracker.issue_token()
    with TrackerServer(
        parse_server_uri(url_of(tracker)), Credentials(token=token), clock=clock
    ) as server:
        clock.now += 25 * 3600
        tracker.advance_clock(25 * 3600)
        with pytest.raises(AuthenticationError, match="would not refresh") as caught:
            server.image(tracker.image_id)
    assert "log in again" in str(caught.value) and token not in str(caught.value)


def test_posts_are_retried_on_503_but_login_is_not(tracker: TrackerStandIn) -> None:
    tracker.faults.fail_next(1, path_contains="api-token-auth")
    with pytest.raises(ServerError, match="503"):
        napari_lablink.connect(url_of(tracker), email=tracker.email, password=tracker.password)
    assert [(r.path, r.status) for r in tracker.requests] == [("/api-token-auth/", 503)]

    with napari_lablink.connect(
        url_of(tracker), email=tracker.email, password=tracker.password
    ) as server:
        tracker.faults.fail_next(2, methods=["POST"], path_contains="/imagesets/")
        created = server.create_imageset([tracker.image_id], "retried", None, "after 503s")
    assert created["images"] == [tracker.image_id] and created["description"] == "after 503s"
    posts = [r.status for r in tracker.requests if (r.method, r.path) == ("POST", "/imagesets/")]
    assert posts == [503, 503, 201]
    assert len(tracker.state.imagesets) == 1


def test_server_down(tracker: TrackerStandIn) -> None:
    url = url_of(tracker)
    tracker.stop()
    with pytest.raises(ServerUnavailableError) as caught:
        napari_lablink.connect(url, email=tracker.email, password=tracker.password)
    assert "could not be reached" in str(caught.value) and url in str(caught.value)


# -- reading ---------------------------------------------------------------------------------


def test_open_image_by_id(tracker: TrackerStandIn, server: TrackerServer) -> None:
    image = server.get(f"images/{tracker.image_id}")
    assert image.dims == ("c", "y", "x") and image.shape == (4, SIZE, SIZE)
    assert image.dtype == np.uint16
    assert [c.name for c in image.channels] == ["CD3 (143)", "CD45 (150)", "dsDNA (89)", "mask"]
    assert image.pixel_size == {"y": FOV_UM / SIZE, "x": FOV_UM / SIZE}
    assert image.channels[1].color == (0.0, 1.0, 1.0)
    assert image.channels[1].contrast_limits == (0.0, 40.0)
    assert image.channels[0].color is None and image.channels[0].contrast_limits is None
    assert image.name == "RUN-A FOV1 (Tonsil_R1C1)"
    assert image.levels[0].chunks[0] == (1, 1, 1, 1)
    metadata = image.server_metadata
    assert metadata["image_id"] == tracker.image_id and metadata["run"]["label"] == "RUN-A"
    assert metadata["masses"] == {"CD3": 143, "CD45": 150, "dsDNA": 89}
    assert server.session.token not in repr(metadata) and tracker.password not in repr(metadata)
    assert not any(r.signed for r in tracker.requests)  # opening reads no pixels

    expected = np.stack([CHANNELS["CD3"][1], CHANNELS["CD45"][1], CHANNELS["dsDNA"][1], MASK])
    np.testing.assert_array_equal(image.levels[0][1].compute(), expected[1])
    assert len([r for r in tracker.requests if r.signed]) == 1  # one channel, one fetch
    np.testing.assert_array_equal(image.levels[0].compute(), expected)
    np.testing.assert_array_equal(image.data.sel(c="mask").values, MASK)


def test_each_channel_is_fetched_once_even_when_asked_for_together(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    image = server.get(f"images/{tracker.image_id}")
    results: list[np.ndarray] = []
    workers = [
        threading.Thread(target=lambda: results.append(image.levels[0].compute())) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == 3 and all(np.array_equal(r, results[0]) for r in results)
    fetched = sorted(r.path.rsplit("/", 1)[1] for r in tracker.requests if r.signed)
    assert fetched == ["CD3.png", "CD45.png", "dsDNA.png", "mask.png"]
    urls = [r for r in tracker.requests if r.path.endswith("/channel_url/")]
    assert len(urls) == 4


def test_channels_computed_together_download_at_once_even_on_one_dask_thread(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    """The server holds each channel download for a second; the client's request hooks count
    how many are under way at once (observed on the real session, nothing replaced)."""
    in_flight: list[int] = [0]
    peak: list[int] = [0]
    lock = threading.Lock()

    def sent(request) -> None:
        if request.url.path.startswith("/storage/"):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])

    def answered(response) -> None:
        if response.request.url.path.startswith("/storage/"):
            with lock:
                in_flight[0] -= 1

    client = server.transport._client
    client.event_hooks = {"request": [sent], "response": [answered]}
    tracker.faults.slow_seconds = 1.0
    tracker.faults.fail_next(4, "slow", path_contains="/storage/")
    image = server.get(f"images/{tracker.image_id}")
    with dask.config.set(scheduler="synchronous"):
        stack = image.levels[0].compute()
    assert stack.shape == (4, SIZE, SIZE)
    assert peak[0] >= 2
    assert len([r for r in tracker.requests if r.signed]) == 4


def test_closed_connection_reads_no_more(tracker: TrackerStandIn, server: TrackerServer) -> None:
    image = server.get(f"images/{tracker.image_id}")
    server.close()
    with pytest.raises(ClosedConnectionError):
        image.levels[0].compute()
    with pytest.raises(ClosedConnectionError):
        image.levels[0][0].compute()


def test_open_by_run_label_or_name_and_fov(tracker: TrackerStandIn, server: TrackerServer) -> None:
    by_label = server.get("runs/RUN-A/FOV1")
    assert by_label.server_metadata["image_id"] == tracker.image_id
    assert by_label.uri == f"{url_of(tracker)}/runs/RUN-A/FOV1"
    assert server.image_id("tonsil run", "FOV1") == tracker.image_id  # the run name fallback
    with pytest.raises(NotFoundError, match="No image matches"):
        server.get("runs/RUN-A/FOV9")
    with pytest.raises(NotFoundError, match="'CD45' is not a tracker image id") as caught:
        server.get("images/CD45")
    assert f"127.0.0.1:{tracker.port}" in str(caught.value)
    with pytest.raises(ConfigurationError, match="names a run but no FOV"):
        server.get("runs/RUN-A")


def test_image_id_must_match_exactly_one_image(tracker: TrackerStandIn) -> None:
    for label in ("DUP-1", "DUP-2"):
        run = tracker.add_run(label, "same name")
        tracker.add_image(run, "FOV1", {"CD45": (150, _plane())}, FOV_UM)
    with napari_lablink.connect(
        url_of(tracker), email=tracker.email, password=tracker.password
    ) as server:
        assert server.image_id("DUP-2", "FOV1") != server.image_id("DUP-1", "FOV1")
        with pytest.raises(AmbiguousImageError, match="2 images match") as caught:
            server.image_id("same name", "FOV1")
        assert "unique label" in str(caught.value)


def test_unknown_image_and_channel(tracker: TrackerStandIn, server: TrackerServer) -> None:
    with pytest.raises(NotFoundError) as caught:
        server.get("images/4242")
    assert "image 4242" in str(caught.value) and "Not found." in str(caught.value)
    with pytest.raises(NotFoundError) as caught:
        server.get_channel_data(tracker.image_id, "CD99")
    message = str(caught.value)
    assert "'CD99'" in message and "not found in image" in message and "pngs" in message


def test_image_without_optional_metadata_opens(tracker: TrackerStandIn) -> None:
    run = tracker.add_run("BARE", fov_size=None)
    bare = tracker.add_image(run, "FOV1", {"x": (None, MASK)}, FOV_UM, panel=None)
    with napari_lablink.connect(
        url_of(tracker), email=tracker.email, password=tracker.password
    ) as server:
        image = server.get(f"images/{bare}")
        assert [c.name for c in image.channels] == ["x"]
        np.testing.assert_array_equal(image.levels[0][0].compute(), MASK)
        assert server.image_conjugates(bare) == []
    model = TrackerImage.model_validate({"id": 3, "novel_field": [1], "run": {"id": 1}})
    assert model.tissue is None and model.aperture is None and model.novel_field == [1]
    nulls = TrackerImage.model_validate({"id": 4, "pngs": None, "channel_settings": None})
    assert nulls.pngs == [] and nulls.channel_settings == {} and nulls.storage_folder is None


def test_get_mibi_image(tracker: TrackerStandIn, server: TrackerServer) -> None:
    mibi = server.get_mibi_image(tracker.image_id)
    assert mibi.names == ("CD3 (143)", "CD45 (150)", "dsDNA (89)")  # the user channel is no SIMS
    np.testing.assert_array_equal(mibi.channel("dsDNA"), CHANNELS["dsDNA"][1])
    assert mibi.fov_size_um == pytest.approx(FOV_UM)
    assert mibi.metadata["fov_id"] == "FOV1"


def test_conjugates_runs_and_images(tracker: TrackerStandIn, server: TrackerServer) -> None:
    conjugates = server.image_conjugates(tracker.image_id)
    assert sorted((c.target, c.mass) for c in conjugates) == [
        ("CD3", 143),
        ("CD45", 150),
        ("dsDNA", 89),
    ]
    (run,) = server.search_runs("tonsil run")
    assert run.label == "RUN-A" and run.instrument["id"] >= 1
    assert [i.id for i in run.imageset.images] == [tracker.image_id]
    assert server.search_runs("tonsil run", "OTHER") == []
    (image,) = server.run_images("RUN-A")
    assert image.pngs == ["CD3", "CD45", "dsDNA", "mask"]
    assert image.channel_settings["CD45"].hex == "#00FFFF"


def test_plain_routes(tracker: TrackerStandIn, server: TrackerServer) -> None:
    page = server.api.get("images/", params={"limit": 1}).json()
    assert page["count"] == 1 and page["results"][0]["id"] == tracker.image_id
    put = server.api.put(f"images/{tracker.image_id}/", json={"description": "renamed"})
    assert put.json()["description"] == "renamed"
    created = server.api.post("imagesets/", json={"images": [tracker.image_id], "name": "s"})
    assert created.status_code == 201
    assert server.api.delete(f"imagesets/{created.json()['id']}/").status_code == 204
    with pytest.raises(ServerError, match="This field is required"):
        server.api.post("imagesets/", json={"images": [tracker.image_id]})


# -- writing ---------------------------------------------------------------------------------


def test_upload_channel_from_array_path_and_file(
    tracker: TrackerStandIn, server: TrackerServer, tmp_path
) -> None:
    image_id = tracker.image_id
    counts = _plane(60000)
    server.upload_channel(image_id, counts, "segmentation")
    stored = tracker.image_channels(image_id)
    np.testing.assert_array_equal(stored["segmentation"], counts)

    path = tmp_path / "nuclei.png"
    path.write_bytes(imagecodecs.png_encode(counts // 2))
    server.upload_channel(image_id, path)
    np.testing.assert_array_equal(tracker.image_channels(image_id)["nuclei"], counts // 2)

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, counts[::-1].copy())
    buffer.seek(0)
    answer = server.upload_channel(image_id, buffer, "flipped.tiff")
    assert "flipped" in answer["pngs"]
    np.testing.assert_array_equal(tracker.image_channels(image_id)["flipped"], counts[::-1])
    # the new channel reads back through the tracker's PNG like any other
    np.testing.assert_array_equal(server.get_channel_data(image_id, "segmentation"), counts)


def test_upload_channel_refuses_data_a_png_cannot_hold(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    with pytest.raises(ChannelDataError, match=r"values -1\.\.3.*TIFF"):
        server.upload_channel(tracker.image_id, np.array([[-1, 3], [0, 1]]), "signed")
    with pytest.raises(ChannelDataError, match="not a 2-D plane"):
        server.upload_channel(tracker.image_id, np.zeros((2, 3, 4), np.uint16), "stack")
    with pytest.raises(ConfigurationError, match="needs a name"):
        server.upload_channel(tracker.image_id, np.zeros((4, 4), np.uint16))
    assert not any("upload_channel" in r.path for r in tracker.requests)


def test_upload_mibitiff_signs_puts_without_token_and_registers(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    run_id = tracker.add_run("UP-1", "upload run")
    data = np.stack([_plane(), _plane()])
    buffer = io.BytesIO()
    write_mibitiff(
        buffer,
        data,
        [(150, "CD45"), (89, "dsDNA")],
        {"run": "upload run", "fov_id": "FOV3", "folder": "FOV3"},
        fov_size_um=300.0,
    )
    answer = server.upload_mibitiff(buffer.getvalue(), run_id)
    assert answer["status"] == "processed"
    (image,) = server.run_images("UP-1")
    assert image.id == answer["image_id"] and image.pngs == ["CD45", "dsDNA"]
    np.testing.assert_array_equal(server.get_channel_data(image.id, "dsDNA"), data[1])
    puts = [r for r in tracker.requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].signed and not puts[0].authorization
    with pytest.raises(ConfigurationError, match="id of its run"):
        server.upload_mibitiff(buffer.getvalue())


def test_create_imageset(tracker: TrackerStandIn, server: TrackerServer) -> None:
    project = tracker.add_project("lab")
    created = server.create_imageset([tracker.image_id], "my set", project, "for figures")
    assert tracker.state.imagesets[created["id"]] == {
        "id": created["id"],
        "name": "my set",
        "project": project,
        "description": "for figures",
        "images": [tracker.image_id],
    }


def test_copy_run_and_its_image_metadata(tracker: TrackerStandIn, server: TrackerServer) -> None:
    tissue = tracker.add_tissue("Tonsil")
    tracker.add_run("MINI", "minisims", fovs=["Point1", "Point2"], fov_size=250.0)
    for number in ("Point1", "Point2"):
        tracker.add_image(
            "MINI",
            number,
            {"CD45": (150, _plane())},
            250.0,
            description=f"{number} of tonsil",
            tissue=tissue,
            dwell_time=2.5,
        )
    old_image = server.run_images("MINI")[0]
    server.api.put(f"images/{old_image.id}/", json={"depths": 3})

    old, new = server.copy_run("MINI", "MINI-COPY", description="cropped copy")
    assert (old.label, old.id) != (new.label, new.id)
    assert (new.label, new.name, new.fov_size) == ("MINI-COPY", "minisims", 250.0)
    assert new.model_extra["description"] == "cropped copy"
    copies = server.run_images("MINI-COPY")
    assert [(i.number, i.folder, i.pngs) for i in copies] == [
        ("Point1", "Point1/RowNumber0/Depth_Profile0", []),
        ("Point2", "Point2/RowNumber0/Depth_Profile0", []),
    ]

    updated = server.copy_run_image_metadata("MINI", "MINI-COPY", mass_gain=0.5)
    assert sorted(updated) == sorted(i.id for i in server.run_images("MINI"))
    first = updated[old_image.id]
    assert first.id == copies[0].id
    assert (first.description, first.dwell_time, first.depths) == ("Point1 of tonsil", 2.5, 3)
    assert first.tissue["id"] == tissue and first.mass_gain == 0.5
    assert first.pngs == []  # metadata only: the pixels come with the MIBItiff upload


def test_copied_metadata_includes_the_sed_image(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    tracker.add_run("COPY-SED", "tonsil run 2", fovs=["FOV1"])
    sed = imagecodecs.png_encode(_plane())
    server.api.put(
        f"images/{tracker.image_id}/",
        data={"description": "with sed"},
        files={"attachment": ("sed.png", sed, "image/png")},
    )
    (updated,) = server.copy_run_image_metadata("RUN-A", "COPY-SED").values()
    assert updated.sed == "sed.png" and updated.description == "with sed"
    assert tracker.stored_file("runs/COPY-SED/FOV1/sed.png") == sed


def test_mibitiff_round_trip_through_the_tracker(
    tracker: TrackerStandIn, server: TrackerServer
) -> None:
    """A downloaded MIBItiff is the format the plugin's reader reads (no plugin writer involved)."""
    payload = server.download_file("runs/RUN-A/FOV1/summed_image.tiff").getvalue()
    mibi = read_mibitiff(io.BytesIO(payload))
    assert mibi.targets == ("CD3", "CD45", "dsDNA")
