"""Screenshot of the Lablink browser connected to the stand-in servers (docs/browser_widget.png).

Run under a display:
``xvfb-run -a python3 docs/browser_widget_screenshot.py docs/browser_widget.png``.
Profiles go to a temporary servers.toml, never to the user's own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from screenshot_helpers import use_temporary_profiles, wait_until


def main(out: str) -> None:
    use_temporary_profiles()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_lablink._napari.browser.widget import BrowserWidget
    from napari_lablink.profiles import Profile, ProfileStore
    from napari_lablink.testing import MikroStandIn, TrackerStandIn

    with MikroStandIn() as mikro, TrackerStandIn() as tracker:
        mikro.seed_demo()
        tracker.seed_demo(size=256, fovs=3)
        store = ProfileStore(secrets=None)
        mikro_url = f"http://{mikro.uri_authority}"
        tracker_port = tracker.port
        store.save(
            Profile(
                name="Lab mikro (images)",
                kind="mikro",
                url=f"{mikro_url}/mikro",
                s3=mikro.s3_endpoint,
            ),
            token=mikro.token,
        )
        store.save(
            Profile(
                name="Lab mikro (representations)",
                kind="mikro",
                url=mikro_url,
                s3=mikro.s3_endpoint,
            )
        )
        store.save(
            Profile(
                name="MIBItracker",
                kind="mibi",
                url=f"http://127.0.0.1:{tracker_port}",
                email=tracker.email,
            ),
            password=tracker.password,
        )
        store.save(
            Profile(
                name="Old tracker (wrong password)",
                kind="mibi",
                url=f"http://localhost:{tracker_port}",
                email=tracker.email,
            ),
            password="not-it",
        )
        viewer = napari.Viewer(title="napari-lablink browser")
        viewer.window._qt_window.resize(1400, 900)
        widget = BrowserWidget(viewer, store=store)
        viewer.window.add_dock_widget(widget, name="Lablink browser", area="right")
        for name in widget.profile_names():
            widget.select_profile(name)
            widget.connect_profile(name)
            wait_until(lambda name=name: widget.state(name) != "connecting", "the browser")
            wait_until(lambda: not widget.loading, "the browser")
        # The generation-2 listing: thumbnails, a pyramid listed once, its details.
        widget.select_profile("Lab mikro (images)")
        wait_until(lambda: not widget.loading and widget.entries, "the browser")
        wait_until(
            lambda: all(widget.preview_of(e) for e in widget.entries), "the browser", timeout=120
        )
        names = [e.name for e in widget.entries]
        widget.select_entry(next(i for i, n in enumerate(names) if "pyramid" in n.lower()))
        widget.open_selected()
        for _ in range(100):
            QApplication.processEvents()
            time.sleep(0.02)
        viewer.screenshot(out, canvas_only=False)
        print("saved", out)
        viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/browser_widget.png")
