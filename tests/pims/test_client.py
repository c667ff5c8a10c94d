"""The PIMS client against the real Cytomine PIMS 1.0.0: every pixel it reads, its failures.

Pixels are compared with tifffile's reading of the source files, level by level; the client must
only offer tiers PIMS serves without resampling (docs/protocols/pims.md), so any 8-bit rendering
or shifted region shows as a mismatch here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import dask
import httpx
import numpy as np
import pytest
import tifffile

from napari_lablink.client import outages
from napari_lablink.client.connection import connect
from napari_lablink.client.errors import (
    ClosedConnectionError,
    NotFoundError,
    ProtocolError,
    ServerError,
    ServerUnavailableError,
)
from napari_lablink.client.pims.read import decode_window
from napari_lablink.client.pims.server import PimsServer
from napari_lablink.client.pims.tiers import exact_tiers
from napari_lablink.testing._http import LoopbackHTTPServer
from napari_lablink.testing.pims.images import TestImage, write_multichannel
from napari_lablink.testing.pims.server import RealPims

pytestmark = [pytest.mark.pims, pytest.mark.timeout(900)]


def source_levels(image: TestImage) -> list[np.ndarray]:
    """The file's levels as (c, t, z, y, x), as the client lays them out."""
    with tifffile.TiffFile(image.path) as tif:
        levels = [level.asarray() for level in tif.series[0].levels]
    axes = image.axes
    out = []
    for level in levels:
        if image.rgb:  # YXS
            out.append(np.moveaxis(level, -1, 0)[:, None, None])
            continue
        for axis in "TZ":
            if axis not in axes:
                level = level[None]
        order = "".join(a for a in "TZ" if a not in axes) + axes
        out.append(level.transpose([order.index(a) for a in "CTZYX"]))
    return out


def open_remote(server: PimsServer, real_pims: RealPims, image: TestImage):
    return server.get(real_pims.uri(image.path))


# -- metadata ------------------------------------------------------------------------------------


def test_multichannel_metadata_comes_from_pims(server, real_pims, pims_images) -> None:
    image = pims_images["multichannel"]
    remote = open_remote(server, real_pims, image)
    assert remote.dims == ("c", "t", "z", "y", "x")
    assert remote.shape == (3, 1, 1, 300, 412)
    assert remote.dtype == np.uint16
    assert remote.name == "multichannel.ome.tif"
    assert remote.uri == real_pims.uri(image.path)
    assert [c.name for c in remote.channels] == ["DAPI", "GFP", "mCherry"]
    assert [c.color for c in remote.channels] == [(0, 0, 1), (0, 1, 0), (1, 0, 1)]
    assert remote.pixel_size == {"y": 0.325, "x": 0.325}
    assert not remote.is_rgb and not remote.multiscale
    (source,) = source_levels(image)
    # Small images have COMPLETE histograms: the bounds are the true range of each channel.
    assert [c.contrast_limits for c in remote.channels] == [
        (float(source[c].min()), float(source[c].max())) for c in range(3)
    ]
    # One window per channel: PIMS's tile of a plain file is the whole image.
    assert remote.levels[0].chunks == ((1, 1, 1), (1,), (1,), (300,), (412,))


def test_contrast_limits_are_read_without_pixels(server, real_pims, pims_images, monkeypatch):
    windows: list[Any] = []
    real_window = server.session.window
    monkeypatch.setattr(
        server.session, "window", lambda *a, **k: windows.append(a) or real_window(*a, **k)
    )
    remote = open_remote(server, real_pims, pims_images["pyramid"])
    assert windows == []
    # Large images get PIMS's FAST bounds: inside the true range.
    source = source_levels(pims_images["pyramid"])[0]
    for c, channel in enumerate(remote.channels):
        low, high = channel.contrast_limits
        assert source[c].min() <= low < high <= source[c].max()


