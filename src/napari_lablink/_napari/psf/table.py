"""The PSF table: one row per bead (fitted or failed) and a mean row, from a ``PSFResult``.

Nine narrow columns that share the dock's width (no horizontal scrolling): a failed bead says
why in its ``Q`` cell's tooltip, the mean row how many beads it averages, and R-squared, which
falls with the noise, sits in the ``Q`` tooltip beside the noise-independent quality.
"""

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

HEADERS = ("bead", "x", "y", "z", "FWHM x", "FWHM y", "FWHM z", "S/B", "Q")
TOOLTIPS = (
    "bead number (brightest first)",
    "bead centre x, µm",
    "bead centre y, µm",
    "bead centre z, µm",
    "full width at half maximum along x, µm",
    "full width at half maximum along y, µm",
    "full width at half maximum along z, µm",
    "signal to background: fitted peak over background",
    "fit quality: share of the bead's signal the fit explains, noise taken out (1 is perfect);"
    " 'failed' when the bead could not be measured (the reason in the cell's tooltip)",
)
MEAN_LABEL = "mean"
_Q = len(HEADERS) - 1


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
        # the columns share the width the dock has rather than widening it
        self.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustIgnored)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = self.verticalHeader()
        assert rows is not None  # a table view always has its headers
        rows.setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)
        self._beads: list[int | None] = []
        self.itemSelectionChanged.connect(self._on_selection)

    def clear_rows(self) -> None:
        """Empty the table (a new run: the previous run's beads no longer apply)."""
        self.blockSignals(True)
        self.setRowCount(0)
        self._beads = []
        self.blockSignals(False)

    def show_result(self, result: PSFResult, selected: int | None = None) -> None:
        """Replace the rows; keeps ``selected`` (a bead index) highlighted without re-emitting."""
        rows: list[tuple[int | None, list[str], dict[int, str]]] = []
        # the core's rows are name -> value for CSV and tables alike; here the names are known
        for row in cast(list[dict[str, Any]], result.rows()):
            ok = row["status"] == "ok"
            px = result.pixel_size_um
            cells = [
                str(row["bead"]),
                _fmt(row["x_um"] if ok else row["x_px"] * px, 2),
                _fmt(row["y_um"] if ok else row["y_px"] * px, 2),
                _fmt(row["z_um"], 2) if ok else "-",
                *(
                    (_fmt(row[k]) for k in ("fwhm_x_um", "fwhm_y_um", "fwhm_z_um"))
                    if ok
                    else ("-",) * 3
                ),
                _fmt(row["signal_to_background"], 1) if ok else "-",
                _fmt(row["quality"], 2) if ok else "failed",
            ]
            tip = f"R² {_fmt(row['r_squared'], 3)}" if ok else str(row["status"])
            rows.append((int(row["bead"]) if ok else None, cells, {_Q: tip}))
        s = result.summary
        counts = f"{s.n_beads} ok, {s.n_failed} failed"
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
                    _fmt(s.quality, 2),
                ],
                {
                    0: counts,
                    4: f"standard deviation over the beads: {s.fwhm_x_std_um:.4f} µm",
                    5: f"standard deviation over the beads: {s.fwhm_y_std_um:.4f} µm",
                    6: f"standard deviation over the beads: {s.fwhm_z_std_um:.4f} µm",
                    _Q: f"{counts}; mean R² {_fmt(s.r_squared, 3)}",
                },
            )
        )
        self.blockSignals(True)
        self.setUpdatesEnabled(False)
        try:
            self.setRowCount(len(rows))
            self._beads = [bead for bead, _, _ in rows]
            for r, (_, cells, tips) in enumerate(rows):
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if c > 0:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    if c in tips:
                        item.setToolTip(tips[c])
                    self.setItem(r, c, item)
            self.clearSelection()
            if selected is not None and selected in self._beads:
                self.selectRow(self._beads.index(selected))
        finally:
            self.setUpdatesEnabled(True)
            self.blockSignals(False)

    def mean_row(self) -> dict[str, str]:
        """The mean row's cells by header, and ``beads`` (how many it averages)."""
        last = self.rowCount() - 1
        if last < 0:
            return {}
        cells = [self.item(last, c) for c in range(len(HEADERS))]
        texts = {
            h: "" if cell is None else cell.text() for h, cell in zip(HEADERS, cells, strict=True)
        }
        texts["beads"] = "" if cells[0] is None else cells[0].toolTip()
        return texts

    def _on_selection(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) == 1:
            bead = self._beads[rows.pop()]
            if bead is not None:
                self.bead_selected.emit(bead)
