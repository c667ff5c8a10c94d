"""The dialog that adds or edits a server profile of the Lablink browser.

Secret fields start empty even when a secret is stored (it is never shown back): empty means
"keep what is stored", and "Forget stored secrets" removes them.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from napari_lablink.client.errors import LablinkError
from napari_lablink.profiles import KIND_NAMES, Profile, ProfileStore

__all__ = ["ProfileDialog"]

_PLACEHOLDERS = {
    "mikro": "http://127.0.0.1:8080/mikro",
    "mibi": "https://backend.mibitracker.example.org",
    "pims": "http://127.0.0.1:5000",
}
_STORED = "stored - leave empty to keep"


class ProfileDialog(QDialog):
    """Add a profile (``profile=None``) or edit one; saving goes through the ProfileStore, whose
    refusals are shown in the dialog rather than closing it."""

    def __init__(
        self, store: ProfileStore, profile: Profile | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.original = profile
        self.saved: Profile | None = None
        self.setWindowTitle("Edit server profile" if profile else "Add server profile")

        self.name = QLineEdit(profile.name if profile else "")
        self.kind = QComboBox()
        for kind, label in KIND_NAMES.items():
            self.kind.addItem(label, kind)
        self.url = QLineEdit(profile.url if profile else "")
        self.s3 = QLineEdit(profile.s3 or "" if profile else "")
        self.s3.setPlaceholderText("http://127.0.0.1:9000 (mikro only)")
        self.email = QLineEdit(profile.email or "" if profile else "")
        self.token = QLineEdit()
        self.password = QLineEdit()
        for secret, stored in (
            (self.token, profile is not None and profile.has_token),
            (self.password, profile is not None and profile.has_password),
        ):
            secret.setEchoMode(QLineEdit.EchoMode.Password)
            secret.setPlaceholderText(_STORED if stored else "")
        self.forget = QCheckBox("Forget stored secrets")
        self.forget.setVisible(bool(profile and (profile.has_token or profile.has_password)))
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff6b6b;")
        self.error.hide()

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("URL", self.url)
        form.addRow("S3 endpoint", self.s3)
        form.addRow("Token", self.token)
        form.addRow("Email", self.email)
        form.addRow("Password", self.password)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.forget)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

        self.kind.currentIndexChanged.connect(self._kind_changed)
        if profile is not None:
            self.kind.setCurrentIndex(list(KIND_NAMES).index(profile.kind))
        self._kind_changed()

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.url.setPlaceholderText(_PLACEHOLDERS[kind])
        self.s3.setEnabled(kind == "mikro")
        self.token.setEnabled(kind != "pims")
        self.email.setEnabled(kind == "mibi")
        self.password.setEnabled(kind == "mibi")

    def save(self) -> None:
        """Store the profile and close, or show why it cannot be stored."""
        kind = self.kind.currentData()
        try:
            profile = Profile(
                name=self.name.text().strip(),
                kind=kind,
                url=self.url.text().strip(),
                s3=(self.s3.text().strip() or None) if kind == "mikro" else None,
                email=(self.email.text().strip() or None) if kind == "mibi" else None,
            )
            # A typed secret replaces the stored one; empty keeps it, unless "forget" is ticked.
            kept = "" if self.forget.isChecked() else None
            values = {
                "token": self.token.text() or kept,
                "password": self.password.text() or kept,
            }
            self.saved = self.store.save(
                profile,
                token=values["token"],
                password=values["password"],
                replaces=self.original.name if self.original else None,
            )
        except (LablinkError, ValueError) as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.accept()
