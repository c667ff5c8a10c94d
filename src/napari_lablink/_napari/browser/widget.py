"""The "Lablink browser" dock widget: server profiles, connect, search, page, open.

Everything that talks to a server (connecting and logging in, listing a page) runs in
background jobs (:mod:`.workers`), so a slow or dead server never freezes the viewer; a failure
comes back as its exception and the widget shows it itself, next to the profile it concerns.
Opening goes through napari's reader (``viewer.open(uri, plugin="napari-lablink")``), exactly
as a URI typed or pasted anywhere else would; the channel picker narrows it with the URI's
``channels`` option and the "Load ROIs" box with its ``rois`` option (unchecked: ``rois=0``;
checked: the reader's default, ROI layers when the image has ROIs). Each listed image is also
opened in the background (metadata and one plane of its smallest level) for its thumbnail and
the facts a listing lacks (:mod:`.preview`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QColor, QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.browser.arkitekt_panel import ArkitektPanel
from napari_lablink._napari.browser.preview import SIZE, Preview, preview
from napari_lablink._napari.browser.profile_dialog import ProfileDialog
from napari_lablink._napari.browser.settings import BrowserSettings
from napari_lablink._napari.connections import close_with
from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.browse import Entry
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import LablinkError
from napari_lablink.client.schemes import SCHEMES
from napari_lablink.client.uri import parse_uri
from napari_lablink.profiles import Profile, ProfileStore

if TYPE_CHECKING:
    import napari

__all__ = ["BrowserWidget"]

log = logging.getLogger(__name__)

#: Entry kinds that open as images (and so have a preview).
_OPENABLE = ("image", "fov")
#: Thumbnails' size in the list, in pixels.
THUMBNAIL = 40

#: What each connection state looks like in the profile list.
_STATES = {
    "disconnected": ("○", "#9aa0a6"),
    "connecting": ("◌", "#f0c674"),
    "connected": ("●", "#5fd068"),
    "failed": ("✕", "#ff6b6b"),
}


@dataclass
class _Listing:
    """The list on screen: which server, which folder, which search, how far paged."""

    profile: str
    query: str
    parent: Entry | None
    entries: list[Entry]
    done: bool = False
    loading: bool = False
    #: Set when another listing replaces this one: its background previews stop.
    stale: bool = False


class BrowserWidget(QWidget):
    """Browse the servers of the user's profiles and open their images in the viewer."""

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        *,
        store: ProfileStore | None = None,
        page_size: int = 50,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.store = store or ProfileStore()
        self.page_size = page_size
        self._servers: dict[str, Server] = {}
        self._states: dict[str, tuple[str, str]] = {}
        self._workers = Workers()
        self._listing: _Listing | None = None
        self._path: list[Entry] = []
        #: Previews by URI (kept across listings: going up and back costs nothing).
        self._previews: dict[str, Preview] = {}
        self._previewing: set[str] = set()
        self.settings = BrowserSettings()
        self._build()
        self.refresh_profiles()
        # Bound to the dict, not to self: by the time ``destroyed`` fires, self is gone.
        self.destroyed.connect(partial(_close_all, self._servers))
        close_with(self, self._workers)

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.profile_list = QListWidget()
        self.profile_list.setMaximumHeight(96)
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        self.connect_button = QPushButton("Connect")
        self.arkitekt_button = QPushButton("Add Arkitekt deployment…")
        self.arkitekt = ArkitektPanel(self)
        self.arkitekt.hide()
        self.arkitekt.logged_in.connect(self._arkitekt_logged_in)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.search_box = QLineEdit()
        self.search_box.setClearButtonEnabled(True)
        self.search_button = QPushButton("Search")
        self.up_button = QPushButton("↑ Up")
        self.where = QLabel()
        self.where.setWordWrap(True)

        self.results = QTreeWidget()
        self.results.setHeaderLabels(["Name", "Kind", "Shape"])
        self.results.setRootIsDecorated(False)
        self.results.setUniformRowHeights(True)
        self.results.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        # At least five thumbnail rows, however tight the dock.
        self.results.setMinimumHeight(5 * (THUMBNAIL + 4) + 28)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.results.header()
        assert header is not None  # a tree view always has its header
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.more_button = QPushButton("More")

        facts = ("name", "shape", "dtype", "pixel size", "size", "channels", "tags", "uri")
        self.details = {key: QLabel() for key in facts}
        for label in self.details.values():
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.channel_list = QListWidget()
        self.channel_list.setToolTip("Open only the checked channels")
        self.channel_list.setMaximumHeight(120)
        self.channels_all = QPushButton("All")
        self.channels_none = QPushButton("None")
        self.load_rois = QCheckBox("Load ROIs")
        self.load_rois.setToolTip(
            "Also open the image's ROIs (when it has any) as Shapes and Points layers, kept "
            "up to date while open"
        )
        self.load_rois.setChecked(self.settings.load_rois)
        self.into_button = QPushButton("Browse into")
        self.open_button = QPushButton("Open")
        self.copy_button = QPushButton("Copy URI")

        row = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button, self.connect_button):
            row.addWidget(button)
        search = QHBoxLayout()
        search.addWidget(self.search_box)
        search.addWidget(self.search_button)
        place = QHBoxLayout()
        place.addWidget(self.up_button)
        place.addWidget(self.where, 1)
        form = QFormLayout()
        self._detail_titles = {
            key: QLabel(key.capitalize() if key != "uri" else "URI") for key in self.details
        }
        for key, label in self.details.items():
            form.addRow(self._detail_titles[key], label)
        actions = QHBoxLayout()
        for button in (self.into_button, self.open_button, self.copy_button):
            actions.addWidget(button)
        self.channel_box = QWidget()
        picker = QVBoxLayout(self.channel_box)
        picker.setContentsMargins(0, 0, 0, 0)
        picker_title = QHBoxLayout()
        picker_title.addWidget(QLabel("Open channels"), 1)
        picker_title.addWidget(self.channels_all)
        picker_title.addWidget(self.channels_none)
        picker.addLayout(picker_title)
        picker.addWidget(self.channel_list)

        listing = QWidget()
        top = QVBoxLayout(listing)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.results, 1)
        top.addWidget(self.more_button)
        selection = QWidget()
        bottom = QVBoxLayout(selection)
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addLayout(form)
        bottom.addWidget(self.channel_box)
        bottom.addWidget(self.load_rois)
        bottom.addLayout(actions)
        bottom.addStretch()
        # The user decides how the listing and the details share the height.
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(listing)
        self.splitter.addWidget(selection)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Servers</b>"))
        layout.addWidget(self.profile_list)
        layout.addLayout(row)
        layout.addWidget(self.arkitekt_button)
        layout.addWidget(self.arkitekt)
        layout.addWidget(self.status)
        layout.addLayout(search)
        layout.addLayout(place)
        layout.addWidget(self.splitter, 1)

        self.add_button.clicked.connect(lambda: self.edit_profile(None))
        self.edit_button.clicked.connect(lambda: self.edit_profile(self.selected_profile()))
        self.remove_button.clicked.connect(self._remove_selected)
        self.arkitekt_button.clicked.connect(self.add_arkitekt)
        self.connect_button.clicked.connect(self._connect_selected)
        self.profile_list.currentRowChanged.connect(lambda _: self._profile_selected())
        self.profile_list.itemDoubleClicked.connect(lambda _: self._connect_selected())
        self.search_button.clicked.connect(lambda: self.search(self.search_box.text()))
        self.search_box.returnPressed.connect(lambda: self.search(self.search_box.text()))
        self.up_button.clicked.connect(self.go_up)
        self.more_button.clicked.connect(self.load_more)
        scroll = self.results.verticalScrollBar()
        assert scroll is not None  # a scroll area always has its bars
        scroll.valueChanged.connect(self._scrolled)
        self.results.currentItemChanged.connect(lambda *_: self._show_details())
        self.results.itemDoubleClicked.connect(lambda *_: self._activate())
        self.into_button.clicked.connect(self.browse_into)
        self.open_button.clicked.connect(self.open_selected)
        self.copy_button.clicked.connect(self.copy_uri)
        self.channels_all.clicked.connect(lambda: self._check_channels(True))
        self.channels_none.clicked.connect(lambda: self._check_channels(False))
        self.channel_list.itemChanged.connect(lambda _: self._update_buttons())
        self.load_rois.toggled.connect(self._load_rois_toggled)
        self._update_buttons()

    # -- profiles ---------------------------------------------------------------------------

    def profile_names(self) -> list[str]:
        return [p.name for p in self._profiles]

    def state(self, name: str) -> str:
        return self._states.get(name, ("disconnected", ""))[0]

    def selected_profile(self) -> Profile | None:
        row = self.profile_list.currentRow()
        return self._profiles[row] if 0 <= row < len(self._profiles) else None

    def select_profile(self, name: str) -> None:
        self.profile_list.setCurrentRow(self.profile_names().index(name))

    def refresh_profiles(self) -> None:
        """Reread the profiles (another window may have changed the file) and redraw them."""
        selected = self.selected_profile()
        try:
            self._profiles = self.store.profiles()
        except LablinkError as exc:
            self._profiles = []
            self.status.setText(str(exc))
        self.profile_list.blockSignals(True)
        self.profile_list.clear()
        for profile in self._profiles:
            item = QListWidgetItem()
            self.profile_list.addItem(item)
            self._draw_profile(item, profile)
        names = self.profile_names()
        if selected and selected.name in names:
            self.profile_list.setCurrentRow(names.index(selected.name))
        elif names:
            self.profile_list.setCurrentRow(0)
        self.profile_list.blockSignals(False)
        self._profile_selected()

    def _draw_profile(self, item: QListWidgetItem, profile: Profile) -> None:
        state, message = self._states.get(profile.name, ("disconnected", ""))
        mark, color = _STATES[state]
        item.setText(f"{mark}  {profile.name}   ({SCHEMES[profile.kind].display_name}, {state})")
        item.setForeground(QColor(color))
        item.setToolTip(f"{profile.uri}\n{message}" if message else profile.uri)

    def _set_state(self, name: str, state: str, message: str = "") -> None:
        self._states[name] = (state, message)
        names = self.profile_names()
        item = self.profile_list.item(names.index(name)) if name in names else None
        if item is not None:
            self._draw_profile(item, self._profiles[names.index(name)])
        profile = self.selected_profile()
        if profile is not None and profile.name == name:
            self._show_state(name)

    def _show_state(self, name: str) -> None:
        state, message = self._states.get(name, ("disconnected", ""))
        color = _STATES[state][1]
        text = message or {"disconnected": "Not connected", "connecting": "Connecting…"}.get(
            state, ""
        )
        self.status.setStyleSheet(f"color: {color};")
        self.status.setText(text)

    def edit_profile(self, profile: Profile | None) -> ProfileDialog:
        """Open the add/edit dialog (non-modal, so tests and users can fill it in)."""
        dialog = ProfileDialog(self.store, profile, self)
        dialog.accepted.connect(lambda: self._profile_saved(profile, dialog.saved))
        dialog.open()
        return dialog

    def add_arkitekt(self) -> ArkitektPanel:
        """Show the "Add Arkitekt deployment" panel; once logged in, the deployment's mikro
        becomes a profile (no secret in it: the login holds them) and is connected."""
        self.arkitekt.show()
        self.arkitekt.host.setFocus()
        return self.arkitekt

    def _arkitekt_logged_in(self, origin: str, name: str) -> None:
        uri = Profile(name=name, kind="mikro", url=origin).uri
        existing = next((p for p in self._profiles if p.kind == "mikro" and p.uri == uri), None)
        if existing is None:
            taken = set(self.profile_names())
            if name in taken:
                name = f"{name} ({origin.partition('://')[2]})"
            try:
                existing = self.store.save(Profile(name=name, kind="mikro", url=origin))
            except LablinkError as exc:
                self.status.setText(str(exc))
                return
            self.refresh_profiles()
        self.select_profile(existing.name)
        self.connect_profile(existing.name)

    def _profile_saved(self, old: Profile | None, new: Profile | None) -> None:
        if old is not None:
            self._forget(old.name)
        self.refresh_profiles()
        if new is not None:
            self.select_profile(new.name)

    def _remove_selected(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        self.remove_profile(profile.name)

    def remove_profile(self, name: str) -> None:
        self._forget(name)
        try:
            self.store.remove(name)
        except LablinkError as exc:
            self.status.setText(str(exc))
        self.refresh_profiles()

    def _forget(self, name: str) -> None:
        """Drop the connection of a changed or removed profile."""
        self._states.pop(name, None)
        server = self._servers.pop(name, None)
        if server is not None:
            server.close()
        if self._listing is not None and self._listing.profile == name:
            self._clear_listing()

    def _clear_listing(self) -> None:
        """Nothing listed: no other server's entries stay on screen."""
        if self._listing is not None:
            self._listing.stale = True
        self._listing = None
        self._path = []
        self._show_entries([])

    def _profile_selected(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            self.status.setText("Add a server profile to start")
            self.search_box.setPlaceholderText("")
        else:
            self._show_state(profile.name)
            self.search_box.setPlaceholderText(SCHEMES[profile.kind].browse_hint)
            if self._listing is None or self._listing.profile != profile.name:
                self._clear_listing()
                if profile.name in self._servers:
                    self.search("")
        self._update_buttons()

    # -- connecting -------------------------------------------------------------------------

    def _connect_selected(self) -> None:
        profile = self.selected_profile()
        if profile is not None:
            self.connect_profile(profile.name)

    def connect_profile(self, name: str) -> None:
        """Connect (and log in) off the Qt thread; on success list the server's top level."""
        if self.state(name) == "connecting":
            return
        old = self._servers.pop(name, None)
        if old is not None:
            old.close()
        if self._listing is not None and self._listing.profile == name:
            self._clear_listing()
        self._set_state(name, "connecting")
        profile = next(p for p in self._profiles if p.name == name)
        try:
            secrets = self.store.credentials(profile.name).secrets
        except LablinkError:
            secrets = ()
        self._workers.start(
            self._connect_job(profile),
            done=lambda server: self._connected(name, server),
            failed=lambda exc: self._connect_failed(name, describe(exc, secrets)),
            discard=Server.close,  # the widget closed while connecting
        )

    def _connect_failed(self, name: str, message: str) -> None:
        self._set_state(name, "failed", message)
        selected = self.selected_profile()
        if selected is not None and selected.name == name:
            self._clear_listing()  # nothing of another server, or of an older connection
        self._update_buttons()

    def _connect_job(self, profile: Profile) -> Callable[[Task], Server]:
        store = self.store

        def job(task: Task) -> Server:
            server = store.connect(profile.name)
            try:
                server.check()  # a wrong token or a dead server shows now, next to the profile
            except BaseException:
                server.close()
                raise
            return server

        return job

    def _connected(self, name: str, server: Server) -> None:
        if name not in self.profile_names():  # removed while connecting
            server.close()
            return
        self._servers[name] = server
        profile = next(p for p in self._profiles if p.name == name)
        self._set_state(name, "connected", f"Connected to {profile.uri}")
        selected = self.selected_profile()
        if selected is not None and selected.name == name:
            self._path = []
            self.search(self.search_box.text() if profile.kind == "pims" else "")
        self._update_buttons()

    # -- listing ----------------------------------------------------------------------------

    @property
    def entries(self) -> list[Entry]:
        return list(self._listing.entries) if self._listing else []

    @property
    def loading(self) -> bool:
        return bool(self._listing and self._listing.loading)

    @property
    def exhausted(self) -> bool:
        """Whether the last page has been loaded."""
        return bool(self._listing and self._listing.done)

    def search(self, query: str) -> None:
        """List the first page of ``query`` in the current folder of the selected server."""
        profile = self.selected_profile()
        if profile is None or profile.name not in self._servers:
            self.status.setText("Connect first")
            return
        if self.search_box.text() != query:
            self.search_box.setText(query)
        parent = self._path[-1] if self._path else None
        if self._listing is not None:
            self._listing.stale = True
        self._listing = _Listing(profile.name, query, parent, [])
        self._show_entries([])
        self.load_more()

    def load_more(self) -> None:
        """Fetch the next page, off the Qt thread (ignored while one is loading)."""
        listing = self._listing
        if listing is None or listing.loading or listing.done:
            return
        server = self._servers.get(listing.profile)
        if server is None:
            return
        listing.loading = True
        self._update_buttons()
        # One entry more than a page says whether another page follows (it is listed again
        # as the first of that page), so More is never offered after the last one.
        offset, limit = len(listing.entries), self.page_size + 1
        parent = listing.parent.uri if listing.parent else None

        def job(task: Task) -> list[Entry]:
            return server.browse(listing.query, parent=parent, offset=offset, limit=limit)

        secrets = server.credentials.secrets
        self._workers.start(
            job,
            done=lambda page: self._page_loaded(listing, page),
            failed=lambda exc: self._page_failed(listing, describe(exc, secrets)),
        )

    def _page_failed(self, listing: _Listing, message: str) -> None:
        listing.loading = False
        if listing is not self._listing:  # a newer search replaced it
            return
        listing.done = True
        self._set_state(listing.profile, "connected", message)
        self.status.setStyleSheet(f"color: {_STATES['failed'][1]};")
        self._update_buttons()

    def _page_loaded(self, listing: _Listing, page: list[Entry]) -> None:
        listing.loading = False
        if listing is not self._listing:  # a newer search replaced it
            return
        listing.done = len(page) <= self.page_size
        page = page[: self.page_size]
        listing.entries.extend(page)
        self._show_entries(page, append=True)
        count = len(listing.entries)
        where = " / ".join(e.name for e in self._path) or "top level"
        shown = f"{count} item{'s' if count != 1 else ''}"
        self.where.setText(f"{where} — {shown}{'' if listing.done else ', more below'}")
        self._update_buttons()
        self._start_previews(listing, page)

    def _show_entries(self, page: list[Entry], append: bool = False) -> None:
        if not append:
            self.results.clear()
        for entry in page:
            shape = " x ".join(str(n) for n in entry.shape) if entry.shape else ""
            name = f"{entry.name}  ▸" if entry.has_children else entry.name
            item = QTreeWidgetItem([name, entry.kind, shape])
            item.setToolTip(0, entry.uri)
            known = self._previews.get(entry.uri)
            if known is not None:
                item.setIcon(0, _icon(known.thumbnail))
            self.results.addTopLevelItem(item)
        if not append:
            self.where.setText("")
        self._show_details()

    # -- previews ---------------------------------------------------------------------------

    def _start_previews(self, listing: _Listing, page: list[Entry]) -> None:
        """Open the page's images one after another in the background for their previews."""
        server = self._servers.get(listing.profile)
        wanted = [
            e.uri
            for e in page
            if e.kind in _OPENABLE and e.uri not in self._previews and e.uri not in self._previewing
        ]
        if server is None or not wanted:
            return
        self._previewing.update(wanted)
        deliver = self._workers.on_main(self._preview_ready)

        def job(task: Task) -> None:
            for uri in wanted:
                if task.cancelled.is_set() or listing.stale or server.closed:
                    return
                try:
                    deliver(uri, preview(server.get(uri), uri))
                except Exception as exc:  # a preview is a nicety: the entry still opens
                    secrets = server.credentials.secrets
                    log.debug("no preview of %s: %s", uri, describe(exc, secrets))

        self._workers.start(job, finished=lambda: self._previewing.difference_update(wanted))

    def _preview_ready(self, uri: str, found: Preview) -> None:
        self._previews[uri] = found
        if self._listing is None:
            return
        for index, entry in enumerate(self._listing.entries):
            item = self.results.topLevelItem(index)
            if entry.uri == uri and item is not None:
                item.setIcon(0, _icon(found.thumbnail))
        selected = self.selected_entry()
        if selected is not None and selected.uri == uri:
            self._show_details()

    def preview_of(self, entry: Entry) -> Preview | None:
        """The entry's preview, once its background job delivered it."""
        return self._previews.get(entry.uri)

    def _scrolled(self, value: int) -> None:
        bar = self.results.verticalScrollBar()
        if bar is not None and bar.maximum() > 0 and value >= bar.maximum() - 2:
            self.load_more()

    # -- selection and actions --------------------------------------------------------------

    def selected_entry(self) -> Entry | None:
        item = self.results.currentItem()
        if item is None or self._listing is None:
            return None
        index = self.results.indexOfTopLevelItem(item)
        entries = self._listing.entries
        return entries[index] if 0 <= index < len(entries) else None

    def select_entry(self, index: int) -> None:
        self.results.setCurrentItem(self.results.topLevelItem(index))

    def _show_details(self) -> None:
        entry = self.selected_entry()
        facts = dict.fromkeys(self.details, "")
        if entry is not None:
            facts.update(_facts(entry, self._previews.get(entry.uri)))
        for key, label in self.details.items():
            label.setText(facts[key])
            # Rows the selection has nothing for (tags of a tracker FOV) are hidden.
            label.setVisible(bool(facts[key]) or entry is None)
            self._detail_titles[key].setVisible(bool(facts[key]) or entry is None)
        self._show_channels(entry)
        self._update_buttons()

    # -- channel picker -----------------------------------------------------------------------

    def _channels_of(self, entry: Entry | None) -> tuple[str, ...]:
        if entry is None or entry.kind not in _OPENABLE:
            return ()
        known = self._previews.get(entry.uri)
        return entry.channels or (known.channels if known else ())

    def _show_channels(self, entry: Entry | None) -> None:
        """A checkable channel list for an image of several channels (all checked at first)."""
        names = self._channels_of(entry)
        wanted = parse_uri(entry.uri).option("channels") if entry is not None else None
        current = [item.text() for item in self._channel_items()]
        if list(names) != current:
            self.channel_list.blockSignals(True)
            self.channel_list.clear()
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = wanted is None or name in wanted.split(",")
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                self.channel_list.addItem(item)
            self.channel_list.blockSignals(False)
        self.channel_box.setVisible(len(names) > 1)

    def _channel_items(self) -> list[QListWidgetItem]:
        items = [self.channel_list.item(i) for i in range(self.channel_list.count())]
        return [item for item in items if item is not None]

    def _check_channels(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for item in self._channel_items():
            item.setCheckState(state)

    def checked_channels(self) -> list[str]:
        """The channels the picker will open (all of them when it is hidden)."""
        return [
            item.text()
            for item in self._channel_items()
            if item.checkState() == Qt.CheckState.Checked
        ]

    def check_channels(self, names: list[str]) -> None:
        """Check exactly ``names`` in the picker (what a user's clicks do)."""
        for item in self._channel_items():
            on = item.text() in names
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def selected_uri(self) -> str | None:
        """The URI Open opens: the selection's, narrowed to the picked channels, without ROIs
        when "Load ROIs" is unchecked."""
        entry = self.selected_entry()
        if entry is None:
            return None
        uri = parse_uri(entry.uri)
        options = dict(uri.option_dict)
        names = self._channels_of(entry)
        picked = self.checked_channels()
        if len(names) > 1 and picked and len(picked) < len(names):
            options["channels"] = ",".join(picked)
        if _has_rois(entry) and not self.load_rois.isChecked():
            options["rois"] = "0"
        if options == uri.option_dict:
            return entry.uri
        return str(replace(uri, options=tuple(options.items())))

    def _load_rois_toggled(self, on: bool) -> None:
        self.settings.load_rois = on

    def _activate(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        if entry.kind in ("run", "folder"):
            self.browse_into()
        else:
            self.open_selected()

    def browse_into(self) -> None:
        """List the children of the selection (a run's FOVs, an image's channels)."""
        entry = self.selected_entry()
        if entry is not None and entry.has_children:
            self._path.append(entry)
            self.search_box.clear()
            self.search("")

    def go_up(self) -> None:
        if self._path:
            self._path.pop()
            self.search_box.clear()
            self.search("")

    def open_selected(self) -> list[Any]:
        """Open the selection through napari's reader; returns the layers added."""
        entry = self.selected_entry()
        uri = self.selected_uri()
        if entry is None or uri is None or entry.kind in ("run", "folder"):
            return []
        return self.viewer.open(uri, plugin="napari-lablink")

    def copy_uri(self) -> None:
        entry = self.selected_entry()
        clipboard = QApplication.clipboard()  # None only without a running QApplication
        if entry is not None and clipboard is not None:
            clipboard.setText(entry.uri)
            self.status.setText(f"Copied {entry.uri}")

    def _update_buttons(self) -> None:
        profile = self.selected_profile()
        connected = profile is not None and profile.name in self._servers
        entry = self.selected_entry()
        self.edit_button.setEnabled(profile is not None)
        self.remove_button.setEnabled(profile is not None)
        self.connect_button.setEnabled(profile is not None)
        self.connect_button.setText("Reconnect" if connected else "Connect")
        for widget in (self.search_box, self.search_button):
            widget.setEnabled(connected)
        self.up_button.setEnabled(connected and bool(self._path))
        listing = self._listing
        self.more_button.setEnabled(bool(listing and not listing.done and not listing.loading))
        self.more_button.setText("Loading…" if self.loading else "More")
        self.into_button.setEnabled(entry is not None and entry.has_children)
        picking = self.channel_box.isVisibleTo(self) and not self.checked_channels()
        self.open_button.setEnabled(
            entry is not None and entry.kind not in ("run", "folder") and not picking
        )
        self.copy_button.setEnabled(entry is not None)
        self.load_rois.setVisible(entry is not None and _has_rois(entry))

    def closeEvent(self, event: Any) -> None:
        self._workers.close()
        _close_all(self._servers)
        super().closeEvent(event)


def _has_rois(entry: Entry) -> bool:
    """Whether opening ``entry`` can bring ROIs along (a mikro image)."""
    return entry.kind in _OPENABLE and entry.uri.startswith("mikro")


def _facts(entry: Entry, known: Preview | None) -> dict[str, str]:
    """What the details show of ``entry``: the listing's facts, completed by its preview."""
    shape = entry.shape or (known.shape if known else None)
    dims = entry.dims or (known.dims if known else None)
    dtype = entry.dtype or (known.dtype if known else None)
    pixel_size = entry.pixel_size or (known.pixel_size if known else {})
    channels = entry.channels or (known.channels if known else ())
    facts = {"name": entry.name, "tags": ", ".join(entry.tags), "uri": entry.uri}
    if shape:
        named = f" ({', '.join(dims)})" if dims and len(dims) == len(shape) else ""
        facts["shape"] = " x ".join(str(n) for n in shape) + named
    if entry.kind != "run":
        facts["dtype"] = dtype or "(on opening)"
    facts["pixel size"] = ", ".join(f"{d} {s:g} µm" for d, s in pixel_size.items())
    if len(channels) > 6:
        facts["channels"] = f"{len(channels)}: {', '.join(channels[:6])}, …"
    else:
        facts["channels"] = ", ".join(channels)
    facts["size"] = _size(shape, dims, dtype, pixel_size, known.levels if known else 1)
    return facts


def _size(
    shape: tuple[int, ...] | None,
    dims: tuple[str, ...] | None,
    dtype: str | None,
    pixel_size: dict[str, float],
    levels: int,
) -> str:
    """The field of view in µm, the uncompressed size and the pyramid, as far as known."""
    if not shape or not dims or len(dims) != len(shape):
        return ""
    parts = []
    extent = [
        f"{shape[dims.index(d)] * pixel_size[d]:.4g}"
        for d in ("x", "y")
        if d in dims and d in pixel_size
    ]
    if len(extent) == 2:
        parts.append(f"{extent[0]} x {extent[1]} µm")
    if dtype:
        with contextlib.suppress(TypeError):  # a dtype name numpy does not know
            parts.append(_bytes(math.prod(shape) * np.dtype(dtype).itemsize))
    if levels > 1:
        parts.append(f"pyramid of {levels} levels")
    return ", ".join(parts)


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.3g} {unit}" if unit != "B" else f"{count} B"
        size /= 1024
    return f"{count} B"


def _icon(rgb: np.ndarray) -> QIcon:
    """A list icon of an RGB uint8 thumbnail (copied: Qt must not keep numpy's buffer)."""
    height, width = rgb.shape[:2]
    data = np.ascontiguousarray(rgb).tobytes()
    image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    pixmap = QPixmap.fromImage(image)
    if max(height, width) < SIZE:
        pixmap = pixmap.scaled(
            SIZE, SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
    return QIcon(pixmap)


def _close_all(servers: dict[str, Server], *_: object) -> None:
    """Close every connection of the widget (its layers keep their own shared connections)."""
    for name in list(servers):
        servers.pop(name).close()
