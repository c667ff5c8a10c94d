"""The "Upload to MIBItracker" dock widget, in two sections: add one image layer as a channel of
a tracker image, and save the selected channel layers as a MIBItiff to a run (what the writer
does for ``viewer.layers.save("mibi+http://HOST/runs/LABEL")``, which napari's file dialog
cannot be given).

Uploads run in a background job (:mod:`.workers`) so the viewer stays responsive, with a
progress bar and a Cancel button in the widget (a tracker upload is one request: Cancel stops it
before that request is sent); the result or the error goes to a notification and the status line,
a cancel as information. Targets are pre-filled from the layers' tracker images, else from the
user's MIBItracker profiles. Layers are only read: whatever happens, the viewer's layers stay as
they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.connections import Connections, close_with, watch_layer_list
from napari_lablink._napari.upload.tracker import (
    STEPS,
    upload_channel_layer,
    upload_layers_to_run,
)
from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.errors import LablinkError, UploadCancelledError
from napari_lablink.client.uri import is_remote_uri, parse_uri
from napari_lablink.profiles import ProfileStore

if TYPE_CHECKING:
    import napari

__all__ = ["TrackerUploadWidget"]

TITLE = "Upload to MIBItracker"


class TrackerUploadWidget(QWidget):
    """Uploads one 2-D image layer as a new channel of a tracker image, or the selected channel
    layers as a MIBItiff to a run."""

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        store: ProfileStore | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._workers = Workers()
        self._links = Connections()
        self._task: Task | None = None
        self.last_uri: str | None = None
        #: The channel name follows the layer until the user types one of their own.
        self._channel_edited = False

        self.layer = QComboBox()
        self.target = QLineEdit()
        self.target.setPlaceholderText("mibi+http://HOST:PORT/images/ID")
        self.target.setToolTip(
            "The tracker image that gets the channel; the login is your MIBItracker profile's "
            "(Lablink browser)"
        )
        self.channel = QLineEdit()
        self.channel.setPlaceholderText("channel name (default: the layer's)")
        self.channel.textEdited.connect(self._channel_typed)
        self.upload_button = QPushButton("Upload")
        self.run = QLineEdit()
        self.run.setPlaceholderText("mibi+http://HOST:PORT/runs/LABEL[/FOV]")
        self.run.setToolTip(
            "Without a FOV the upload adds one after the run's last; with one it fills that FOV"
        )
        self.run_button = QPushButton("Upload selected layers as a MIBItiff")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, STEPS)
        self.progress.setFormat("%p%")
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Layer", self.layer)
        form.addRow("Image", self.target)
        form.addRow("Channel", self.channel)
        heading = QLabel("<b>Upload a layer as a new channel of a MIBItracker image</b>")
        heading.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.upload_button)
        run_heading = QLabel(
            "<b>Save the selected layers as a MIBItiff to a run</b><br>"
            "Name each layer 'Target (mass)', e.g. CD45 (150); scale in um"
        )
        run_heading.setWordWrap(True)
        run_form = QFormLayout()
        run_form.addRow("Run", self.run)
        layout.addSpacing(12)
        layout.addWidget(run_heading)
        layout.addLayout(run_form)
        layout.addWidget(self.run_button)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        layout.addLayout(running)
        layout.addWidget(self.status)
        layout.addStretch()

        self.upload_button.clicked.connect(self.upload)
        self.run_button.clicked.connect(self.upload_to_run)
        self.cancel_button.clicked.connect(self.cancel)
        self.layer.currentTextChanged.connect(self._layer_chosen)
        watch_layer_list(self._links, viewer, self._refresh_layers, selection="active")
        close_with(self, self._links, self._workers)
        self._refresh_layers()
        server = self._tracker_server(store)
        self.target.setText(self._default_target() or (f"{server}/images/" if server else ""))
        self.run.setText(f"{server}/runs/" if server else "")

    def _default_target(self) -> str:
        """The image of the first layer opened from a tracker, if any."""
        for layer in self.viewer.layers:
            uri = (layer.metadata or {}).get("lablink", {}).get("uri")
            if not is_remote_uri(uri) or not str(uri).startswith(("mibi://", "mibi+")):
                continue  # a local MIBItiff's path, or another server's image
            image_id = (layer.metadata["lablink"].get("server_metadata") or {}).get("image_id")
            if image_id is not None:
                return f"{parse_uri(uri).server}/images/{image_id}"
        return ""

    def _tracker_server(self, store: ProfileStore | None) -> str:
        """The server of a tracker layer, else of the first MIBItracker profile ("" if none):
        the targets start there, and the user types the image id or run label."""
        for layer in self.viewer.layers:
            uri = (layer.metadata or {}).get("lablink", {}).get("uri")
            if is_remote_uri(uri) and str(uri).startswith(("mibi://", "mibi+")):
                return parse_uri(uri).server
        try:
            profiles = (store or ProfileStore(secrets=None)).profiles()
            return next((p.uri for p in profiles if p.kind == "mibi"), "")
        except LablinkError:
            return ""

    def _refresh_layers(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        names = [layer.name for layer in self.viewer.layers if layer._type_string == "image"]
        current = active.name if active is not None and active.name in names else None
        current = current or self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        if current in names:
            self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self._layer_chosen(self.layer.currentText())

    def _layer_chosen(self, name: str) -> None:
        if not self._channel_edited:
            self.channel.setText(name)

    def _channel_typed(self, text: str) -> None:
        self._channel_edited = bool(text.strip())

    def upload(self) -> None:
        """Start the upload (returns at once; the work runs in a thread)."""
        name = self.layer.currentText()
        if name not in self.viewer.layers:
            self._failed("choose an image layer to upload")
            return
        layer = self.viewer.layers[name]
        data = layer.data[0] if layer.multiscale else layer.data
        if layer.rgb or data.ndim != 2:
            self._failed(
                f"layer {name!r} has shape {tuple(data.shape)}; a tracker channel is one 2-D "
                "grayscale plane"
            )
            return
        if data.dtype.kind not in "biuf":
            self._failed(f"layer {name!r} is {data.dtype}; a tracker channel holds numbers")
            return
        target = self.target.text().strip()
        channel = self.channel.text().strip() or name
        self._start(
            f"Uploading {name!r} as channel {channel!r}...",
            f"Uploaded channel {channel!r} to",
            upload_channel_layer,
            target,
            data,
            channel,
        )

    def upload_to_run(self) -> None:
        """Start uploading the selected image layers as one MIBItiff to the run (in a thread)."""
        layers = [layer for layer in self.viewer.layers.selection if layer._type_string == "image"]
        if not layers:
            self._failed("select the channel layers to save as a MIBItiff")
            return
        ordered = [layer for layer in self.viewer.layers if layer in layers]
        names = ", ".join(layer.name for layer in ordered)
        self._start(
            f"Uploading {names} as a MIBItiff...",
            f"Uploaded {names} as a MIBItiff to",
            _upload_to_run,
            self.run.text().strip(),
            [layer.as_layer_data_tuple() for layer in ordered],
        )

    def _start(self, doing: str, done: str, work: Callable[..., str], *args: Any) -> None:
        self.upload_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText(doing)
        self._task = self._workers.start(
            lambda task: work(*args, progress=task.report, cancel=task.cancelled),
            done=lambda uri: self._done(uri, done),
            failed=self._job_failed,
            progress=lambda step, total: self.progress.setValue(step),
            finished=self._finished,
        )

    def cancel(self) -> None:
        """Stop the running upload before its request is sent (once sent, it completes)."""
        if self._task is not None and self._task.running:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling...")

    def _finished(self) -> None:
        self.upload_button.setEnabled(True)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.hide()

    def _job_failed(self, exc: Exception) -> None:
        if isinstance(exc, UploadCancelledError):
            message = f"{TITLE} cancelled; nothing was sent"
            self.status.setText(message)
            show_info(message)  # the user asked for it: no error
            return
        self._failed(describe(exc))

    def _done(self, uri: str, done: str) -> None:
        self.last_uri = uri
        message = f"{done} {uri}"
        self.status.setText(message)
        show_info(f"{TITLE}: {message}")

    def _failed(self, reason: str) -> None:
        message = f"{TITLE} failed: {reason}"
        self.status.setText(message)
        show_error(message)

    def closeEvent(self, event: Any) -> None:
        self.close_connections()
        super().closeEvent(event)

    def close_connections(self) -> None:
        """Disconnect from the viewer's events; a running upload finishes unseen."""
        self._links.close()
        self._workers.close()


def _upload_to_run(path: str, layer_data: list[tuple[Any, dict, str]], **steps: Any) -> str:
    (uri,) = upload_layers_to_run(path, layer_data, **steps)
    return uri
