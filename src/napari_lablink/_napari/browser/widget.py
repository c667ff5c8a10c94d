"""The "Lablink browser" dock widget: server profiles, connect, search, page, open.

Everything that talks to a server (connecting and logging in, listing a page) runs in
background jobs (:mod:`.workers`), so a slow or dead server never freezes the viewer; a failure
comes back as its exception and the widget shows it itself, next to the profile it concerns.
Opening goes through napari's reader (``viewer.open(uri, plugin="napari-lablink")``), exactly
as a URI typed or pasted anywhere else would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.browser.profile_dialog import ProfileDialog
from napari_lablink._napari.connections import close_with
from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.browse import Entry
from napari_lablink.client.connection import Server
from napari_lablink.client.errors import LablinkError
from napari_lablink.client.schemes import SCHEMES
from napari_lablink.profiles import Profile, ProfileStore

if TYPE_CHECKING:
    import napari

__all__ = ["BrowserWidget"]

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
        self._build()
        self.refresh_profiles()
        # Bound to the dict, not to self: by the time ``destroyed`` fires, self is gone.
        self.destroyed.connect(partial(_close_all, self._servers))
        close_with(self, self._workers)

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.profile_list = QListWidget()
        self.profile_list.setMaximumHeight(110)
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        self.connect_button = QPushButton("Connect")
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
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.results.header()
        assert header is not None  # a tree view always has its header
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.more_button = QPushButton("More")

        facts = ("name", "shape", "dtype", "pixel size", "channels", "tags", "uri")
        self.details = {key: QLabel() for key in facts}
        for label in self.details.values():
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
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

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Servers</b>"))
        layout.addWidget(self.profile_list)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addLayout(search)
        layout.addLayout(place)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.more_button)
        layout.addLayout(form)
        layout.addLayout(actions)

        self.add_button.clicked.connect(lambda: self.edit_profile(None))
        self.edit_button.clicked.connect(lambda: self.edit_profile(self.selected_profile()))
        self.remove_button.clicked.connect(self._remove_selected)
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
            if profile.name in self._servers and (
                self._listing is None or self._listing.profile != profile.name
            ):
                self._path = []
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
        self._set_state(name, "connecting")
        profile = next(p for p in self._profiles if p.name == name)
        try:
            secrets = self.store.credentials(profile.name).secrets
        except LablinkError:
            secrets = ()
        self._workers.start(
            self._connect_job(profile),
            done=lambda server: self._connected(name, server),
            failed=lambda exc: self._set_state(name, "failed", describe(exc, secrets)),
            discard=Server.close,  # the widget closed while connecting
        )

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
        offset, limit = len(listing.entries), self.page_size
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
        listing.entries.extend(page)
        listing.done = len(page) < self.page_size
        self._show_entries(page, append=True)
        count = len(listing.entries)
        where = " / ".join(e.name for e in self._path) or "top level"
        shown = f"{count} item{'s' if count != 1 else ''}{'' if listing.done else '+'}"
        self.where.setText(f"{where} — {shown}")
        self._update_buttons()

    def _show_entries(self, page: list[Entry], append: bool = False) -> None:
        if not append:
            self.results.clear()
        for entry in page:
            shape = " x ".join(str(n) for n in entry.shape) if entry.shape else ""
            name = f"{entry.name}  ▸" if entry.has_children else entry.name
            item = QTreeWidgetItem([name, entry.kind, shape])
            item.setToolTip(0, entry.uri)
            self.results.addTopLevelItem(item)
        if not append:
            self.where.setText("")
        self._show_details()

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
            facts["name"] = entry.name
            if entry.shape:
                dims = f" ({', '.join(entry.dims)})" if entry.dims else ""
                facts["shape"] = " x ".join(str(n) for n in entry.shape) + dims
            facts["dtype"] = entry.dtype or ("" if entry.kind == "run" else "(on opening)")
            facts["pixel size"] = (
                ", ".join(f"{d} {s:g} µm" for d, s in entry.pixel_size.items())
                if entry.pixel_size
                else ""
            )
            facts["channels"] = ", ".join(entry.channels)
            facts["tags"] = ", ".join(entry.tags)
            facts["uri"] = entry.uri
        for key, label in self.details.items():
            label.setText(facts[key])
            # Rows the selection has nothing for (tags of a tracker FOV) are hidden.
            label.setVisible(bool(facts[key]) or entry is None)
            self._detail_titles[key].setVisible(bool(facts[key]) or entry is None)
        self._update_buttons()

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
        if entry is None or entry.kind in ("run", "folder"):
            return []
        return self.viewer.open(entry.uri, plugin="napari-lablink")

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
        self.open_button.setEnabled(entry is not None and entry.kind not in ("run", "folder"))
        self.copy_button.setEnabled(entry is not None)

    def closeEvent(self, event: Any) -> None:
        self._workers.close()
        _close_all(self._servers)
        super().closeEvent(event)


def _close_all(servers: dict[str, Server], *_: object) -> None:
    """Close every connection of the widget (its layers keep their own shared connections)."""
    for name in list(servers):
        servers.pop(name).close()