def test_zt_stack_metadata(server, real_pims, pims_images) -> None:
    remote = open_remote(server, real_pims, pims_images["zt_stack"])
    assert remote.shape == (2, 3, 5, 200, 240)
    assert remote.pixel_size == {"z": 1.5, "y": 0.2, "x": 0.2}
    assert [c.name for c in remote.channels] == ["Lamin", "Tubulin"]
    # Without colours in the file PIMS suggests red, green, ...
    assert [c.color for c in remote.channels] == [(1, 0, 0), (0, 1, 0)]


def test_only_exactly_downsampled_tiers_become_levels(server, real_pims, pims_images) -> None:
    image = pims_images["pyramid"]
    info = httpx.get(f"{real_pims.base_url}/image/{real_pims.path(image.path)}/info").json()
    (spatial,) = [r for r in info["representations"] if r["role"] == "SPATIAL"]
    # 4100 x 3000: 2050 x 1500 and 1025 x 750 are exact; 512 x 375 and 256 x 187 are not.
    assert [t.level for t in exact_tiers(spatial["pyramid"]["tiers"])] == [0, 1, 2]
    remote = open_remote(server, real_pims, image)
    assert remote.server_metadata["levels"] == [0, 1, 2]
    assert [level.shape[-2:] for level in remote.levels] == [
        (3000, 4100),
        (1500, 2050),
        (750, 1025),
    ]
    for level in remote.levels:
        ys, xs = level.chunks[-2:]
        # Chunks are whole multiples of PIMS's 256 px tiles, except the partial edge.
        assert all(size % 256 == 0 for size in ys[:-1] + xs[:-1])
        assert set(ys[:-1] + xs[:-1]) == {512}
        assert level.chunks[:3] == ((1, 1), (1,), (1,))


def tier(level: int, width: int, height: int, tile: int = 256) -> dict[str, int]:
    return {
        "level": level,
        "width": width,
        "height": height,
        "tile_width": tile,
        "tile_height": tile,
    }


def test_exact_tiers_need_one_integer_factor_on_both_axes() -> None:
    tiers = [
        tier(2, 1000, 500),  # 4 on both axes
        tier(0, 4000, 2000),
        tier(1, 2000, 1000),
        tier(3, 500, 251),  # 8 wide, 7.97 high
        tier(4, 800, 400),  # 5 on both axes: exact, though not a power of two
        tier(5, 2000, 500),  # 2 wide, 4 high
    ]
    assert [t.level for t in exact_tiers(tiers)] == [0, 1, 2, 4]
    assert exact_tiers([]) == []


def test_chunks_are_whole_tiles_within_limits() -> None:
    (small_tiles,) = exact_tiers([tier(0, 1100, 600, tile=128)])
    assert small_tiles.chunks() == ((512, 88), (512, 512, 76))
    (big_tiles,) = exact_tiers([tier(0, 1100, 600, tile=1024)])
    assert big_tiles.chunks() == ((600,), (1024, 76))
    # A strip "tile" as wide as a huge plain image is cut to stay within PIMS's output limit.
    (strips,) = exact_tiers([tier(0, 20000, 300, tile=20000)])
    assert strips.chunks() == ((300,), (4096,) * 4 + (3616,))


# -- exact pixels ------------------------------------------------------------------------------


def test_multichannel_pixels_are_exact(server, real_pims, pims_images) -> None:
    image = pims_images["multichannel"]
    remote = open_remote(server, real_pims, image)
    (source,) = source_levels(image)
    np.testing.assert_array_equal(remote.levels[0].compute(), source)


def test_every_zt_plane_is_exact(server, real_pims, pims_images) -> None:
    image = pims_images["zt_stack"]
    remote = open_remote(server, real_pims, image)
    (source,) = source_levels(image)
    data = remote.levels[0].compute()
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, source)
    np.testing.assert_array_equal(remote.data.isel(c=1, t=2, z=4).values, source[1, 2, 4])


def test_pyramid_levels_are_exact(server, real_pims, pims_images) -> None:
    image = pims_images["pyramid"]
    remote = open_remote(server, real_pims, image)
    sources = source_levels(image)
    for number, level in enumerate(remote.levels):
        np.testing.assert_array_equal(level.compute(), sources[number], err_msg=f"level {number}")


