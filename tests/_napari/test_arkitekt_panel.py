"""The browser's "Add Arkitekt deployment" in a real viewer (Xvfb): code and approval URL shown,
approval in lok's frontend, granted services listed and the deployment connected; every failure
a message in the panel."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from qtpy.QtCore import Qt

from napari_lablink._napari.browser.arkitekt_panel import ArkitektPanel
from napari_lablink._napari.browser.widget import BrowserWidget
from napari_lablink.profiles import ProfileStore
from napari_lablink.testing import MikroStandIn
from napari_lablink.testing.arkitekt import ArkitektStandIn, JWTVerifier, SigningKey

pytestmark = pytest.mark.viewer

WAIT_MS = 20_000


class Clock:
    """lok's clock, moved by hand to let a code expire (mikro checks tokens on the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[MikroStandIn, SigningKey]]:
    key = SigningKey()
    verifier = JWTVerifier({key.kid: key.public_key})
    with MikroStandIn(token_check=lambda generation, header: verifier.problem(header)) as mikro:
        mikro.seed_demo()
        yield mikro, key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lok(lab, clock: Clock) -> Iterator[ArkitektStandIn]:
    mikro, key = lab
    with ArkitektStandIn(
        mikro_url=f"{mikro.base_url}/mikro",
        s3_url=mikro.s3_endpoint,
        signing_key=key,
        clock=clock,
        deployment_name="Test lab",
    ) as stand_in:
        yield stand_in


@pytest.fixture
def browser(make_napari_viewer, _isolated_config) -> BrowserWidget:
    viewer = make_napari_viewer()
    widget = BrowserWidget(viewer, store=ProfileStore(secrets=None))
    viewer.window.add_dock_widget(widget, name="Lablink browser")
    return widget


def start(qtbot, browser: BrowserWidget, address: str) -> ArkitektPanel:
    """Buttons of the panel are clicked with click(): the viewer is never shown in tests, so a
    panel shown later has no laid-out size for a mouse click to land in."""
    qtbot.mouseClick(browser.arkitekt_button, Qt.MouseButton.LeftButton)
    panel = browser.arkitekt
    assert not panel.isHidden()
    panel.host.setText(address)
    panel.login_button.click()
    return panel


def wait_for_code(qtbot, panel: ArkitektPanel) -> str:
    qtbot.waitUntil(lambda: panel.prompt is not None, timeout=WAIT_MS)
    assert panel.prompt is not None
    return panel.prompt.code


def wait_for_end(qtbot, panel: ArkitektPanel) -> str:
    qtbot.waitUntil(lambda: not panel.waiting, timeout=WAIT_MS)
    return panel.message.text()


def test_approve_in_the_browser_lists_services_and_connects(
    qtbot, browser: BrowserWidget, lok: ArkitektStandIn, lab
) -> None:
    mikro, _ = lab
    panel = start(qtbot, browser, lok.url)
    code = wait_for_code(qtbot, panel)
    assert len(code) == 8 and panel.code.text() == code
    assert f"{lok.url}/configure/{code}" in panel.url.text()
    assert not panel.progress.isHidden() and panel.cancel_button.isEnabled()
    assert not panel.login_button.isEnabled()
    panel.open_button.click()
    assert panel.opened == [f"{lok.url}/configure/{code}"]  # LABLINK_NO_BROWSER: not shown
    httpx.post(lok.approve_route.format(code=code), json={"action": "approve"})
    assert wait_for_end(qtbot, panel) == "Logged in to Test lab."
    services = panel.services.text()
    assert f"mikro ({mikro.base_url}/mikro/graphql)" in services
    assert f"s3 ({mikro.s3_endpoint})" in services
    assert panel.progress.isHidden()
    qtbot.waitUntil(lambda: browser.state("Test lab") == "connected", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not browser.loading and bool(browser.entries), timeout=WAIT_MS)
    assert {"Cells 3D", "Tissue pyramid"} <= {e.name for e in browser.entries}
    (profile,) = browser.store.profiles()
    assert (profile.kind, profile.url, profile.has_token) == ("mikro", lok.url, False)
    (client,) = lok.clients()
    config = browser.store.path.read_text()
    assert client.client_token not in config and client.client_secret not in config


def test_denied(qtbot, browser: BrowserWidget, lok: ArkitektStandIn) -> None:
    panel = start(qtbot, browser, lok.url)
    lok.deny(wait_for_code(qtbot, panel))
    assert "The app was denied access in the browser" in wait_for_end(qtbot, panel)
    assert browser.store.profiles() == []


def test_expired(qtbot, browser: BrowserWidget, lok: ArkitektStandIn, clock: Clock) -> None:
    panel = start(qtbot, browser, lok.url)
    wait_for_code(qtbot, panel)
    clock.now += 301
    assert "Nobody approved the app in time" in wait_for_end(qtbot, panel)


def test_cancel(qtbot, browser: BrowserWidget, lok: ArkitektStandIn) -> None:
    panel = start(qtbot, browser, lok.url)
    wait_for_code(qtbot, panel)
    panel.cancel_button.click()
    assert wait_for_end(qtbot, panel) == "Login cancelled."
    assert panel.login_button.isEnabled() and not panel.open_button.isEnabled()


def test_required_service_not_granted(qtbot, browser: BrowserWidget, lok: ArkitektStandIn) -> None:
    panel = start(qtbot, browser, lok.url)
    lok.approve(wait_for_code(qtbot, panel), declined={"s3"})
    message = wait_for_end(qtbot, panel)
    assert "did not grant a required service: s3 (denied)" in message
    assert browser.store.profiles() == []


def test_unreachable_and_not_a_deployment(qtbot, browser: BrowserWidget, lab) -> None:
    mikro, _ = lab
    panel = start(qtbot, browser, "http://127.0.0.1:9")
    assert "could not be reached" in wait_for_end(qtbot, panel)
    assert panel.prompt is None
    panel.host.setText(mikro.base_url)
    panel.login_button.click()
    qtbot.waitUntil(lambda: "discovery document" in panel.message.text(), timeout=WAIT_MS)
    assert "HTTP 404" in panel.message.text()
