"""The stand-in MIBItracker, driven over HTTP with plain httpx (never the plugin's client).

Each test gets its own small server (starting one costs a socket and a thread), so tests that
change data or inject faults cannot disturb each other.
"""

from __future__ import annotations

import base64
import io
import json
import ssl
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import imagecodecs
import numpy as np
import pytest
import tifffile

from napari_lablink.testing.tracker.server import TrackerStandIn

RNG = np.random.default_rng(3)


def _plane(shape: tuple[int, int] = (24, 32), high: int = 4000) -> np.ndarray:
    """Counts beyond 255, so a PNG that is not 16-bit would show it."""
    return RNG.integers(0, high, size=shape, dtype=np.uint16)


@pytest.fixture
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        yield stand_in


_SSL = ssl.create_default_context()  # one for all clients: building it costs ~20 ms each time


def _client(tracker: TrackerStandIn, token: str | None = None) -> httpx.Client:
    token = token or tracker.issue_token()
    return httpx.Client(
        base_url=tracker.base_url,
        headers={"Authorization": f"JWT {token}"},
        timeout=10,
        verify=_SSL,
    )


@pytest.fixture(scope="module")
def web() -> Iterator[httpx.Client]:
    """A client without credentials, as for signed URLs and login."""
    with httpx.Client(timeout=10, verify=_SSL) as client:
        yield client


@pytest.fixture
def api(tracker: TrackerStandIn) -> Iterator[httpx.Client]:
    with _client(tracker) as client:
        yield client


@pytest.fixture
def image_id(tracker: TrackerStandIn) -> int:
    run = tracker.add_run("RUN-A", "tonsil run")
    return tracker.add_image(
        run,
        "FOV1",
        {"CD45": (150, _plane()), "dsDNA": (89, _plane()), "CD3": (143, _plane())},
        400.0,
        description="Tonsil_R1C1",
        settings={"CD45": {"color": "Cyan", "hex": "#00FFFF", "intensity_higher": 40}},
    )