def test_a_region_fetches_only_the_windows_it_covers(server, real_pims, pims_images, monkeypatch):
    image = pims_images["pyramid"]
    remote = open_remote(server, real_pims, image)
    windows: list[tuple] = []
    real_window = server.session.window

    def counting(path, level, region, **plane):
        windows.append((level, region, plane["channel"]))
        return real_window(path, level, region, **plane)

    monkeypatch.setattr(server.session, "window", counting)
    # Rows 1000..1100 and columns 1000..1100 lie across the chunk border at 1024 on both axes.
    block = remote.levels[0][1, 0, 0, 1000:1100, 1000:1100].compute()
    np.testing.assert_array_equal(block, source_levels(image)[0][1, 0, 0, 1000:1100, 1000:1100])
    assert sorted(windows) == [
        (0, (512, 512, 512, 512), 1),
        (0, (512, 1024, 512, 512), 1),
        (0, (1024, 512, 512, 512), 1),
        (0, (1024, 1024, 512, 512), 1),
    ]
    windows.clear()
    # The partial edge chunk of tier 2 (1025 x 750) is asked for in that tier's own pixels.
    edge = remote.levels[2][0, 0, 0, 700:, 1000:].compute()
    np.testing.assert_array_equal(edge, source_levels(image)[2][0, 0, 0, 700:, 1000:])
    assert sorted(windows) == [(2, (512, 512, 238, 512), 0), (2, (512, 1024, 238, 1), 0)]


def test_chunks_are_fetched_concurrently(server, real_pims, pims_images, monkeypatch) -> None:
    remote = open_remote(server, real_pims, pims_images["pyramid"])
    in_flight, most = 0, 0
    lock = threading.Lock()
    real_window = server.session.window

    def tracking(*args, **kwargs):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return real_window(*args, **kwargs)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(server.session, "window", tracking)
    with dask.config.set(scheduler="threads", num_workers=8):
        remote.levels[1][0].compute()
    assert most > 1


def test_rgb_pyramid_opens_as_rgb_and_is_exact(server, real_pims, pims_images) -> None:
    image = pims_images["rgb_pyramid"]
    remote = open_remote(server, real_pims, image)
    assert remote.is_rgb
    assert remote.dtype == np.uint8
    assert remote.shape == (3, 1, 1, 2000, 2600)
    assert [c.name for c in remote.channels] == ["R", "G", "B"]
    assert remote.pixel_size == {"y": 0.25, "x": 0.25}
    # 2600 x 2000 halves exactly three times (325 x 250); 162 x 125 is not exact.
    assert [level.shape[-2:] for level in remote.levels] == [
        (2000, 2600),
        (1000, 1300),
        (500, 650),
        (250, 325),
    ]
    # All three samples come in one window.
    assert all(level.chunks[0] == (3,) for level in remote.levels)
    sources = source_levels(image)
    for number, level in enumerate(remote.levels):
        np.testing.assert_array_equal(level.compute(), sources[number], err_msg=f"level {number}")


# -- failures ------------------------------------------------------------------------------------


def test_unknown_path_is_not_found_with_the_path(server, real_pims) -> None:
    uri = f"pims+http://127.0.0.1:{real_pims.port}/upload-missing/nothing.ome.tif"
    with pytest.raises(NotFoundError) as caught:
        server.get(uri)
    message = str(caught.value)
    assert "upload-missing/nothing.ome.tif" in message
    assert "HTTP 404" in message and "does not exist" in message
    assert f"pims+http://127.0.0.1:{real_pims.port}" in message


def test_region_errors_carry_pims_details(server, real_pims, pims_images) -> None:
    image = pims_images["zt_stack"]
    path = real_pims.path(image.path)
    with pytest.raises(ServerError) as caught:
        server.window(path, 0, (0, 1, 200, 240), channel=0, z=0, t=0, bits=16)
    message = str(caught.value)
    assert "HTTP 400" in message and "out of bounds" in message
    assert "level 0, top 0, left 1, 240 x 200 px" in message and path in message
    with pytest.raises(ServerError, match="No valid indexes for z_slices"):
        server.window(path, 0, (0, 0, 8, 8), channel=0, z=5, t=0, bits=16)


