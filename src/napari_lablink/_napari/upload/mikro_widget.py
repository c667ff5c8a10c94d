"""The "Upload to mikro" dock widget: pick a server, layers, a name and tags; watch it upload.

Its "annotations" choice saves Shapes/Points layers as ROIs of one image instead (an image open
from that server, a URI or an id; :mod:`.mikro_rois`), with the same progress and Cancel.

The upload runs in a background job (:mod:`.workers`) so the viewer stays responsive; its
progress bar and Cancel button are in the widget, the result or the error also goes to a
notification (a cancel is information, not an error). The targets offered are the user's mikro
profiles (their scheme, host and path prefix). Layers are only read: whatever happens, they stay
as they are in the viewer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_lablink._napari.connections import Connections, close_with, watch_layer_list
from napari_lablink._napari.roi_live import remember_ids
from napari_lablink._napari.upload.mikro_layers import UploadJob, jobs_from_layer_data
from napari_lablink._napari.upload.mikro_rois import (
    ROI_LAYER_TYPES,
    annotation_target,
    check_annotations,
    ids_per_layer,
    open_image_uris,
    save_annotations,
)
from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.connection import as_uploader, shared_connection
from napari_lablink.client.errors import LablinkError, UploadCancelledError
from napari_lablink.client.mikro.rois import SaveReport
from napari_lablink.client.uri import RemoteURI, parse_uri
from napari_lablink.profiles import ProfileStore

if TYPE_CHECKING:
    import napari

__all__ = ["UploadWidget", "check_jobs", "mikro_targets"]

#: The data types mikro stores (zarr arrays any reader opens); others are refused up front.
_DTYPE_KINDS = "biuf"
#: What the widget uploads: the choice's text and the layer kinds it lists.
IMAGES, ANNOTATIONS = "images", "annotations"
_LAYER_TYPES = {IMAGES: ("image", "labels"), ANNOTATIONS: ROI_LAYER_TYPES}


def mikro_targets(store: ProfileStore | None = None) -> list[str]:
    """Upload targets of the user's mikro profiles: ``SCHEME://HOST[:PORT]/PREFIX/KIND``.

    A prefixed server is taken for generation 2 (``image``), an unprefixed one for generation 1
    (``representation``), as when browsing; the other kind can be typed in.
    """
    try:
        profiles = (store or ProfileStore(secrets=None)).profiles()
    except LablinkError:
        return []
    targets = []
    for profile in profiles:
        if profile.kind != "mikro":
            continue
        try:
            server = profile.server
        except LablinkError:
            continue
        target = f"{server.server}/{'image' if server.prefix else 'representation'}"
        if target not in targets:
            targets.append(target)
    return targets


class UploadWidget(QWidget):
    """Uploads the checked Image/Labels layers to a mikro server, or (``annotations``) the
    checked Shapes/Points layers as ROIs of one of its images."""

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
        self.last_uris: list[str] = []

        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.setToolTip(
            "mikro+http://HOST:PORT/image (generation 2) or .../representation (generation 1); "
            "add ?s3=<endpoint> if the server's S3 is not configured"
        )
        self.server.addItems(mikro_targets(store))
        editor = self.server.lineEdit()
        assert editor is not None  # an editable combo box has its line edit
        editor.setPlaceholderText("mikro+http://HOST:PORT/PREFIX/image")
        self.server.setCurrentText(self._default_target())
        self.what = QComboBox()
        self.what.addItems([IMAGES, ANNOTATIONS])
        self.what.setToolTip(
            "images: Image/Labels layers become new images; annotations: Shapes/Points layers "
            "become ROIs of an image"
        )
        self.image = QComboBox()
        self.image.setEditable(True)
        self.image.setToolTip(
            "The image the ROIs belong to: one open from a mikro server, its URI, or its id on "
            "the server above"
        )
        image_editor = self.image.lineEdit()
        assert image_editor is not None
        image_editor.setPlaceholderText("mikro+http://HOST:PORT/PREFIX/image/ID or an id")
        self.layers = QListWidget()
        self.layers.setMaximumHeight(140)
        self.name = QLineEdit()
        self.name.setPlaceholderText("name on the server (default: the layer's)")
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("comma-separated tags")
        self.pyramid = QCheckBox("build a pyramid (generation 2)")
        self.upload_button = QPushButton("Upload")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Upload", self.what)
        form.addRow("Server", self.server)
        form.addRow("Image", self.image)
        form.addRow("Layers", self.layers)
        form.addRow("Name", self.name)
        form.addRow("Tags", self.tags)
        form.addRow("", self.pyramid)
        self._form = form
        buttons = QHBoxLayout()
        buttons.addWidget(self.upload_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

        self.what.currentTextChanged.connect(self._mode_changed)
        self.upload_button.clicked.connect(self.upload)
        self.cancel_button.clicked.connect(self.cancel)
        watch_layer_list(self._links, viewer, self._refresh_layers)
        close_with(self, self._links, self._workers)
        self._mode_changed()

    @property
    def mode(self) -> str:
        return self.what.currentText()

    def _mode_changed(self, *_: object) -> None:
        """Show the fields of the current choice: an image for annotations, a name, tags and
        a pyramid for images."""
        annotations = self.mode == ANNOTATIONS
        for widget, shown in (
            (self.image, annotations),
            (self.name, not annotations),
            (self.tags, not annotations),
            (self.pyramid, not annotations),
        ):
            widget.setVisible(shown)
            label = self._form.labelForField(widget)
            if label is not None:
                label.setVisible(shown)
        self._refresh_layers()

    def _default_target(self) -> str:
        for layer in self.viewer.layers:
            uri = layer.metadata.get("lablink", {}).get("uri") if layer.metadata else None
            if uri and uri.startswith("mikro"):
                parsed = parse_uri(uri)
                return f"{parsed.server}/{parsed.kind}"
        return self.server.itemText(0) if self.server.count() else ""

    def _refresh_layers(self, event: Any = None) -> None:
        checked = set(self._checked_names())
        selected = {layer.name for layer in self.viewer.layers.selection}
        self.layers.clear()
        wanted = _LAYER_TYPES[self.mode]
        for layer in self.viewer.layers:
            if layer._type_string not in wanted:
                continue
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = layer.name in (checked or selected)
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.layers.addItem(item)
        self._refresh_images()

    def _refresh_images(self) -> None:
        """Offer the mikro images open in the viewer, keeping whatever was typed."""
        typed = self.image.currentText()
        self.image.blockSignals(True)
        self.image.clear()
        self.image.addItems(open_image_uris(list(self.viewer.layers)))
        self.image.setCurrentText(typed or (self.image.itemText(0) if self.image.count() else ""))
        self.image.blockSignals(False)

    def checked_layers(self) -> list:
        names = self._checked_names()
        return [self.viewer.layers[name] for name in names if name in self.viewer.layers]

    def _checked_names(self) -> list[str]:
        items = (self.layers.item(i) for i in range(self.layers.count()))
        return [
            item.text()
            for item in items
            if item is not None and item.checkState() == Qt.CheckState.Checked
        ]

    def upload(self) -> None:
        """Start uploading the checked layers (returns at once; the work runs in a thread)."""
        if self.mode == ANNOTATIONS:
            self.upload_annotations()
            return
        layers = self.checked_layers()
        target = self.server.currentText().strip()
        if not layers:
            self._refuse("check at least one Image or Labels layer")
            return
        try:
            parsed = parse_uri(target)
            if parsed.scheme != "mikro" or parsed.object_id is not None:
                raise LablinkError(
                    f"{target!r} is not a mikro upload target",
                    hint="Use mikro+http://HOST:PORT/image or .../representation, without an id",
                )
            jobs = jobs_from_layer_data(
                [layer.as_layer_data_tuple() for layer in layers],
                target,
                name=self.name.text().strip() or None,
            )
        except LablinkError as exc:
            self._refuse(str(exc))
            return
        problem = check_jobs(jobs)
        if problem:
            self._refuse(problem)
            return
        tags = [t.strip() for t in self.tags.text().split(",") if t.strip()]
        pyramid = self.pyramid.isChecked() and parsed.kind == "image"
        self._set_running(True)
        self.status.setText(f"Uploading {', '.join(layer.name for layer in layers)}...")
        self._task = self._workers.start(
            lambda task: _upload(task, parsed, jobs, tags, pyramid),
            done=self._done,
            failed=self._failed,
            progress=self._show_progress,
            finished=lambda: self._set_running(False),
        )

    def upload_annotations(self) -> None:
        """Save the checked Shapes/Points layers as ROIs of the chosen image, in a thread."""
        layers = self.checked_layers()
        if not layers:
            self._refuse("check at least one Shapes or Points layer")
            return
        try:
            target = annotation_target(self.image.currentText(), self.server.currentText())
        except LablinkError as exc:
            self._refuse(str(exc))
            return
        problem = check_annotations(layers, target)
        if problem:
            self._refuse(problem)
            return
        # The layers themselves, not their names: they learn their ROI ids when it is done.
        data = [layer.as_layer_data_tuple() for layer in layers]
        image = str(target.without_options())
        self._set_running(True)
        self.status.setText(f"Saving {', '.join(layer.name for layer in layers)} as ROIs...")
        self._task = self._workers.start(
            lambda task: save_annotations(task, target, data),
            done=lambda report: self._annotations_done(report, layers, image),
            failed=self._annotations_failed,
            progress=self._show_progress,
            finished=lambda: self._set_running(False),
        )

    def _annotations_done(self, report: SaveReport, layers: list[Any], image: str) -> None:
        sizes = [len(layer.data) for layer in layers]
        for layer, ids in zip(layers, ids_per_layer(report, sizes), strict=True):
            if len(layer.data) == len(ids):  # unchanged since the upload started
                remember_ids(layer, ids, image)
        for warning in report.warnings:
            show_warning(f"Upload to mikro: {warning}")
        message = (
            f"Saved {len(report.ids)} ROI(s) to {image}: {len(report.created)} new, "
            f"{len(report.updated)} moved, {len(report.deleted)} deleted"
        )
        self.last_uris = [image]
        self.status.setText(message + "".join(f"\n{w}" for w in report.warnings))
        show_info(message)

    def _annotations_failed(self, exc: Exception) -> None:
        if isinstance(exc, UploadCancelledError):
            self.status.setText(str(exc))
            show_info(str(exc))
            return
        message = f"Saving ROIs to mikro failed: {describe(exc)}"
        self.status.setText(message)
        show_error(message)

    def _refuse(self, reason: str) -> None:
        """Nothing was sent: say why, in the widget and as a notification."""
        message = f"Upload to mikro: {reason}"
        self.status.setText(message)
        show_error(message)

    def _show_progress(self, done: int, total: int) -> None:
        """Move the widget's progress bar (on the Qt thread, whatever thread reported)."""
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))

    def cancel(self) -> None:
        if self._task is not None and self._task.running:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling...")

    def _set_running(self, running: bool) -> None:
        self.upload_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first chunk is counted

    def _done(self, uris: list[str]) -> None:
        self.last_uris = uris
        self.status.setText("Uploaded: " + "  ".join(uris))
        clipboard = QApplication.clipboard()
        if clipboard is not None:  # None only without a running QApplication
            clipboard.setText("\n".join(uris))
        show_info("Uploaded to mikro (URI copied to the clipboard): " + ", ".join(uris))

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, UploadCancelledError):
            message = "Upload cancelled; nothing was registered on the server"
            self.status.setText(message)
            show_info(message)  # the user asked for it: no error
            return
        message = f"Upload to mikro failed: {describe(exc)}"
        self.status.setText(message)
        show_error(message)

    def closeEvent(self, event: Any) -> None:
        self.close_connections()
        super().closeEvent(event)

    def close_connections(self) -> None:
        """Disconnect from the viewer and stop a running upload (nothing gets registered)."""
        self._links.close()
        self._workers.close()
        self._set_running(False)


def check_jobs(jobs: list[UploadJob]) -> str | None:
    """Why these uploads cannot go, found before anything is sent (None if they can); layer
    data set from code can be what napari's own checks would refuse."""
    for job in jobs:
        dtype = job.data.dtype
        if dtype.kind not in _DTYPE_KINDS:
            return f"{job.name!r} has data type {dtype}; mikro stores numbers (integers, floats)"
        if any(n == 0 for n in job.data.shape):
            return f"{job.name!r} is empty (shape {tuple(job.data.shape)})"
        if job.labels and dtype.kind == "f":
            return f"labels {job.name!r} are floats ({dtype}); labels must be integers"
    return None


def _upload(
    task: Task, target: RemoteURI, jobs: list[UploadJob], tags: list[str], pyramid: bool
) -> list[str]:
    """In a worker thread: one upload per job, stopped by the task's cancel."""
    server = as_uploader(shared_connection(target))
    return [
        server.upload(
            job.data,
            kind=target.kind,
            tags=tags,
            pyramid=pyramid,
            progress=task.report,
            cancel=task.cancelled,
            **job.kwargs(),
        )
        for job in jobs
    ]
