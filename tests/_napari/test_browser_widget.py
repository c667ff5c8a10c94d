"""The Lablink browser dock widget in a real viewer (Xvfb) against the stand-in servers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_lablink._napari.browser.widget import BrowserWidget
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink.profiles import Profile, ProfileStore
from napari_lablink.testing import MikroStandIn, TrackerStandIn

pytestmark = pytest.mark.viewer

STACK = np.arange(2 * 1 * 3 * 12 * 10, dtype=np.uint16).reshape(2, 1, 3, 12, 10)
PLANE = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16)
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def mikro() -> Iterator[MikroStandIn]:
    with MikroStandIn() as stand_in:
        for n in range(5):
            stand_in.add_image(
                STACK,
                f"tissue {n}",
                pixel_size=(0.2, 0.25, 0.5),
                channels=[{"name": "DAPI"}, {"name": "GFP"}],
            )
        for n in range(3):
            stand_in.add_representation(STACK, f"beads {n}", tags=["odd" if n % 2 else "even"])
        yield stand_in


@pytest.fixture(scope="module")
def tracker() -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        stand_in.add_run("RUN-1", "tonsil")
        stand_in.add_image(
            "RUN-1", "FOV1", {"CD45": (150, PLANE), "dsDNA": (89, PLANE)}, 400.0, description="R1C1"
        )
        yield stand_in


@pytest.fixture
def store(_isolated_config) -> ProfileStore:
    """Secrets in the (isolated) config file: CI has no keyring, and the reader reads it."""
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


def names(widget: BrowserWidget) -> list[str]:
    return [e.name for e in widget.entries]


def search(qtbot, widget: BrowserWidget, text: str) -> None:
    widget.search_box.setText(text)
    qtbot.keyClick(widget.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not widget.loading, timeout=WAIT_MS)


def test_connect_page_search_open_and_copy_mikro(
    qtbot, make_napari_viewer, mikro, store, notifications
) -> None:
    url = f"http://{mikro.uri_authority}/mikro"
    profile = Profile(name="lab mikro", kind="mikro", url=url, s3=mikro.s3_endpoint)
    store.save(profile, token=mikro.token)
    widget = make_widget(make_napari_viewer, store, page_size=2)
    assert widget.profile_names() == ["lab mikro"] and widget.state("lab mikro") == "disconnected"
    assert not widget.search_box.isEnabled()
    connect(qtbot, widget, "lab mikro")
    assert "connected" in widget.profile_list.item(0).text()
    assert names(widget) == ["tissue 0", "tissue 1"] and not widget.exhausted

    qtbot.mouseClick(widget.more_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(widget.entries) == 4 and not widget.loading, timeout=WAIT_MS)
    widget.load_more()
    qtbot.waitUntil(lambda: widget.exhausted, timeout=WAIT_MS)
    assert names(widget) == [f"tissue {n}" for n in range(5)]
    assert not widget.more_button.isEnabled()
    assert widget.results.topLevelItemCount() == 5

    search(qtbot, widget, "tissue 3")
    assert names(widget) == ["tissue 3"]
    widget.select_entry(0)
    details = {key: label.text() for key, label in widget.details.items()}
    assert details["name"] == "tissue 3"
    assert details["shape"] == "2 x 1 x 3 x 12 x 10 (c, t, z, y, x)"
    assert details["dtype"] == "uint16"
    entry = widget.selected_entry()
    assert details["uri"] == entry.uri

    qtbot.mouseClick(widget.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == entry.uri

    widget.results.itemDoubleClicked.emit(widget.results.topLevelItem(0), 0)
    assert wait_for_opens(60)
    layers = widget.viewer.layers
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    np.testing.assert_array_equal(np.asarray(layers["GFP"].data), STACK[1, 0])
    assert layers["DAPI"].metadata["lablink"]["uri"] == entry.uri.split("?")[0]
    assert notifications == []


def test_a_late_page_of_an_old_search_is_dropped(qtbot, make_napari_viewer, mikro, store) -> None:
    url = f"http://{mikro.uri_authority}/mikro"
    store.save(Profile(name="m", kind="mikro", url=url, s3=mikro.s3_endpoint), token=mikro.token)
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "m")
    mikro.faults.fail_next(1, "slow", methods=["POST"])  # the first search answers last
    try:
        widget.search("tissue 1")
        widget.search("tissue 2")
        qtbot.waitUntil(lambda: widget._workers.idle, timeout=WAIT_MS)
    finally:
        mikro.faults.clear()
    assert names(widget) == ["tissue 2"]
    assert widget.results.topLevelItemCount() == 1
    # Closing the dock widget closes the widget's own connections.
    server = widget._servers["m"]
    widget.close()
    assert server.closed and widget._servers == {}


def test_generation1_search_by_tag(qtbot, make_napari_viewer, mikro, store) -> None:
    url = f"http://{mikro.uri_authority}"
    store.save(Profile(name="old", kind="mikro", url=url, s3=mikro.s3_endpoint), token=mikro.token)
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "old")
    assert names(widget) == ["beads 0", "beads 1", "beads 2"] and widget.exhausted
    search(qtbot, widget, "#even")
    assert names(widget) == ["beads 0", "beads 2"]
    widget.select_entry(1)
    assert widget.details["tags"].text() == "even"
    widget.open_selected()
    assert wait_for_opens(60)
    assert len(widget.viewer.layers) == 2


def test_tracker_runs_fovs_channels(qtbot, make_napari_viewer, tracker, store) -> None:
    profile = Profile(
        name="tracker", kind="mibi", url=f"http://127.0.0.1:{tracker.port}", email=tracker.email
    )
    store.save(profile, password=tracker.password)
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "tracker")
    assert names(widget) == ["RUN-1 (tonsil)"]
    widget.select_entry(0)
    assert not widget.open_button.isEnabled() and widget.into_button.isEnabled()
    widget.results.itemDoubleClicked.emit(widget.results.topLevelItem(0), 0)
    qtbot.waitUntil(lambda: names(widget) == ["FOV1 (R1C1)"], timeout=WAIT_MS)
    assert widget.up_button.isEnabled()
    widget.select_entry(0)
    details = {key: label.text() for key, label in widget.details.items()}
    assert details["channels"] == "CD45, dsDNA"
    assert details["pixel size"] == "y 25 µm, x 25 µm"
    assert details["shape"] == "2 x 16 x 16 (c, y, x)"
    qtbot.mouseClick(widget.into_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: names(widget) == ["CD45", "dsDNA"], timeout=WAIT_MS)
    qtbot.mouseClick(widget.up_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: names(widget) == ["FOV1 (R1C1)"], timeout=WAIT_MS)
    widget.select_entry(0)
    qtbot.mouseClick(widget.open_button, Qt.MouseButton.LeftButton)
    assert wait_for_opens(60)
    assert [layer.name for layer in widget.viewer.layers] == ["CD45 (150)", "dsDNA (89)"]


def test_wrong_password_and_token_are_shown_in_the_widget(
    qtbot, make_napari_viewer, tracker, mikro, store, notifications
) -> None:
    url = f"http://127.0.0.1:{tracker.port}"
    store.save(
        Profile(name="tracker", kind="mibi", url=url, email=tracker.email),
        password="not-the-password",
    )
    mikro_url = f"http://{mikro.uri_authority}/mikro"
    store.save(
        Profile(name="mikro", kind="mikro", url=mikro_url, s3=mikro.s3_endpoint),
        token="not-the-token",
    )
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "tracker", state="failed")
    shown = widget.status.text()
    assert "Unable to log in with provided credentials." in shown and tracker.email in shown
    assert "not-the-password" not in shown
    assert "failed" in widget.profile_list.item(widget.profile_names().index("tracker")).text()
    assert not widget.search_box.isEnabled() and widget.entries == []

    connect(qtbot, widget, "mikro", state="failed")
    # The real generation-2 server's words for a token that is not a JWT.
    assert "refused the token (Error decoding token header)" in widget.status.text()
    assert "not-the-token" not in widget.status.text()
    # Back on the tracker profile, its own error is shown again.
    widget.select_profile("tracker")
    assert "Unable to log in" in widget.status.text()
    assert notifications == []  # no traceback notification from the workers

    # Fixing the password through the dialog connects.
    dialog = widget.edit_profile(store.get("tracker"))
    assert dialog.password.text() == "" and "stored" in dialog.password.placeholderText()
    dialog.password.setText(tracker.password)
    dialog.save()
    assert widget.state("tracker") == "disconnected"
    connect(qtbot, widget, "tracker")
    assert names(widget) == ["RUN-1 (tonsil)"]


def test_a_dead_server_is_shown_in_the_widget(
    qtbot, make_napari_viewer, store, notifications
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store.save(Profile(name="gone", kind="pims", url=f"http://127.0.0.1:{port}"))
    widget = make_widget(make_napari_viewer, store)
    connect(qtbot, widget, "gone", state="failed")
    assert f"127.0.0.1:{port}" in widget.status.text()
    assert notifications == []


def test_profiles_are_added_edited_and_removed_in_the_widget(
    qtbot, make_napari_viewer, store, _isolated_config
) -> None:
    widget = make_widget(make_napari_viewer, store)
    assert widget.profile_names() == [] and not widget.edit_button.isEnabled()
    dialog = widget.edit_profile(None)
    dialog.name.setText("new")
    dialog.kind.setCurrentIndex(dialog.kind.findData("mikro"))
    dialog.url.setText("ftp://nowhere")
    dialog.save()
    assert dialog.isVisible() and "neither http" in dialog.error.text()
    dialog.url.setText("http://127.0.0.1:8080/mikro")
    dialog.s3.setText("http://127.0.0.1:9000")
    dialog.token.setText("tok-VERY-SECRET")
    dialog.save()
    assert not dialog.isVisible()
    assert widget.profile_names() == ["new"]
    assert store.credentials("new").token == "tok-VERY-SECRET"
    assert (_isolated_config.stat().st_mode & 0o777) == 0o600

    edit = widget.edit_profile(store.get("new"))
    assert edit.token.text() == "" and "stored" in edit.token.placeholderText()
    assert edit.s3.text() == "http://127.0.0.1:9000"
    edit.name.setText("renamed")
    edit.save()
    assert widget.profile_names() == ["renamed"]
    assert store.credentials("renamed").token == "tok-VERY-SECRET"
    texts = [widget.profile_list.item(0).text(), widget.status.text()]
    assert all("tok-VERY-SECRET" not in text for text in texts)

    qtbot.mouseClick(widget.remove_button, Qt.MouseButton.LeftButton)
    assert widget.profile_names() == [] and store.profiles() == []


def test_the_plugin_menu_docks_the_browser(make_napari_viewer, store) -> None:
    store.save(Profile(name="p", kind="pims", url="http://127.0.0.1:5000"))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-lablink", "Lablink browser")
    assert isinstance(widget, BrowserWidget)
    assert widget.profile_names() == ["p"]


def test_the_dialog_shows_each_kind_its_own_fields_and_understands_graphql_urls(
    make_napari_viewer, store
) -> None:
    widget = make_widget(make_napari_viewer, store)
    dialog = widget.edit_profile(None)
    assert dialog.width() >= 460
    dialog.kind.setCurrentIndex(dialog.kind.findData("mibi"))
    assert dialog.fields() == ["email", "password"]
    assert not dialog.token.isVisible() and dialog.email.isVisible()
    dialog.kind.setCurrentIndex(dialog.kind.findData("pims"))
    assert not any(f.isVisible() for f in (dialog.token, dialog.password, dialog.s3))
    dialog.kind.setCurrentIndex(dialog.kind.findData("mikro"))
    assert dialog.token.isVisible() and dialog.s3.isVisible() and not dialog.email.isVisible()
    dialog.name.setText("copied")
    dialog.url.setText(" http://127.0.0.1:8080/mikro/graphql/ ")
    dialog.save()
    assert not dialog.isVisible()
    saved = store.get("copied")
    assert saved.url == "http://127.0.0.1:8080/mikro"
    assert saved.uri == "mikro+http://127.0.0.1:8080/mikro"