def test_a_resampled_answer_is_refused(real_pims, pims_images) -> None:
    """PIMS turns a window it must resample into 8-bit data with status 200: never pass it on."""
    image = pims_images["pyramid"]
    answer = httpx.post(
        f"{real_pims.base_url}/image/{real_pims.path(image.path)}/window.png",
        json={
            "region": {"top": 3, "left": 5, "width": 301, "height": 99},
            "level": 1,
            "channels": 1,
            "colormaps": "NONE",
            "bits": 16,
        },
        timeout=60,
    )
    assert answer.status_code == 200
    with pytest.raises(ProtocolError, match="uint8 instead of uint16: PIMS resampled it"):
        decode_window(answer, np.dtype(np.uint16), (49, 150), n_samples=1, fail=ProtocolError)


def test_server_down_before_opening() -> None:
    with connect("pims+http://127.0.0.1:9") as down:
        with pytest.raises(ServerUnavailableError) as caught:
            down.get("upload-1/slide.ome.tif")
    message = str(caught.value)
    assert "could not be reached" in message
    assert "pims+http://127.0.0.1:9" in message and "upload-1/slide.ome.tif" in message


def test_server_going_away_after_opening(pims_venv, tmp_path) -> None:
    """A window read after the server went away finds the outage: zeros at once, and one report
    whose cause names the server's state and the file."""
    image = write_multichannel(tmp_path / "alone.ome.tif")
    heard: list[outages.Outage] = []
    stop = outages.listen(heard.append)
    with RealPims([image.path], venv=pims_venv) as pims:
        client = connect(pims.uri(image.path))
        remote = client.get(pims.uri(image.path))
        np.testing.assert_array_equal(remote.levels[0][0].compute(), source_levels(image)[0][0])
    try:
        # The pool's kept-alive connection is cut too: the retry finds the port closed.
        assert not remote.levels[0][1].compute().any()
        assert not remote.levels[0][2].compute().any()
    finally:
        client.close()
        stop()
        outages.source(client.label).reset()
    (outage,) = heard
    assert isinstance(outage.cause, ServerUnavailableError)
    assert "could not be reached" in str(outage.cause)
    assert pims.path(image.path) in str(outage.cause)


class _NotPims(BaseHTTPRequestHandler):
    """Forwards GETs to the real PIMS but answers every window with an HTML page, as a captive
    portal or a misrouted proxy would; the real PIMS cannot produce this fault itself."""

    upstream = ""

    def do_GET(self) -> None:
        if self.path.startswith("/image/html/"):
            self._html()
            return
        answer = httpx.get(self.upstream + self.path, timeout=60)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._html()

    def _html(self) -> None:
        page = b"<html><body>Please log in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_pims(real_pims: RealPims) -> Iterator[str]:
    handler = type("Handler", (_NotPims,), {"upstream": real_pims.base_url})
    httpd = LoopbackHTTPServer("127.0.0.1", 0, handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"pims+http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_non_image_answers_are_protocol_errors(not_pims, real_pims, pims_images) -> None:
    path = real_pims.path(pims_images["multichannel"].path)
    with connect(not_pims) as client:
        remote = client.get(f"{not_pims}/{path}")  # metadata comes through unchanged
        with pytest.raises(ProtocolError) as caught:
            remote.levels[0][0].compute()
        assert "is text/html, not a PNG image" in str(caught.value)
        assert path in str(caught.value)
        with pytest.raises(ProtocolError, match="GET info answered text/html, not JSON"):
            client.get(f"{not_pims}/html/page.ome.tif")


def test_closed_connection_refuses_reads(real_pims, pims_images) -> None:
    image = pims_images["multichannel"]
    with connect(real_pims.uri(image.path)) as client:
        remote = client.get(real_pims.uri(image.path))
    with pytest.raises(ClosedConnectionError):
        remote.levels[0].compute()