def _png_header(png: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    return width, height, depth, colour


def _mibitiff(
    channels: list[tuple[int, str, np.ndarray]],
    description: dict[str, Any],
    size_um: float = 400.0,
    sed: np.ndarray | None = None,
) -> bytes:
    """A MIBItiff built with tifffile as the format describes (not with the plugin's writer)."""
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tif:
        for mass, target, plane in channels:
            resolution = plane.shape[1] * 1e4 / size_um
            tif.write(
                plane,
                compression=8,
                metadata={
                    **description,
                    "image.type": "SIMS",
                    "channel.mass": mass,
                    "channel.target": target,
                },
                software="IonpathMIBIv1.0",
                resolution=(resolution, resolution),
                resolutionunit="CENTIMETER",
                extratags=[(285, "s", 0, f"{target} ({mass})".encode(), True)],
            )
        if sed is not None:
            tif.write(sed, metadata={"image.type": "SED"}, software="IonpathMIBIv1.0")
    return buffer.getvalue()


# -- session ---------------------------------------------------------------------------------


def test_login_gives_a_jwt_that_opens_the_api(tracker: TrackerStandIn, web: httpx.Client) -> None:
    response = web.post(
        f"{tracker.base_url}/api-token-auth/",
        json={"email": tracker.email, "password": tracker.password},
    )
    assert response.status_code == 200
    token = response.json()["token"]
    header, payload, _ = token.split(".")
    claims = json.loads(_b64decode(payload))
    assert claims["email"] == tracker.email
    assert json.loads(_b64decode(header))["alg"] == "HS256"
    with _client(tracker, token) as client:
        assert client.options("/").status_code == 200


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_header_names_are_case_insensitive(tracker: TrackerStandIn, web: httpx.Client) -> None:
    """The reference client sends ``content-type`` in lower case with a JSON string body."""
    body = json.dumps({"email": tracker.email, "password": tracker.password})
    response = web.post(
        f"{tracker.base_url}/api-token-auth/",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    token = response.json()["token"]
    answer = web.get(f"{tracker.base_url}/images/", headers={"authorization": f"JWT {token}"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "researcher@lablink.test", "password": "wrong"}, "non_field_errors", "Unable"),
        ({"email": "someone@else.org", "password": "x"}, "non_field_errors", "Unable"),
        ({"email": "researcher@lablink.test"}, "password", "This field is required."),
        ({}, "email", "This field is required."),
    ],
)
def test_bad_login_is_a_400_with_the_reason(
    tracker: TrackerStandIn, body: dict[str, str], field: str, message: str, web: httpx.Client
) -> None:
    response = web.post(f"{tracker.base_url}/api-token-auth/", json=body)
    assert response.status_code == 400
    assert response.json()[field][0].startswith(message)


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer {token}", "Authentication credentials were not provided."),
        ("JWT", "Invalid Authorization header. No credentials provided."),
        ("JWT not.a.token", "Error decoding signature."),
        ("JWT {token}x", "Error decoding signature."),
    ],
)
def test_calls_without_a_valid_jwt_header_are_401(
    tracker: TrackerStandIn, header: str | None, detail: str, web: httpx.Client
) -> None:
    headers = (
        {} if header is None else {"Authorization": header.format(token=tracker.issue_token())}
    )
    for method, path in (("GET", "/images/"), ("OPTIONS", "/"), ("POST", "/imagesets/")):
        response = web.request(method, f"{tracker.base_url}{path}", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": detail}
        assert response.headers["WWW-Authenticate"] == 'JWT realm="api"'


def test_refresh_extends_a_session_until_the_token_or_the_limit_expires(web: httpx.Client) -> None:
    with TrackerStandIn(token_lifetime=60, refresh_limit=100) as tracker:
        refresh_url = f"{tracker.base_url}/api-token-refresh/"
        first = tracker.issue_token()
        tracker.advance_clock(50)
        response = web.post(refresh_url, json={"token": first})
        assert response.status_code == 200
        second = response.json()["token"]
        assert second != first
        tracker.advance_clock(20)  # t=70: the first token expired, the refreshed one did not
        with _client(tracker, first) as client:
            answer = client.get("/images/")
            assert answer.status_code == 401
            assert answer.json() == {"detail": "Signature has expired."}
        with _client(tracker, second) as client:
            assert client.get("/images/").status_code == 200
        expired = web.post(refresh_url, json={"token": first})
        assert expired.status_code == 400
        assert expired.json() == {"non_field_errors": ["Signature has expired."]}
        tracker.advance_clock(35)  # t=105: past the refresh limit counted from the login
        too_late = web.post(refresh_url, json={"token": second})
        assert too_late.status_code == 400
        assert too_late.json() == {"non_field_errors": ["Refresh has expired."]}
        assert web.post(refresh_url, json={}).json() == {"token": ["This field is required."]}


# -- images ----------------------------------------------------------------------------------


def test_image_object_has_the_protocol_fields(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int
) -> None:
    image = api.get(f"/images/{image_id}/").json()
    for name in [
        "id",
        "number",
        "point",
        "folder",
        "description",
        "fov_size",
        "frame",
        "dwell_time",
        "depths",
        "mass_gain",
        "mass_offset",
        "time_bin",
        "x_coord",
        "y_coord",
        "sed",
        "project",
        "tissue",
        "section",
        "aperture",
        "run",
        "pngs",
        "overlays",
    ]:
        assert name in image, name
    assert image["number"] == "FOV1"
    assert image["folder"] == "FOV1"
    assert image["fov_size"] == 400.0
    assert image["frame"] == 32
    assert image["pngs"] == ["CD3", "CD45", "dsDNA"]
    assert image["run"]["label"] == "RUN-A"
    assert image["run"]["name"] == "tonsil run"
    assert image["channel_settings"] == {
        "CD45": {"channel": "CD45", "color": "Cyan", "hex": "#00FFFF", "intensity_higher": 40}
    }
    missing = api.get("/images/999/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}


def test_images_without_display_settings_have_no_settings_field(
    tracker: TrackerStandIn, api: httpx.Client
) -> None:
    run = tracker.add_run("RUN-B")
    plain = tracker.add_image(run, "FOV1", {"CD3": (143, _plane())}, 100.0, panel=None)
    assert "channel_settings" not in api.get(f"/images/{plain}/").json()


def test_image_list_pages_and_unpaged(tracker: TrackerStandIn, api: httpx.Client) -> None:
    run = tracker.add_run("MANY")
    ids = [
        tracker.add_image(run, f"FOV{n}", {"CD3": (143, _plane((4, 4)))}, 50.0)
        for n in range(1, 24)
    ]
    first = api.get("/images/").json()
    assert first["count"] == 23
    assert first["previous"] is None
    assert [image["id"] for image in first["results"]] == ids[:10]
    assert first["next"] == f"{tracker.base_url}/images/?limit=10&offset=10"
    seen, url = [], f"{tracker.base_url}/images/"
    while url:
        page = api.get(url).json()
        seen += [image["id"] for image in page["results"]]
        url = page["next"]
    assert seen == ids

    last = api.get("/images/", params={"limit": 5, "offset": 20, "run__label": "MANY"}).json()
    assert [image["id"] for image in last["results"]] == ids[20:]
    assert last["next"] is None
    assert last["previous"] == (f"{tracker.base_url}/images/?run__label=MANY&limit=5&offset=15")
    second = api.get("/images/", params={"limit": 5, "offset": 5}).json()
    assert second["previous"] == f"{tracker.base_url}/images/?limit=5"

    unpaged = api.get("/images/", params={"paging": "no"}).json()
    assert isinstance(unpaged, list)
    assert [image["id"] for image in unpaged] == ids


def test_image_filters(tracker: TrackerStandIn, api: httpx.Client) -> None:
    one = tracker.add_run("L1", "shared name")
    two = tracker.add_run("L2", "shared name")
    old = tracker.add_run("L3", "minisims run")
    a = tracker.add_image(one, "FOV1", {"x": (1, _plane((4, 4)))}, 10.0)
    b = tracker.add_image(one, "FOV2", {"x": (1, _plane((4, 4)))}, 10.0)
    c = tracker.add_image(two, "FOV1", {"x": (1, _plane((4, 4)))}, 10.0)
    d = tracker.add_image(old, "Point4", {"x": (1, _plane((4, 4)))}, 10.0)

    def ids(**params: str) -> list[int]:
        return [i["id"] for i in api.get("/images/", params={**params, "paging": "no"}).json()]

    assert ids(run__label="L1") == [a, b]
    assert ids(run__label="L1", number="FOV2") == [b]
    assert ids(run__name="shared name", number="FOV1") == [a, c]
    assert ids(number="Point4") == [d]
    assert ids(folder="Point4/RowNumber0/Depth_Profile0") == [d]
    assert ids(run__label="shared name", number="FOV1") == []
    assert ids(unknown_filter="ignored") == [a, b, c, d]


def test_put_image_json_updates_fields_and_checks_them(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int
) -> None:
    tissue = tracker.add_tissue("tonsil")
    response = api.put(
        f"/images/{image_id}/",
        json={"description": "renamed", "fov_size": 350, "tissue": tissue, "sed": None, "id": 77},
    )
    assert response.status_code == 200
    image = response.json()
    assert image["id"] == image_id
    assert image["description"] == "renamed"
    assert image["fov_size"] == 350.0
    assert image["tissue"] == {"id": tissue, "organ": "tonsil", "name": "tonsil"}
    assert api.get(f"/images/{image_id}/").json()["description"] == "renamed"

    bad_tissue = api.put(f"/images/{image_id}/", json={"tissue": 99})
    assert bad_tissue.status_code == 400
    assert bad_tissue.json() == {"tissue": ['Invalid pk "99" - object does not exist.']}
    bad_size = api.put(f"/images/{image_id}/", json={"fov_size": "wide"})
    assert bad_size.json() == {"fov_size": ["A valid number is required."]}
    wrong_type = api.put(f"/images/{image_id}/", content=b"x", headers={"Content-Type": "text/csv"})
    assert wrong_type.status_code == 415


def test_put_image_multipart_stores_the_sed_attachment(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    sed_png = imagecodecs.png_encode(_plane((16, 16)))
    response = api.put(
        f"/images/{image_id}/",
        data={"description": "with sed", "fov_size": "300"},
        files={"attachment": ("sed.png", sed_png, "image/png")},
    )
    assert response.status_code == 200
    assert response.json()["sed"] == "sed.png"
    assert response.json()["fov_size"] == 300.0
    signed = api.get("/download/", params={"path": "runs/RUN-A/FOV1/sed.png"}).json()["url"]
    assert web.get(signed).content == bytes(sed_png)


def test_conjugates_of_the_panel(tracker: TrackerStandIn, api: httpx.Client, image_id: int) -> None:
    conjugates = api.get(f"/images/{image_id}/conjugates/", params={"paging": "no"}).json()
    assert [(c["target"], c["mass"]) for c in conjugates] == [
        ("CD3", 143),
        ("CD45", 150),
        ("dsDNA", 89),
    ]
    run = tracker.add_run("NOPANEL")
    bare = tracker.add_image(run, "FOV1", {"CD3": (143, _plane())}, 10.0, panel=None)
    assert api.get(f"/images/{bare}/conjugates/", params={"paging": "no"}).json() == []
    paged = api.get(f"/images/{image_id}/conjugates/").json()
    assert paged["count"] == 3


# -- channels and signed URLs ----------------------------------------------------------------


def test_channel_url_serves_16_bit_grayscale_png_without_a_token(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    expected = tracker.image_channels(image_id)["CD45"]
    response = api.get(f"/images/{image_id}/channel_url/", params={"channel": "CD45"})
    url = response.json()["url"]
    assert url.startswith(f"{tracker.origin}/storage/")
    tracker.clear_requests()
    png = web.get(url)
    assert png.status_code == 200
    assert png.headers["Content-Type"] == "image/png"
    assert _png_header(png.content) == (32, 24, 16, 0)
    np.testing.assert_array_equal(imagecodecs.png_decode(png.content), expected)
    (entry,) = tracker.requests
    assert entry.signed and not entry.authorization and entry.status == 200


def test_signed_urls_ignore_but_record_a_token(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    url = api.get(f"/images/{image_id}/channel_url/", params={"channel": "dsDNA"}).json()["url"]
    tracker.clear_requests()
    assert web.get(url, headers={"Authorization": "JWT leaked"}).status_code == 200
    assert web.get(url).status_code == 200
    assert [(r.signed, r.authorization) for r in tracker.requests] == [(True, True), (True, False)]
    assert all("leaked" not in repr(r) for r in tracker.requests)


def test_signed_urls_expire_and_cannot_be_altered(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    url = api.get(f"/images/{image_id}/channel_url/", params={"channel": "CD3"}).json()["url"]
    other = url.replace("/pngs/CD3.png", "/pngs/CD45.png")
    forged = web.get(other)
    assert forged.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in forged.content
    unsigned = web.get(url.split("?")[0])
    assert unsigned.status_code == 403
    tracker.advance_clock(3601)
    expired = web.get(url)
    assert expired.status_code == 400
    assert b"<Code>ExpiredToken</Code>" in expired.content


def test_channel_url_for_unknown_channel_or_image(api: httpx.Client, image_id: int) -> None:
    missing = api.get(f"/images/{image_id}/channel_url/", params={"channel": "CD99"})
    assert missing.status_code == 404
    assert "CD99" in missing.json()["detail"]
    assert api.get("/images/404/channel_url/", params={"channel": "CD3"}).status_code == 404
    no_name = api.get(f"/images/{image_id}/channel_url/")
    assert no_name.status_code == 400
    assert no_name.json() == {"channel": ["This field is required."]}


def test_channel_names_with_spaces_round_trip(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    run = tracker.add_run("SPACES")
    data = _plane()
    image = tracker.add_image(run, "FOV1", {"Granzyme B": (160, data)}, 10.0)
    url = api.get(f"/images/{image}/channel_url/", params={"channel": "Granzyme B"}).json()["url"]
    np.testing.assert_array_equal(imagecodecs.png_decode(web.get(url).content), data)


def test_upload_channel_png_and_tiff(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    mask = _plane()
    response = api.post(
        f"/images/{image_id}/upload_channel/",
        files={"attachment": ("cell_boundaries.png", imagecodecs.png_encode(mask), "image/png")},
    )
    assert response.status_code == 200
    assert "cell_boundaries" in response.json()["pngs"]
    np.testing.assert_array_equal(tracker.image_channels(image_id)["cell_boundaries"], mask)

    buffer = io.BytesIO()
    probability = RNG.random((24, 32)).astype(np.float32)
    tifffile.imwrite(buffer, probability)
    response = api.post(
        f"/images/{image_id}/upload_channel/",
        files={"attachment": ("tumour prob.tiff", buffer.getvalue(), "image/tiff")},
    )
    assert response.status_code == 200
    np.testing.assert_array_equal(tracker.image_channels(image_id)["tumour prob"], probability)
    url = api.get(f"/images/{image_id}/channel_url/", params={"channel": "cell_boundaries"})
    np.testing.assert_array_equal(imagecodecs.png_decode(web.get(url.json()["url"]).content), mask)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"attachment": ("big.png", imagecodecs.png_encode(np.zeros((8, 8), np.uint16)))}, "8x8"),
        ({"attachment": ("mask.jpg", b"\xff\xd8")}, "Unsupported file type"),
        ({"attachment": ("mask.png", b"not a png")}, "not a readable PNG"),
        ({"other": ("mask.png", b"x")}, "No file was submitted."),
    ],
)
def test_upload_channel_refuses_bad_files(
    api: httpx.Client, image_id: int, files: dict[str, Any], message: str
) -> None:
    response = api.post(f"/images/{image_id}/upload_channel/", files=files)
    assert response.status_code == 400
    assert message in response.json()["attachment"][0]


def test_upload_channel_needs_multipart(api: httpx.Client, image_id: int) -> None:
    response = api.post(f"/images/{image_id}/upload_channel/", json={"attachment": "x"})
    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "application/json" in request.'}


# -- downloads and MIBItiff uploads ----------------------------------------------------------


def test_summed_image_download_is_a_mibitiff_of_the_channels(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int, web: httpx.Client
) -> None:
    image = api.get(f"/images/{image_id}/").json()
    path = f"{image['run']['path']}/{image['folder']}/summed_image.tiff"
    url = api.get("/download/", params={"path": path}).json()["url"]
    response = web.get(url)
    assert response.headers["Content-Type"] == "image/tiff"
    channels = tracker.image_channels(image_id)
    with tifffile.TiffFile(io.BytesIO(response.content)) as tif:
        names = [page.tags.valueof("PageName") for page in tif.pages]
        assert names == ["CD3 (143)", "CD45 (150)", "dsDNA (89)"]
        for page in tif.pages:
            description = json.loads(page.tags.valueof("ImageDescription"))
            assert page.tags.valueof("Software").startswith("IonpathMIBI")
            assert page.tags.valueof("ResolutionUnit") == tifffile.RESUNIT.CENTIMETER
            numerator, denominator = page.tags.valueof("XResolution")
            assert numerator / denominator == pytest.approx(32 * 1e4 / 400.0)
            assert description["mibi.run"] == "tonsil run"
            assert description["mibi.fov_id"] == "FOV1"
            assert description["mibi.fov_name"] == "Tonsil_R1C1"
            np.testing.assert_array_equal(page.asarray(), channels[description["channel.target"]])


def test_download_of_unknown_paths(api: httpx.Client, image_id: int) -> None:
    missing = api.get("/download/", params={"path": "runs/RUN-A/FOV9/summed_image.tiff"})
    assert missing.status_code == 404
    assert "FOV9" in missing.json()["detail"]
    assert api.get("/download/").json() == {"path": ["This field is required."]}


def _upload(api: httpx.Client, web: httpx.Client, run_id: int, tiff: bytes) -> httpx.Response:
    signed = api.get("/upload_mibitiff/sign_tiff_url/", params={"run_id": run_id}).json()
    put = web.put(signed["url"], content=tiff, headers={"Content-Type": "image/tiff"})
    assert put.status_code == 200
    return api.post("/upload_mibitiff/", json={"location": signed["location"], "run_id": run_id})


def test_mibitiff_upload_fills_the_run_image_of_its_folder(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    run = tracker.add_run("UPLOADS", "upload run", fovs=["FOV1", "FOV2"])
    listed = api.get("/images/", params={"run__label": "UPLOADS", "paging": "no"}).json()
    fov2 = next(image["id"] for image in listed if image["number"] == "FOV2")
    assert next(image["pngs"] for image in listed if image["id"] == fov2) == []
    planes = [_plane((20, 20)), _plane((20, 20))]
    description = {
        "mibi.run": "upload run",
        "mibi.fov_id": "FOV2",
        "mibi.fov_name": "tonsil",
        "mibi.folder": "FOV2",
        "mibi.dwell": 2.0,
    }
    tiff = _mibitiff(
        [(143, "CD3", planes[0]), (89, "dsDNA", planes[1])],
        description,
        sed=np.zeros((20, 20), np.uint8),
    )

    response = _upload(api, web, run, tiff)
    assert response.status_code == 200
    assert response.json()["image_id"] == fov2
    image = api.get(f"/images/{fov2}/").json()
    assert image["pngs"] == ["CD3", "dsDNA"]
    assert image["frame"] == 20
    assert image["fov_size"] == pytest.approx(400.0)
    assert image["description"] == "tonsil"
    assert image["dwell_time"] == 2.0
    assert image["sed"] == "sed.png"
    np.testing.assert_array_equal(tracker.image_channels(fov2)["CD3"], planes[0])
    path = "runs/UPLOADS/FOV2/summed_image.tiff"
    assert tracker.stored_file(path) == tiff

    again = _upload(api, web, run, tiff)  # a retried upload updates, never duplicates
    assert again.json()["image_id"] == fov2
    assert len(api.get("/images/", params={"run__label": "UPLOADS", "paging": "no"}).json()) == 2


def test_mibitiff_upload_of_a_version_0_1_file_creates_its_image(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    run = tracker.add_run("OLD", "minisims")
    description = {
        "mibi.run": "minisims",
        "mibi.description": "Point name",
        "mibi.folder": "Point3/RowNumber0/Depth_Profile0",
    }
    response = _upload(api, web, run, _mibitiff([(89, "dsDNA", _plane((8, 8)))], description))
    image = api.get(f"/images/{response.json()['image_id']}/").json()
    assert image["number"] == "Point3"
    assert image["folder"] == "Point3/RowNumber0/Depth_Profile0"
    assert image["description"] == "Point name"


def test_mibitiff_upload_failures(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    run = tracker.add_run("CHECKS", "the run")
    wrong_run = _mibitiff(
        [(89, "dsDNA", _plane((8, 8)))], {"mibi.run": "other", "mibi.folder": "FOV1"}
    )
    response = _upload(api, web, run, wrong_run)
    assert response.status_code == 400
    assert "'other'" in response.json()["detail"] and "'the run'" in response.json()["detail"]

    plain = io.BytesIO()
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint16))
    not_mibi = _upload(api, web, run, plain.getvalue())
    assert not_mibi.status_code == 400
    assert "not a MIBItiff" in not_mibi.json()["detail"]

    never_put = api.post("/upload_mibitiff/", json={"location": "uploads/x.tiff", "run_id": run})
    assert never_put.json() == {"location": ["No file has been uploaded to this location."]}
    assert api.post("/upload_mibitiff/", json={"location": "x"}).json() == {
        "run_id": ["This field is required."]
    }
    assert api.get("/upload_mibitiff/sign_tiff_url/", params={"run_id": 999}).status_code == 404


def test_signed_upload_url_needs_tiff_content_type_and_no_token(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    run = tracker.add_run("PUTS")
    signed = api.get("/upload_mibitiff/sign_tiff_url/", params={"run_id": run}).json()
    assert signed["location"].startswith("uploads/PUTS/")
    wrong = web.put(signed["url"], content=b"II*\x00", headers={"Content-Type": "image/png"})
    assert wrong.status_code == 403
    tracker.clear_requests()
    right = web.put(signed["url"], content=b"II*\x00", headers={"Content-Type": "image/tiff"})
    assert right.status_code == 200
    assert tracker.stored_file(signed["location"]) == b"II*\x00"
    assert [(r.method, r.signed, r.authorization) for r in tracker.requests] == [
        ("PUT", True, False)
    ]
    as_get = web.get(signed["url"])  # signed for PUT only
    assert as_get.status_code == 403


# -- runs and image sets ---------------------------------------------------------------------


def test_runs_listing_with_filters_and_paging(tracker: TrackerStandIn, api: httpx.Client) -> None:
    first = tracker.add_run("R-1", "alpha", fovs=["FOV1", "FOV2"])
    tracker.add_run("R-2", "alpha")
    tracker.add_run("R-3", "beta")
    tracker.add_image(first, "FOV1", {"CD3": (143, _plane((4, 4)))}, 10.0)

    page = api.get("/runs/", params={"name": "alpha"}).json()
    assert page["count"] == 2
    assert [run["label"] for run in page["results"]] == ["R-1", "R-2"]
    (run,) = api.get("/runs/", params={"label": "R-1", "paging": "no"}).json()
    for name in [
        "id",
        "name",
        "label",
        "path",
        "xml",
        "fov_size",
        "instrument",
        "project",
        "run_date",
        "imageset",
    ]:
        assert name in run, name
    assert run["instrument"]["id"] >= 1
    assert [(i["number"], i["pngs"]) for i in run["imageset"]["images"]] == [
        ("FOV1", ["CD3"]),
        ("FOV2", []),
    ]
    assert all(isinstance(i["id"], int) for i in run["imageset"]["images"])
    assert api.get("/runs/", params={"name": "alpha", "label": "R-3", "paging": "no"}).json() == []
    assert api.get(f"/runs/{first}/").json()["label"] == "R-1"


def test_creating_a_run_from_its_xml_makes_one_image_per_fov(
    tracker: TrackerStandIn, api: httpx.Client
) -> None:
    xml = b'<Run name="new run"><Fov name="tonsil"/><Fov name="spleen"/><Fov/></Run>'
    fields = {
        "instrument": "1",
        "slides": "4,5",
        "label": "NEW-1",
        "fov_size": "500",
        "description": "from xml",
        "operator": "",
        "user_run_date": "2024-02-03T00:00:00",
    }
    response = api.post("/runs/", data=fields, files={"xml": ("run.xml", xml, "application/xml")})
    assert response.status_code == 201
    run = response.json()
    assert run["name"] == "new run"
    assert run["run_date"] == "2024-02-03"
    assert run["slide_ids"] == [{"id": 4}, {"id": 5}]
    assert run["fov_size"] == 500.0
    images = api.get("/images/", params={"run__label": "NEW-1", "paging": "no"}).json()
    assert [(i["number"], i["folder"], i["description"]) for i in images] == [
        ("FOV1", "FOV1", "tonsil"),
        ("FOV2", "FOV2", "spleen"),
        ("FOV3", "FOV3", "FOV3"),
    ]

    again = api.post("/runs/", data=fields, files={"xml": ("run.xml", xml, "application/xml")})
    assert again.status_code == 400
    assert again.json() == {"label": ["run with this label already exists."]}
    no_xml = api.post("/runs/", data={**fields, "label": "NEW-2"}, files={"other": ("a", b"")})
    assert no_xml.json() == {"xml": ["No file was submitted."]}
    bad_instrument = api.post(
        "/runs/",
        data={**fields, "label": "NEW-3", "instrument": "42"},
        files={"xml": ("r.xml", xml)},
    )
    assert bad_instrument.json() == {"instrument": ['Invalid pk "42" - object does not exist.']}


def test_copy_run_round_trip_through_the_run_xml(
    tracker: TrackerStandIn, api: httpx.Client, web: httpx.Client
) -> None:
    """What the reference client's copy_run does: read the run, fetch its XML, post a copy."""
    tracker.add_run("MINI", "minisims", fovs=["Point1", "Point2"])
    (run,) = api.get("/runs/", params={"label": "MINI", "paging": "no"}).json()
    url = api.get("/download/", params={"path": f"{run['path']}/{run['xml']}"}).json()["url"]
    xml = web.get(url).content
    fields = {
        "instrument": str(run["instrument"]["id"]),
        "slides": ",".join(str(s["id"]) for s in run["slide_ids"]),
        "label": "MINI-COPY",
        "fov_size": str(run["fov_size"]),
        "user_run_date": f"{run['run_date']}T00:00:00",
    }
    copy = api.post("/runs/", data=fields, files={"xml": (run["filename"], xml, "application/xml")})
    assert copy.status_code == 201
    assert copy.json()["name"] == "minisims"
    copied = api.get("/images/", params={"run__label": "MINI-COPY", "paging": "no"}).json()
    assert [(i["number"], i["folder"]) for i in copied] == [
        ("Point1", "Point1/RowNumber0/Depth_Profile0"),
        ("Point2", "Point2/RowNumber0/Depth_Profile0"),
    ]


def test_imagesets(tracker: TrackerStandIn, api: httpx.Client, image_id: int) -> None:
    project = tracker.add_project("lab")
    body = {"images": [image_id], "name": "set", "project": project, "description": None}
    created = api.post("/imagesets/", json=body)
    assert created.status_code == 201
    imageset = created.json()
    assert imageset["images"] == [image_id]
    assert imageset["project"] == project
    assert api.get(f"/imagesets/{imageset['id']}/").json() == imageset
    assert api.delete(f"/imagesets/{imageset['id']}/").status_code == 204
    assert api.get(f"/imagesets/{imageset['id']}/").status_code == 404
    unknown = api.post("/imagesets/", json={**body, "images": [12345]})
    assert unknown.json() == {"images": ['Invalid pk "12345" - object does not exist.']}
    assert api.post("/imagesets/", json={**body, "name": ""}).json() == {
        "name": ["This field is required."]
    }


# -- routing ---------------------------------------------------------------------------------


def test_routing_slash_redirects_405_and_unknown_paths(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int
) -> None:
    redirect = api.get("/images", params={"number": "FOV1"})
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"{tracker.base_url}/images/?number=FOV1"
    not_allowed = api.delete(f"/images/{image_id}/")
    assert not_allowed.status_code == 405
    assert not_allowed.json() == {"detail": 'Method "DELETE" not allowed.'}
    unknown = api.get("/slides/")
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"] == "text/html"
    options = api.options(f"/images/{image_id}/")
    assert options.status_code == 200
    assert options.headers["Allow"] == "GET, OPTIONS, PUT"


def test_a_prefix_moves_the_api_but_not_storage(web: httpx.Client) -> None:
    with TrackerStandIn(prefix="/backend/") as tracker:
        assert tracker.base_url.endswith("/backend")
        run = tracker.add_run("P")
        image = tracker.add_image(run, "FOV1", {"CD3": (143, _plane())}, 10.0)
        with _client(tracker) as api:
            url = api.get(f"/images/{image}/channel_url/", params={"channel": "CD3"}).json()["url"]
            assert url.startswith(f"{tracker.origin}/storage/")
            assert web.get(url).status_code == 200
            outside = web.get(f"{tracker.origin}/images/", headers=api.headers)
            assert outside.status_code == 404


def test_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        TrackerStandIn(host="0.0.0.0")


def test_stopping_refuses_new_and_kept_alive_connections() -> None:
    tracker = TrackerStandIn().start()
    with _client(tracker) as api:
        assert api.options("/").status_code == 200
        tracker.stop()
        with pytest.raises(httpx.TransportError):
            api.options("/")


# -- faults and the request log --------------------------------------------------------------


def test_fail_next_gives_503s_then_normal_answers(
    tracker: TrackerStandIn, api: httpx.Client
) -> None:
    tracker.faults.retry_after = 2
    tracker.faults.fail_next(2, path_contains="/images/")
    assert api.options("/").status_code == 200  # not matched: answered normally
    statuses = [api.get("/images/") for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["Retry-After"] == "2"
    assert [(f.kind, f.path) for f in tracker.faults.injected] == [("503", "/images/")] * 2


def test_dropped_and_lost_responses(
    tracker: TrackerStandIn, api: httpx.Client, image_id: int
) -> None:
    tracker.faults.fail_next(1, "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/images/")
    assert api.get("/images/").status_code == 200

    tracker.lose_next_responses(1, path_contains="upload_channel")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(
            f"/images/{image_id}/upload_channel/",
            files={"attachment": ("lost.png", imagecodecs.png_encode(_plane()), "image/png")},
        )
    assert "lost" in tracker.image_channels(image_id)  # processed although never answered
    assert [r.status for r in tracker.requests if "upload_channel" in r.path] == [None]


def test_slow_replies_trip_client_timeouts(tracker: TrackerStandIn) -> None:
    tracker.faults.slow_seconds = 3.0
    tracker.faults.fail_next(1, "slow")
    with _client(tracker) as api:
        with pytest.raises(httpx.ReadTimeout):
            api.get("/images/", timeout=0.2)
        assert api.get("/images/").status_code == 200


def test_seeded_fault_rate_is_reproducible() -> None:
    def statuses() -> list[int]:
        with TrackerStandIn() as tracker, _client(tracker) as api:
            tracker.faults.seed = 11
            tracker.faults.rate = 0.4
            return [api.options("/").status_code for _ in range(30)]

    first, second = statuses(), statuses()
    assert first == second
    assert 0 < first.count(503) < 30
    assert set(first) == {200, 503}


def test_request_log_records_token_presence_never_the_token(
    tracker: TrackerStandIn, image_id: int, web: httpx.Client
) -> None:
    token = tracker.issue_token()
    tracker.clear_requests()
    with _client(tracker, token) as api:
        api.get(f"/images/{image_id}/")
    web.post(
        f"{tracker.base_url}/api-token-auth/",
        json={"email": tracker.email, "password": tracker.password},
    )
    log = tracker.requests
    assert [(r.method, r.path, r.authorization, r.status) for r in log] == [
        ("GET", f"/images/{image_id}/", True, 200),
        ("POST", "/api-token-auth/", False, 200),
    ]
    assert token not in repr(log) and tracker.password not in repr(log)


# -- demo --------------------------------------------------------


def test_demo_run_has_a_sparse_multichannel_panel(
    tracker: TrackerStandIn, api: httpx.Client
) -> None:
    demo = tracker.seed_demo(size=96, fovs=2)
    assert len(demo["channels"]) >= 20
    (run,) = api.get("/runs/", params={"label": demo["run"]["label"], "paging": "no"}).json()
    assert [i["number"] for i in run["imageset"]["images"]] == ["FOV1", "FOV2"]
    image = api.get(f"/images/{demo['images'][0]['id']}/").json()
    assert len(image["pngs"]) == len(demo["channels"])
    assert set(image["channel_settings"]) == set(image["pngs"])
    counts = tracker.image_channels(image["id"])
    dsdna = counts["dsDNA"]
    assert dsdna.dtype == np.uint16 and dsdna.shape == (96, 96)
    assert dsdna.mean() < 5 and (dsdna == 0).mean() > 0.3 and dsdna.max() > 5
    # cell-type markers are sparse and not everywhere the same
    assert counts["CD8"].mean() < counts["dsDNA"].mean()
    assert image["fov_size"] == pytest.approx(demo["fov_size_um"])
