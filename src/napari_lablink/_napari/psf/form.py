"""The settings half of the PSF widget: backend, exposure, z range, crop, channels, scale.

It only turns what the user typed into a ``StackPlan`` (and back from what a backend reports),
so the dock widget stays glue and the form can be checked without acquiring anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QWidget,
)

from napari_lablink._napari.psf.backends import MMSettings
from napari_lablink.acquisition import BackendInfo, StackPlan, ZMode

__all__ = ["COLORMAPS", "AcquisitionForm"]

# black-based first: with additive blending a channel's background then stays black
COLORMAPS = ("green", "magenta", "cyan", "yellow", "plasma", "viridis", "magma", "gray")
_Z_MODES = {"stage (Micro-Manager moves z)": ZMode.STAGE, "external sweep (DAQ)": ZMode.EXTERNAL}


def _spin(lo: float, hi: float, value: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box


class AcquisitionForm(QWidget):
    """Backend choice and plan settings. ``backend_changed(name)`` fires on a new choice."""

    backend_changed = Signal(str)
    scale_changed = Signal()

    def __init__(self, backends: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = QComboBox()
        self.backend.addItems(list(backends))
        self.config_file = QLineEdit()
        self.config_file.setPlaceholderText("Micro-Manager .cfg (empty: the running core)")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse_config)
        config_row = QHBoxLayout()
        config_row.setContentsMargins(0, 0, 0, 0)
        config_row.addWidget(self.config_file)
        config_row.addWidget(browse)
        self.adapter_path = QLineEdit()
        self.adapter_path.setPlaceholderText("device adapter folder (pycromanager/pymmcore)")
        self.exposure = _spin(0.01, 10_000, 5.0, 2, " ms")
        self.z_start = _spin(-100_000, 100_000, 0.0, 3, " µm")
        self.z_end = _spin(-100_000, 100_000, 10.0, 3, " µm")
        self.slices = QSpinBox()
        self.slices.setRange(1, 10_000)
        self.slices.setValue(41)
        self.slices.setKeyboardTracking(False)
        self.z_step = _spin(-10_000, 10_000, 0.25, 4, " µm")
        self.z_mode = QComboBox()
        for label, mode in _Z_MODES.items():
            self.z_mode.addItem(label, mode)
        self.crop_w = QSpinBox()
        self.crop_h = QSpinBox()
        for box in (self.crop_w, self.crop_h):
            box.setRange(0, 65_536)
            box.setSpecialValueText("full")
            box.setSuffix(" px")
        crop_row = QHBoxLayout()
        crop_row.setContentsMargins(0, 0, 0, 0)
        crop_row.addWidget(self.crop_w)
        crop_row.addWidget(self.crop_h)
        self.pixel_size = _spin(0.0001, 1000, 0.1, 4, " µm")
        self.channels = QTableWidget(0, 3)
        self.channels.setHorizontalHeaderLabels(["use", "channel", "colormap"])
        header = self.channels.horizontalHeader()
        rows = self.channels.verticalHeader()
        assert header is not None and rows is not None  # a table view always has its headers
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        rows.setVisible(False)
        self.channels.setMaximumHeight(90)
        self.set_channels(("default",))

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("backend", self.backend)
        form.addRow("config", config_row)
        form.addRow("adapters", self.adapter_path)
        form.addRow("exposure", self.exposure)
        form.addRow("z start", self.z_start)
        form.addRow("z end", self.z_end)
        form.addRow("slices", self.slices)
        form.addRow("z step", self.z_step)
        form.addRow("z mode", self.z_mode)
        form.addRow("crop w x h", crop_row)
        form.addRow("pixel size", self.pixel_size)
        form.addRow("channels", self.channels)

        self.backend.currentTextChanged.connect(self.backend_changed)
        for end in (self.z_start, self.z_end):
            end.valueChanged.connect(self._range_to_step)
        self.slices.valueChanged.connect(self._range_to_step)
        self.z_step.valueChanged.connect(self._step_to_range)
        self.z_step.valueChanged.connect(self.scale_changed)
        self.pixel_size.valueChanged.connect(self.scale_changed)

    # -- reading -------------------------------------------------------------------------------

    def mm_settings(self) -> MMSettings:
        return MMSettings(
            config_file=self.config_file.text().strip() or None,
            adapter_path=self.adapter_path.text().strip() or None,
        )

    def selected_channels(self) -> list[tuple[str, str]]:
        """(name, colormap) of every channel ticked for acquisition, in table order."""
        out = []
        for row in range(self.channels.rowCount()):
            use = self.channels.cellWidget(row, 0)
            name = self._channel_name(row).strip()
            cmap = self.channels.cellWidget(row, 2)
            if isinstance(use, QCheckBox) and use.isChecked() and name:
                assert isinstance(cmap, QComboBox)  # set_channels puts one in every row
                out.append((name, cmap.currentText()))
        return out

    def plan(self, n_stacks: int | None = None) -> StackPlan:
        """The plan the fields describe; ``ValueError`` with the reason if they do not make one."""
        channels = [name for name, _ in self.selected_channels()]
        if not channels:
            raise ValueError("tick at least one channel to acquire")
        w, h = self.crop_w.value(), self.crop_h.value()
        return StackPlan(
            z_start_um=self.z_start.value(),
            z_end_um=self.z_end.value(),
            n_slices=self.slices.value(),
            z_mode=self.z_mode.currentData(),
            channels=tuple(channels),
            exposure_ms=self.exposure.value(),
            n_stacks=n_stacks,
            crop=(h, w) if w and h else None,
        )

    # -- writing -------------------------------------------------------------------------------

    def set_channels(self, names: Sequence[str]) -> None:
        """One row per channel the backend offers, all ticked, each with its own colormap."""
        self.channels.setRowCount(0)
        for row, name in enumerate(names or ("default",)):
            self.channels.insertRow(row)
            use = QCheckBox()
            use.setChecked(True)
            self.channels.setCellWidget(row, 0, use)
            self.channels.setItem(row, 1, QTableWidgetItem(name))
            cmap = QComboBox()
            cmap.addItems(COLORMAPS)
            cmap.setCurrentIndex(row % len(COLORMAPS))
            self.channels.setCellWidget(row, 2, cmap)

    def _channel_name(self, row: int) -> str:
        item = self.channels.item(row, 1)
        assert item is not None  # set_channels puts one in every row
        return item.text()

    def apply_info(self, info: BackendInfo) -> None:
        """Fill what the backend knows: pixel size, z step, channels, crop bounds."""
        if info.pixel_size_um:
            self.pixel_size.setValue(info.pixel_size_um)
        if info.z_step_um:
            self.z_step.setValue(info.z_step_um)
        h, w = info.frame_shape
        self.crop_h.setMaximum(h)
        self.crop_w.setMaximum(w)
        names = info.channels or ("default",)
        current = tuple(self._channel_name(r) for r in range(self.channels.rowCount()))
        if current != tuple(names):
            self.set_channels(names)

    def _range_to_step(self) -> None:
        n = self.slices.value()
        step = (self.z_end.value() - self.z_start.value()) / (n - 1) if n > 1 else 0.0
        self.z_step.blockSignals(True)
        self.z_step.setValue(step)
        self.z_step.blockSignals(False)
        self.scale_changed.emit()

    def _step_to_range(self) -> None:
        end = self.z_start.value() + self.z_step.value() * (self.slices.value() - 1)
        self.z_end.blockSignals(True)
        self.z_end.setValue(end)
        self.z_end.blockSignals(False)

    def _browse_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Micro-Manager configuration", "", "Micro-Manager config (*.cfg)"
        )
        if path:
            self.config_file.setText(path)

    def set_running(self, running: bool) -> None:
        """Settings that define the buffers cannot change under a run; the rest can."""
        for box in (self.backend, self.config_file, self.adapter_path, self.channels):
            box.setEnabled(not running)
