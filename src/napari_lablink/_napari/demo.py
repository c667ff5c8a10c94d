"""``napari-lablink demo``: every part of napari-lablink against stand-ins, in one napari window.

One process on 127.0.0.1: the stand-in mikro servers (both generations, S3 behind moto) behind
two stand-in Arkitekt deployments that approve at once (the demo logs in to them as a user would:
code, approval, granted services), the stand-in MIBItracker with demo data, the simulated
microscope, and napari showing a 3-D mikro image, a mikro pyramid (hidden: a far larger field
of view), the channels of a tracker image, the PSF widget acquiring, and the browser connected
to every demo server. With ``screenshot`` the demo waits until all of it has loaded and the PSF
table has numbers, saves the window and exits, which is how CI and headless machines check the
main job.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

#: Where the demo images start on the x axis: right of the PSF widget's XY, XZ and YZ panels.
_PSF_PANELS_WIDTH_UM = 45.0
_LOAD_TIMEOUT = 180.0


def run_demo(screenshot: str | None = None) -> int:
    import napari

    with ExitStack() as stack:
        servers = _start_servers(stack)
        viewer = napari.Viewer(title="napari-lablink demo")
        viewer.window.resize(1700, 1050)
        stack.callback(viewer.close)
        failed = _open_images(viewer, servers)
        psf = _add_psf_widget(viewer, stack)
        browser = _add_browser(viewer, servers)
        print("napari-lablink demo:", flush=True)
        for name, uri in servers["uris"].items():
            print(f"  {name}: {uri}", flush=True)
        if screenshot is None:
            napari.run()
            return 1 if failed else 0
        problem = _wait_until_loaded(viewer, psf, browser) or (
            "could not open " + ", ".join(failed) if failed else None
        )
        if problem:
            print(f"demo: {problem}", file=sys.stderr, flush=True)
            return 1
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(path), canvas_only=False)
        print(f"demo: screenshot saved to {path}", flush=True)
        return 0
    return 1  # unreachable; keeps type checkers content


def _start_servers(stack: ExitStack) -> dict[str, Any]:
    from napari_lablink.profiles import Profile, ProfileStore
    from napari_lablink.testing import TrackerStandIn

    # The demo's own servers go where a user's would: a servers.toml of its own (never the
    # user's), with the secrets in that file rather than in the user's keyring; its Arkitekt
    # logins are kept beside it.
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lablink-demo-")))
    os.environ["LABLINK_CONFIG"] = str(folder / "servers.toml")
    mikro, lab = _start_lab(stack)
    tracker = stack.enter_context(TrackerStandIn())
    mikro_ids = mikro.seed_demo()
    tracker_demo = tracker.seed_demo(size=512, fovs=3)
    store = ProfileStore(secrets=None)
    store.save(Profile(name="mikro (images)", kind="mikro", url=lab["G2b"]))
    store.save(Profile(name="mikro (representations)", kind="mikro", url=lab["G1"]))
    store.save(
        Profile(name="MIBItracker", kind="mibi", url=tracker.base_url, email=tracker.email),
        password=tracker.password,
    )
    first_image = tracker_demo["images"][0]["id"]
    gen1, gen2 = f"mikro+{lab['G1']}", f"mikro+{lab['G2b']}"
    uris = {
        "Cells 3D (mikro, generation 1)": f"{gen1}/representation/{mikro_ids['cells_gen1']}",
        "Nuclei labels (mikro, generation 1)": (
            f"{gen1}/representation/{mikro_ids['nuclei_labels_gen1']}"
        ),
        "Tissue pyramid (mikro, generation 2)": f"{gen2}/image/{mikro_ids['tissue_pyramid']}",
        "Tonsil FOV1 (MIBItracker)": f"mibi+{tracker.base_url}/images/{first_image}",
    }
    return {"store": store, "uris": uris}


def _start_lab(stack: ExitStack) -> tuple[Any, dict[str, str]]:
    """mikro behind two Arkitekt deployments (generation 2 and 1) that approve at once, and the
    login to both, shown in the terminal as a user would see it."""
    from functools import partial

    from napari_lablink.client.arkitekt.deployments import console_prompt, deployments
    from napari_lablink.testing import MikroStandIn
    from napari_lablink.testing.arkitekt import ArkitektStandIn, JWTVerifier, SigningKey
    from napari_lablink.testing.arkitekt.deployment import Shape
    from napari_lablink.testing.arkitekt.tokens import GEN1_REQUIRED_CLAIMS

    key = SigningKey()
    gen2 = JWTVerifier({key.kid: key.public_key})
    gen1 = JWTVerifier(keyless=key.public_key, required_claims=GEN1_REQUIRED_CLAIMS)
    mikro = stack.enter_context(
        MikroStandIn(token_check=lambda g, header: (gen2 if g == "gen2" else gen1).problem(header))
    )
    lab: dict[str, str] = {}
    shapes: tuple[tuple[Shape, str], ...] = (("G2b", "/mikro"), ("G1", ""))
    for shape, prefix in shapes:
        lok = stack.enter_context(
            ArkitektStandIn(
                shape=shape,
                mikro_url=f"{mikro.base_url}{prefix}",
                s3_url=mikro.s3_endpoint,
                signing_key=key,
                auto_approve=True,
                deployment_name=f"demo lab ({shape})",
            )
        )
        session = deployments.login(lok.url, prompt=partial(console_prompt, browser=False))
        print(
            f"Logged in to {session.configuration.deployment_name}: "
            + ", ".join(f"{k} at {s.url}" for k, s in session.configuration.services.items()),
            flush=True,
        )
        lab[shape] = lok.url
    return mikro, lab


def _open_images(viewer: Any, servers: dict[str, Any]) -> list[str]:
    """Open the demo images beside the PSF panels (which sit at the origin, about 40 um wide).

    Only the cells start visible: the tracker field of view and the pyramid are several times
    larger and would shrink everything else on the canvas; they are one click away.
    """
    from napari_lablink._napari.opening import open_in_viewer, wait_for_opens

    failed: list[str] = []

    def place(name: str, layers: list[Any]) -> None:
        if not layers:
            failed.append(name)
        for layer in layers:
            layer.translate = (*layer.translate[:-1], _PSF_PANELS_WIDTH_UM)
            layer.visible = name.startswith(("Cells", "Nuclei"))

    for name, uri in servers["uris"].items():
        open_in_viewer(viewer, uri, done=functools.partial(place, name))
    wait_for_opens(timeout=300)
    return failed


def _add_psf_widget(viewer: Any, stack: ExitStack) -> Any:
    from napari_lablink._napari.psf.widget import PSFWidget

    psf = PSFWidget(viewer)
    viewer.window.add_dock_widget(psf, name="PSF acquisition", area="right")
    stack.callback(psf.shutdown)
    psf.start()
    return psf


def _add_browser(viewer: Any, servers: dict[str, Any]) -> Any:
    from napari_lablink._napari.browser.widget import BrowserWidget

    browser = BrowserWidget(viewer, store=servers["store"])
    viewer.window.add_dock_widget(browser, name="Lablink browser", area="left")
    for name in browser.profile_names():
        browser.connect_profile(name)
    return browser


def _wait_until_loaded(viewer: Any, psf: Any, browser: Any) -> str | None:
    """None once the PSF table has numbers and every profile is connected, else what is not."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + _LOAD_TIMEOUT
    while time.monotonic() < deadline:
        QApplication.processEvents()
        states = {name: browser.state(name) for name in browser.profile_names()}
        if any(state == "failed" for state in states.values()):
            return f"the browser could not connect: {states}"
        if psf.results and all(s == "connected" for s in states.values()) and not browser.loading:
            _fit_visible(viewer)
            for _ in range(20):  # let the last redraws land
                QApplication.processEvents()
                time.sleep(0.02)
            return None
        time.sleep(0.02)
    return f"not loaded after {_LOAD_TIMEOUT:.0f} s (PSF results: {bool(psf.results)})"


def _fit_visible(viewer: Any) -> None:
    """Fit the camera to the visible layers (napari's reset_view fits hidden ones too)."""
    import numpy as np

    viewer.reset_view()
    visible = [layer.extent.world[:, -2:] for layer in viewer.layers if layer.visible]
    if not visible:
        return
    low = np.min([e[0] for e in visible], axis=0)
    high = np.max([e[1] for e in visible], axis=0)
    everything = viewer.layers.extent.world[:, -2:]
    ratio = np.min((everything[1] - everything[0]) / np.maximum(high - low, 1e-9))
    viewer.camera.center = tuple((low + high) / 2)
    viewer.camera.zoom = viewer.camera.zoom * ratio * 0.95
