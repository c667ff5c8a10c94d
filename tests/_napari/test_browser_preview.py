"""The browser's pyramids, paging, thumbnails, details and channel picker, and its state after a
failed connection: in a real viewer (Xvfb) against the stand-in servers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_lablink._napari.browser.widget import BrowserWidget
from napari_lablink.client.uri import parse_uri
from napari_lablink.profiles import Profile, ProfileStore
from napari_lablink.testing import MikroStandIn, TrackerStandIn

pytestmark = pytest.mark.viewer

WAIT_MS = 20_000
SLIDE = (np.arange(2 * 256 * 256, dtype=np.uint16) % 977).reshape(2, 1, 1, 256, 256)
CHANNELS = [f"M{n}" for n in range(12)]


@pytest.fixture(scope="module")
def mikro() -> Iterator[MikroStandIn]:
    with MikroStandIn() as stand_in:
        for name in ("slide A", "slide B"):
            stand_in.add_image(
                SLIDE,
                name,
                pixel_size=(0.2, 0.25, 0.5),
                channels=[{"name": "DAPI"}, {"name": "GFP"}],
                pyramid_levels=3,
            )
        for n in range(2):
            stand_in.add_image(SLIDE[:1, :, :, :32, :32], f"plain {n}")
        yield stand_in


@pytest.fixture(scope="module")
def tracker() -> Iterator[TrackerStandIn]:
    plane = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    with TrackerStandIn() as stand_in:
        stand_in.add_run("RUN-9", "many")
        stand_in.add_image(
            "RUN-9", "FOV1", {name: (100 + n, plane) for n, name in enumerate(CHANNELS)}, 400.0
        )
        yield stand_in


@pytest.fixture
def store(_isolated_config) -> ProfileStore:
    return ProfileStore(secrets=None)


def make_widget(make_napari_viewer, store: ProfileStore, page_size: int = 50) -> BrowserWidget:
    viewer = make_napari_viewer()
    widget = BrowserWidget(viewer, store=store, page_size=page_size)
    viewer.window.add_dock_widget(widget, name="Lablink browser")
    return widget


def connect(qtbot, widget: BrowserWidget, name: str, state: str = "connected") -> None:
    widget.select_profile(name)
    qtbot.mouseClick(widget.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.state(name) == state, timeout=WAIT_MS)
    if state == "connected":
        qtbot.waitUntil(lambda: not widget.loading and bool(widget.entries), timeout=WAIT_MS)


def add_mikro(store: ProfileStore, mikro: MikroStandIn, name: str = "m") -> None:
    url = f"http://{mikro.uri_authority}/mikro"
    store.save(Profile(name=name, kind="mikro", url=url, s3=mikro.s3_endpoint), token=mikro.token)


def test_a_pyramid_is_one_entry_and_paging_ends_on_the_last_page(
    qtbot, make_napari_viewer, mikro, store
) -> None:
    add_mikro(store, mikro)
    widget = make_widget(make_napari_viewer, store, page_size=2)
    connect(qtbot, widget, "m")
    assert [e.name for e in widget.entries] == ["slide A", "slide B"]
    assert widget.more_button.isEnabled() and "more below" in widget.where.text()
    qtbot.mouseClick(widget.more_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.loading and len(widget.entries) == 4, timeout=WAIT_MS)
    # Four images in pages of two: the second page is the last, and says so.
    assert [e.name for e in widget.entries] == ["slide A", "slide B", "plain 0", "plain 1"]
    assert widget.exhausted and not widget.more_button.isEnabled()
    assert widget.where.text().endswith("4 items")


def test_thumbnails_and_details_come_from_the_smallest_level(
    qtbot, make_napari_viewer, mikro, store
) -> None:
    add_mikro(store, mikro)
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "m")
    entry = widget.entries[0]
    qtbot.waitUntil(lambda: widget.preview_of(entry) is not None, timeout=WAIT_MS)
    found = widget.preview_of(entry)
    assert found.levels == 3 and found.thumbnail.shape == (64, 64, 3)  # 256 / 4
    assert found.thumbnail.dtype == np.uint8 and found.thumbnail.max() > 0
    assert not widget.results.topLevelItem(0).icon(0).isNull()
    widget.select_entry(0)
    details = {key: label.text() for key, label in widget.details.items()}
    assert details["channels"] == "DAPI, GFP"
    assert details["pixel size"] == "x 0.2 µm, y 0.25 µm, z 0.5 µm"
    assert details["size"] == "51.2 x 64 µm, 256 KB, pyramid of 3 levels"

    # The picker narrows Open to the checked channels with the URI's channels option.
    assert widget.channel_box.isVisibleTo(widget) and widget.checked_channels() == ["DAPI", "GFP"]
    assert widget.selected_uri() == entry.uri
    widget.check_channels(["GFP"])
    uri = parse_uri(widget.selected_uri())
    assert uri.option("channels") == "GFP" and uri.option("s3") == mikro.s3_endpoint
    widget.check_channels([])
    assert not widget.open_button.isEnabled()
    qtbot.mouseClick(widget.channels_all, Qt.MouseButton.LeftButton)
    assert widget.open_button.isEnabled() and widget.selected_uri() == entry.uri


def test_a_many_channel_fov_offers_its_channels(qtbot, make_napari_viewer, tracker, store) -> None:
    url = f"http://127.0.0.1:{tracker.port}"
    store.save(
        Profile(name="t", kind="mibi", url=url, email=tracker.email), password=tracker.password
    )
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "t")
    widget.select_entry(0)
    widget.browse_into()
    qtbot.waitUntil(lambda: not widget.loading and len(widget.entries) == 1, timeout=WAIT_MS)
    widget.select_entry(0)
    assert widget.details["channels"].text().startswith("12: M0, M1")
    assert widget.channel_list.count() == 12
    widget.check_channels(["M3", "M7"])
    assert parse_uri(widget.selected_uri()).option("channels") == "M3,M7"
    # One channel listed inside the FOV opens alone.
    widget.browse_into()
    qtbot.waitUntil(lambda: not widget.loading and len(widget.entries) == 12, timeout=WAIT_MS)
    widget.select_entry([e.name for e in widget.entries].index("M5"))
    assert parse_uri(widget.selected_uri()).option("channels") == "M5"
    assert not widget.channel_box.isVisibleTo(widget)


def test_a_failed_connection_leaves_no_listing_behind(
    qtbot, make_napari_viewer, mikro, store
) -> None:
    add_mikro(store, mikro)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "m")
    assert widget.results.topLevelItemCount() == 4
    # The same profile, now pointing at a dead port: reconnecting fails and lists nothing.
    store.save(Profile(name="m", kind="mikro", url=f"http://127.0.0.1:{port}"), replaces="m")
    widget.refresh_profiles()
    connect(qtbot, widget, "m", state="failed")
    assert widget.entries == [] and widget.results.topLevelItemCount() == 0
    assert not widget.more_button.isEnabled() and widget.where.text() == ""


def test_the_listing_keeps_room_in_a_docked_layout(make_napari_viewer, store) -> None:
    widget = make_widget(make_napari_viewer, store)
    row = widget.results.iconSize().height()
    assert widget.results.minimumHeight() >= 5 * row
