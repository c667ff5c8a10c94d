"""What the Lablink browser remembers between sessions (view choices only, never secrets).

Kept in an INI file next to the servers.toml in use (``browser.ini``), so a config chosen with
``LABLINK_CONFIG`` or napari's plugin setting carries its browser choices with it, and tests
that isolate the config isolate these too.
"""

from __future__ import annotations

from qtpy.QtCore import QSettings

from napari_lablink.client.config import config_path

__all__ = ["BrowserSettings"]

_LOAD_ROIS = "open/load_rois"


class BrowserSettings:
    """The browser's remembered choices."""

    def __init__(self) -> None:
        path = config_path().with_name("browser.ini")
        self._settings = QSettings(str(path), QSettings.Format.IniFormat)

    @property
    def load_rois(self) -> bool:
        """Open a mikro image's ROIs with it (when it has any): on unless the user said no."""
        value = self._settings.value(_LOAD_ROIS, True)
        return value if isinstance(value, bool) else str(value).lower() == "true"

    @load_rois.setter
    def load_rois(self, on: bool) -> None:
        self._settings.setValue(_LOAD_ROIS, bool(on))
        self._settings.sync()
