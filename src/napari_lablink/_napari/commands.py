"""Menu commands: open napari-lablink's dock widgets from napari's menus."""

from __future__ import annotations

import napari

__all__ = ["open_psf_widget", "open_tracker_upload_widget", "open_upload_widget"]

PLUGIN = "napari-lablink"


def open_upload_widget(viewer: napari.viewer.Viewer) -> None:
    """File > IO Utilities > Upload to mikro..."""
    viewer.window.add_plugin_dock_widget(PLUGIN, "Upload to mikro")


def open_tracker_upload_widget(viewer: napari.viewer.Viewer) -> None:
    """File > IO Utilities > Upload to MIBItracker..."""
    viewer.window.add_plugin_dock_widget(PLUGIN, "Upload to MIBItracker")


def open_psf_widget(viewer: napari.viewer.Viewer) -> None:
    """File > Acquire > PSF acquisition..."""
    viewer.window.add_plugin_dock_widget(PLUGIN, "PSF acquisition")
