"""The dialog that adds or edits a server profile of the Lablink browser.

Secret fields start empty even when a secret is stored (it is never shown back): empty means
"keep what is stored", and "Forget stored secrets" removes them. Which fields a kind shows comes
from the schemes registry, so a MIBItracker profile offers no token and a PIMS one no secret.
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
from napari_lablink.client.schemes import scheme_info
from napari_lablink.profiles import KIND_NAMES, Profile, ProfileStore, normalise_url

__all__ = ["ProfileDialog"]

_PLACEHOLDERS = {
    "mikro": "http://127.0.0.1:8080/mikro",
    "mibi": "https://backend.mibitracker.example.org",
    "pims": "http://127.0.0.1:5000",
}
_STORED = "stored - leave empty to keep"
#: Wide enough for a full URL and an institutional email address.
_MIN_WIDTH = 460


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

        self.url.setToolTip("The server's address; a copied .../graphql endpoint is understood")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("URL", self.url)
        #: The optional fields by the registry's names, shown only for the kinds that use them.
        self._fields = {
            "s3": self.s3,
            "token": self.token,
            "email": self.email,
            "password": self.password,
        }
        titles = {"s3": "S3 endpoint", "token": "Token", "email": "Email", "password": "Password"}
        for key, field in self._fields.items():
            form.addRow(titles[key], field)
        self._form = form
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

        self.setMinimumWidth(_MIN_WIDTH)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        if profile is not None:
            self.kind.setCurrentIndex(list(KIND_NAMES).index(profile.kind))
        self._kind_changed()

    def fields(self) -> list[str]:
        """The optional fields the chosen kind shows (the registry's ``profile_fields``)."""
        info = scheme_info(self.kind.currentData())
        return list(info.profile_fields) if info else []

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.url.setPlaceholderText(_PLACEHOLDERS.get(kind, "https://HOST[:PORT][/PREFIX]"))
        shown = self.fields()
        for key, field in self._fields.items():
            field.setVisible(key in shown)
            label = self._form.labelForField(field)
            if label is not None:
                label.setVisible(key in shown)
        self.s3.setPlaceholderText("http://127.0.0.1:9000" if "s3" in shown else "")

    def save(self) -> None:
        """Store the profile and close, or show why it cannot be stored."""
        kind = self.kind.currentData()
        shown = self.fields()
        try:
            url = normalise_url(kind, self.url.text())
            self.url.setText(url)
            profile = Profile(
                name=self.name.text().strip(),
                kind=kind,
                url=url,
                s3=(self.s3.text().strip() or None) if "s3" in shown else None,
                email=(self.email.text().strip() or None) if "email" in shown else None,
            )
            # A typed secret replaces the stored one; empty keeps it, unless "forget" is ticked.
            # A field the kind does not show stores nothing (a token typed before switching).
            kept = "" if self.forget.isChecked() else None
            values = {
                key: (self._fields[key].text() or kept) if key in shown else kept
                for key in ("token", "password")
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
