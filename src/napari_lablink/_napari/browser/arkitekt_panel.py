"""The browser's "Add Arkitekt deployment" panel: find the deployment, show the code to approve,
wait (cancellable), then list the services it granted.

It sits inside the browser's dock (no separate window to lose behind napari's). The login runs
in a napari worker (discovery, registration and the wait for approval all talk to the network);
the code reaches the panel through a Qt signal, so the worker never touches a widget. Like the
browser's, the worker never raises: every failure is a message in the panel.
"""

from __future__ import annotations

import logging
import threading

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.arkitekt import (
    ApprovalCancelledError,
    ApprovalPrompt,
    ArkitektSession,
    deployments,
)
from napari_lablink.client.arkitekt.deployments import open_in_browser

__all__ = ["ArkitektPanel"]

log = logging.getLogger(__name__)

_ERROR = "color: #ff6b6b;"
_DONE = "color: #5fd068;"


class ArkitektPanel(QGroupBox):
    """Log in to an Arkitekt deployment. ``logged_in(origin, name)`` fires once it granted what
    napari-lablink needs (``origin`` is ``scheme://host[:port]``); the session is then the
    process's for that deployment, so mikro URIs on that host use it."""

    logged_in = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Add Arkitekt deployment", parent)
        self.session: ArkitektSession | None = None
        self.prompt: ApprovalPrompt | None = None
        self.opened: list[str] = []  # what "Open in browser" was asked to show
        self._cancel: threading.Event | None = None
        self._workers = Workers()
        self.destroyed.connect(self._workers.close)

        self.host = QLineEdit()
        self.host.setPlaceholderText("lab.example.org or http://127.0.0.1:8000")
        self.login_button = QPushButton("Log in")
        self.message = QLabel("Type the address of your lab's Arkitekt deployment.")
        self.message.setWordWrap(True)
        self.code = QLabel()
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.code.setStyleSheet("font-size: 20pt; font-weight: bold; letter-spacing: 3px;")
        self.url = QLabel()
        self.url.setWordWrap(True)
        self.url.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open in browser")
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: how long the user takes is unknown
        self.cancel_button = QPushButton("Cancel")
        self.services = QLabel()
        self.services.setWordWrap(True)
        self.services.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QPushButton("Close")
        # Squeezed by the browser's list below, the code would become unreadable: keep its height.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        address = QHBoxLayout()
        address.addWidget(self.host, 1)
        address.addWidget(self.login_button)
        approval = QFormLayout()
        approval.addRow("Code", self.code)
        approval.addRow("Approve at", self.url)
        waiting = QHBoxLayout()
        waiting.addWidget(self.progress, 1)
        waiting.addWidget(self.cancel_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(address)
        layout.addWidget(self.message)
        layout.addLayout(approval)
        layout.addLayout(waiting)
        layout.addWidget(self.services)
        layout.addLayout(buttons)

        self.login_button.clicked.connect(lambda: self.log_in(self.host.text()))
        self.host.returnPressed.connect(lambda: self.log_in(self.host.text()))
        self.open_button.clicked.connect(self.open_in_browser)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.dismiss)
        self._set_waiting(False)
        self._show_prompt(None)

    @property
    def waiting(self) -> bool:
        return self._cancel is not None

    def log_in(self, address: str) -> None:
        """Find the deployment at ``address`` and log in, off the Qt thread."""
        address = address.strip()
        if not address or self.waiting:
            return
        self.host.setText(address)
        self.session = None
        self.services.clear()
        self._show_prompt(None)
        self._say(f"Looking for the Arkitekt deployment at {address}…")
        cancel = self._cancel = threading.Event()
        self._set_waiting(True)

        def job(task: Task) -> ArkitektSession:
            return deployments.login(
                address, prompt=self._workers.on_main(self._show_prompt), cancel=cancel
            )

        self._workers.start(job, done=self._logged_in, failed=self._failed)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._say("Cancelling…")

    def open_in_browser(self) -> None:
        if self.prompt is not None:
            self.opened.append(self.prompt.url)
            open_in_browser(self.prompt.url)

    def _show_prompt(self, prompt: ApprovalPrompt | None) -> None:
        self.prompt = prompt
        self.code.setText(prompt.code if prompt else "")
        self.url.setText(prompt.url if prompt else "")
        self.open_button.setEnabled(prompt is not None and self.waiting)
        if prompt is not None:
            self._say("Approve napari-lablink in a browser logged in to the deployment. Waiting…")

    def _failed(self, error: Exception) -> None:
        self._stopped()
        if isinstance(error, ApprovalCancelledError):
            self._say("Login cancelled.", _ERROR)
        else:
            self._say(describe(error), _ERROR)

    def _stopped(self) -> None:
        self._cancel = None
        self._set_waiting(False)
        self.open_button.setEnabled(False)

    def _logged_in(self, session: ArkitektSession) -> None:
        self._stopped()
        self.session = session
        configuration = session.configuration
        self._say(f"Logged in to {configuration.deployment_name}.", _DONE)
        self.services.setText(
            "Granted: " + "; ".join(f"{key} ({s.url})" for key, s in configuration.services.items())
        )
        self.logged_in.emit(session.endpoint.label, configuration.deployment_name)

    def _set_waiting(self, waiting: bool) -> None:
        self.progress.setVisible(waiting)
        self.cancel_button.setVisible(waiting)
        self.cancel_button.setEnabled(waiting)
        self.login_button.setEnabled(not waiting)
        self.host.setEnabled(not waiting)

    def _say(self, text: str, style: str = "") -> None:
        self.message.setStyleSheet(style)
        self.message.setText(text)

    def dismiss(self) -> None:
        """Hide the panel; a login still waiting is cancelled."""
        self.cancel()
        self.hide()
