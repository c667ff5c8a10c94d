"""The alignment assistant's live plots, drawn with pyqtgraph (made for plots that update live).

Beside the napari views: the x, y and z profiles through the selected bead with the fitted
curves; the mean FWHMs and signal-to-background of the last ``HISTORY`` stacks, with the ideal
widths of the objective as dashed reference lines, so turning a knob shows at once whether
alignment got better; the read-outs of ``acquisition.psf.alignment``; and the average PSF as
XY, XZ and YZ.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QSize
from qtpy.QtWidgets import QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from napari_lablink.acquisition import PSFResult
from napari_lablink.acquisition.psf import Optics
from napari_lablink.acquisition.psf.results import Alignment, BeadAlignment

__all__ = ["HISTORY", "AlignmentPlots", "alignment_text"]

HISTORY = 60  # stacks shown in the FWHM-over-time plot
_AXES = ("x", "y", "z")
_COLOURS = {"x": "#4fc3f7", "y": "#ffb74d", "z": "#ba68c8"}


def _spin(lo: float, hi: float, value: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box


def _num(value: float, digits: int = 2, unit: str = "") -> str:
    return "-" if not math.isfinite(value) else f"{value:+.{digits}f}{unit}"


def alignment_text(a: Alignment) -> str:
    """The read-outs in a line each, signed so that zero is aligned."""
    tilt_y, tilt_x = a.focus_tilt
    fx, fy, fz = (v * 100 if math.isfinite(v) else v for v in a.fwhm_field_change)
    return "\n".join(
        [
            f"axial asymmetry {_num(a.axial_asymmetry)} (spherical aberration; + wider above)",
            f"astigmatism {_num(a.astigmatism_um, 2, ' µm')} (x focus - y focus)",
            f"drift with z x {_num(a.drift_x, 3)}, y {_num(a.drift_y, 3)} µm/µm (coma, tilt)",
            f"focus tilt x {_num(tilt_x, 3)}, y {_num(tilt_y, 3)} µm/µm across the field",
            f"FWHM change across the field x {_num(fx, 0, ' %')}, y {_num(fy, 0, ' %')}, "
            f"z {_num(fz, 0, ' %')}",
        ]
    )


class AlignmentPlots(QWidget):
    """Profiles, history, read-outs and the average PSF of the newest result."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.na = _spin(0.05, 1.7, 1.4, 2)
        self.wavelength = _spin(0.2, 2.0, 0.51, 3, " µm")
        self.immersion = _spin(1.0, 1.8, 1.515, 3)
        optics = QHBoxLayout()
        for label, box in (("NA", self.na), ("λ em", self.wavelength), ("n", self.immersion)):
            optics.addWidget(QLabel(label))
            optics.addWidget(box, 1)
        self.profiles: dict[str, pg.PlotWidget] = {}
        self.data_curves: dict[str, pg.PlotDataItem] = {}
        self.fit_curves: dict[str, pg.PlotDataItem] = {}
        grid = QGridLayout()
        for i, axis in enumerate(_AXES):
            plot = pg.PlotWidget(title=f"{axis} profile")
            plot.setLabel("bottom", f"{axis} (µm)")
            plot.setMinimumSize(60, 110)
            self.data_curves[axis] = plot.plot(
                [], [], pen=None, symbol="o", symbolSize=4, symbolBrush=_COLOURS[axis]
            )
            self.fit_curves[axis] = plot.plot([], [], pen=pg.mkPen("w", width=1.5))
            self.profiles[axis] = plot
            grid.addWidget(plot, 0, i)
        self.history_plot = pg.PlotWidget(title="FWHM (µm) over the last stacks")
        self.history_plot.addLegend(offset=(-5, 5))
        self.history_plot.setMinimumSize(60, 120)
        self.history_curves = {
            a: self.history_plot.plot([], [], pen=pg.mkPen(_COLOURS[a], width=2), name=a)
            for a in _AXES
        }
        self.theory_lines = {
            a: pg.InfiniteLine(
                angle=0, movable=False, pen=pg.mkPen(_COLOURS[a], style=pg.QtCore.Qt.DashLine)
            )
            for a in ("x", "z")  # y's ideal width is x's
        }
        for line in self.theory_lines.values():
            self.history_plot.addItem(line)
        self.sbr_plot = pg.PlotWidget(title="signal / background")
        self.sbr_plot.setMinimumSize(60, 90)
        self.sbr_curve = self.sbr_plot.plot([], [], pen=pg.mkPen("#81c784", width=2))
        grid.addWidget(self.history_plot, 1, 0, 1, 2)
        grid.addWidget(self.sbr_plot, 1, 2)
        self.average_views: dict[str, pg.ImageItem] = {}
        averages = QHBoxLayout()
        for name in ("XY", "XZ", "YZ"):
            view = pg.GraphicsLayoutWidget()
            view.setMinimumSize(40, 70)
            view.setMaximumHeight(110)
            box = view.addViewBox(lockAspect=True, invertY=True)
            image = pg.ImageItem(axisOrder="row-major")
            box.addItem(image)
            box.setMouseEnabled(False, False)
            column = QVBoxLayout()
            column.addWidget(QLabel(f"average PSF {name}"))
            column.addWidget(view, 1)
            averages.addLayout(column)
            self.average_views[name] = image
        self.readout = QLabel("-")
        self.readout.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(optics)
        layout.addLayout(grid, 1)
        layout.addWidget(self.readout)
        layout.addLayout(averages)
        self._history: deque[tuple[int, float, float, float, float]] = deque(maxlen=HISTORY)
        self._count = 0
        for box in (self.na, self.wavelength, self.immersion):
            box.valueChanged.connect(self._update_theory)
        self._update_theory()

    def sizeHint(self) -> QSize:
        """As narrow as the form: pyqtgraph's views each ask for 640 px, which would widen
        the dock and shrink the canvas."""
        return QSize(380, 520)

    def optics(self) -> Optics | None:
        try:
            return Optics(self.na.value(), self.wavelength.value(), self.immersion.value())
        except ValueError:
            return None

    def set_optics(self, na: float, wavelength_um: float, immersion_index: float) -> None:
        self.immersion.setValue(immersion_index)
        self.na.setValue(na)
        self.wavelength.setValue(wavelength_um)

    def clear(self) -> None:
        """Forget the history and the curves (a new run or channel)."""
        self._history.clear()
        for curve in (*self.data_curves.values(), *self.fit_curves.values()):
            curve.setData([], [])
        for curve in (*self.history_curves.values(), self.sbr_curve):
            curve.setData([], [])
        for image in self.average_views.values():
            image.clear()
        self.readout.setText("-")

    def history(self) -> np.ndarray:
        """(stack, fwhm x, fwhm y, fwhm z, signal/background) rows, oldest first."""
        return np.array(self._history, dtype=float).reshape(-1, 5)

    def add_result(self, result: PSFResult, selected: int | None) -> None:
        """One more stack: history, read-outs, average PSF and the selected bead's profiles."""
        s = result.summary
        self._count += 1
        index = result.stack_index if result.stack_index >= 0 else self._count
        self._history.append((index, s.fwhm_x_um, s.fwhm_y_um, s.fwhm_z_um, s.signal_to_background))
        h = self.history()
        for i, axis in enumerate(_AXES):
            self.history_curves[axis].setData(h[:, 0], h[:, 1 + i])
        self.sbr_curve.setData(h[:, 0], h[:, 4])
        a = result.alignment
        if a is None:
            return
        self.readout.setText(alignment_text(a))
        if a.average_psf is not None:
            avg = a.average_psf
            cz, cy, cx = (n // 2 for n in avg.shape)
            levels = (0.0, max(float(avg.max()), 1e-6))
            # the axial cuts are stretched to the lateral pixel so they keep their proportions
            dz, px, _ = a.voxel_um
            for name, cut, stretch in (
                ("XY", avg[cz], 1.0),
                ("XZ", avg[:, cy, :], dz / px),
                ("YZ", avg[:, :, cx], dz / px),
            ):
                image = self.average_views[name]
                image.setImage(cut, levels=levels)
                image.setRect(0, 0, cut.shape[1], cut.shape[0] * stretch)
        self.show_bead(a, selected)

    def show_bead(self, a: Alignment, selected: int | None) -> None:
        bead: BeadAlignment | None = a.bead(selected) if selected is not None else None
        if bead is None and a.beads:
            bead = a.beads[0]
        if bead is None:
            return
        for axis, profile in zip(_AXES, (bead.x, bead.y, bead.z), strict=True):
            self.data_curves[axis].setData(profile.position_um, profile.values)
            fine = np.linspace(profile.position_um.min(), profile.position_um.max(), 200)
            self.fit_curves[axis].setData(fine, profile.model(fine))

    def _update_theory(self) -> None:
        optics = self.optics()
        for axis, line in self.theory_lines.items():
            if optics is None:
                line.hide()
                continue
            fx, _, fz = optics.fwhm_um()
            line.setValue(fx if axis == "x" else fz)
            line.show()
