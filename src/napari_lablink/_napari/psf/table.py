"""The PSF table: one row per bead (fitted or failed) and a mean row, from a ``PSFResult``."""

from __future__ import annotations

import math
from typing import Any, cast

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_lablink.acquisition import PSFResult

__all__ = ["HEADERS", "PSFTable"]

HEADERS = ("bead", "x", "y", "z", "FWHM x", "FWHM y", "FWHM z", "SBR", "R²", "status")
TOOLTIPS = (
    "bead number (brightest first)",
    "bead centre x, µm",
    "bead centre y, µm",
    "bead centre z, µm",
    "full width at half maximum along x, µm",
    "full width at half maximum along y, µm",
    "full width at half maximum along z, µm",
    "signal to background: fitted peak over background",
    "fit quality: fraction of the window's variance the Gaussian explains",
    "ok, or why the bead could not be measured",
)
MEAN_LABEL = "mean"


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


class PSFTable(QTableWidget):
    """Read-only table; ``bead_selected(index)`` fires when the user picks a bead's row."""

    bead_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(list(HEADERS))
        for c, tip in enumerate(TOOLTIPS):
            label = self.horizontalHeaderItem(c)
            assert label is not None  # setHorizontalHeaderLabels made one per column
            label.setToolTip(tip)
        # the table scrolls rather than widening the dock (and shrinking the canvas)
        self.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustIgnored)
        rows = self.verticalHeader()
        assert rows is not None  # a table view always has its headers
        rows.setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self._beads: list[int | None] = []
        self._sized = False
        self.itemSelectionChanged.connect(self._on_selection)

    def show_result(self, result: PSFResult, selected: int | None = None) -> None:
        """Replace the rows; keeps ``selected`` (a bead index) highlighted without re-emitting."""
        rows: list[tuple[int | None, list[str]]] = []
        # the core's rows are name -> value for CSV and tables alike; here the names are known
        for row in cast(list[dict[str, Any]], result.rows()):
            ok = row["status"] == "ok"
            cells = [
                str(row["bead"]),
                _fmt(row["x_um"] if ok else row["x_px"] * result.pixel_size_um),
                _fmt(row["y_um"] if ok else row["y_px"] * result.pixel_size_um),
                _fmt(row["z_um"]) if ok else "-",
                *(
                    (_fmt(row[k]) for k in ("fwhm_x_um", "fwhm_y_um", "fwhm_z_um"))
                    if ok
                    else ("-",) * 3
                ),
                _fmt(row["signal_to_background"], 1) if ok else "-",
                _fmt(row["r_squared"]) if ok else "-",
                str(row["status"]),
            ]
            rows.append((int(row["bead"]) if ok else None, cells))
        s = result.summary
        rows.append(
            (
                None,
                [
                    MEAN_LABEL,
                    "",
                    "",
                    "",
                    _fmt(s.fwhm_x_um),
                    _fmt(s.fwhm_y_um),
                    _fmt(s.fwhm_z_um),
                    _fmt(s.signal_to_background, 1),
                    _fmt(s.r_squared),
                    f"{s.n_beads} ok, {s.n_failed} failed",
                ],
            )
        )
        spread = {4: s.fwhm_x_std_um, 5: s.fwhm_y_std_um, 6: s.fwhm_z_std_um}
        self.blockSignals(True)
        self.setUpdatesEnabled(False)
        try:
            self.setRowCount(len(rows))
            self._beads = [bead for bead, _ in rows]
            for r, (_, cells) in enumerate(rows):
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if 0 < c < len(HEADERS) - 1:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    if r == len(rows) - 1 and c in spread:
                        item.setToolTip(f"standard deviation over the beads: {spread[c]:.4f} µm")
                    self.setItem(r, c, item)
            self.clearSelection()
            if selected is not None and selected in self._beads:
                self.selectRow(self._beads.index(selected))
            if not self._sized:  # once: refitting columns on every stack costs ~50 ms
                self.resizeColumnsToContents()
                self._sized = True
        finally:
            self.setUpdatesEnabled(True)
            self.blockSignals(False)

    def mean_row(self) -> dict[str, str]:
        """The mean row's cells by header (for the readout and tests)."""
        last = self.rowCount() - 1
        if last < 0:
            return {}
        cells = [self.item(last, c) for c in range(len(HEADERS))]
        return {
            h: "" if cell is None else cell.text() for h, cell in zip(HEADERS, cells, strict=True)
        }

    def _on_selection(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            bead = self._beads[rows.pop()]
            if bead is not None:
                self.bead_selected.emit(bead)
