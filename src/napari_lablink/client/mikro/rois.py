"""ROIs as napari-lablink keeps them, whatever the generation: a kind and pixel vertices.

A :class:`Roi` is what both mikro generations can say about a region: its kind (one of
:data:`KINDS`, napari's shape names plus ``point``) and its vertices as an ``(n, 5)`` array of
``(c, t, z, y, x)`` pixel indices of the image (floats; ``x`` is the column). The vertex layout
of each kind is napari's, so a Shapes layer takes them as they are: a rectangle and an ellipse
have the four corners of their box. How each kind goes over the wire (two corners of a
rectangle, the centre and radii of an ellipse) is decided by :func:`to_wire` and
:func:`from_wire`, the only place that knows it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "KINDS",
    "Roi",
    "RoiEvent",
    "SaveReport",
    "WireError",
    "box_corners",
    "colour_hex",
    "from_wire",
    "to_wire",
]

#: Kinds a ROI can have here; napari's Shapes types plus ``point`` (a Points layer).
KINDS = ("point", "line", "rectangle", "ellipse", "path", "polygon")

#: Outlines with more vertices than this are read as an ellipse drawn as a polygon.
_FEWEST_OUTLINE = 5


class WireError(ValueError):
    """A ROI whose vertices do not fit its kind (the caller names the ROI and the server)."""


@dataclass(frozen=True, eq=False)
class Roi:
    """One region of one image: ``kind`` and ``(n, 5)`` ``(c, t, z, y, x)`` pixel vertices.

    ``id`` is the server's id (None before upload); ``label``, ``color`` and ``tags`` are what
    generation 1 keeps besides the vertices (generation 2 keeps none of them).
    """

    kind: str
    vertices: np.ndarray
    id: str | None = None
    label: str | None = None
    color: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown ROI kind {self.kind!r}; known: {', '.join(KINDS)}")
        vertices = np.asarray(self.vertices, dtype=float)
        if vertices.ndim != 2 or vertices.shape[1] != 5 or len(vertices) == 0:
            raise ValueError(f"ROI vertices must be (n, 5) (c, t, z, y, x), got {vertices.shape}")
        object.__setattr__(self, "vertices", vertices)

    def along(self, dims: Sequence[str]) -> np.ndarray:
        """The vertices along ``dims`` only (a layer's axes), still in pixel indices."""
        return self.vertices[:, ["ctzyx".index(d) for d in dims]]

    def same_place(self, other: Roi) -> bool:
        """True when ``other`` has this kind and these vertices (to a thousandth of a pixel)."""
        return (
            self.kind == other.kind
            and self.vertices.shape == other.vertices.shape
            and bool(np.allclose(self.vertices, other.vertices, atol=1e-3))
        )


@dataclass(frozen=True)
class RoiEvent:
    """A change on the server: ``create``/``update`` carry ``roi``, ``delete`` only ``roi_id``.

    ``resync`` follows a reconnection: ``rois`` is then everything the image has now, since
    changes made while the connection was down were not streamed.
    """

    type: str
    roi_id: str | None = None
    roi: Roi | None = None
    rois: tuple[Roi, ...] = ()


@dataclass
class SaveReport:
    """What saving ROIs did: ``ids`` holds the server id of every saved ROI, in input order."""

    ids: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: what the server could not keep (labels, colours, rotations), in words for the user
    warnings: list[str] = field(default_factory=list)


_CSS_RGB = re.compile(r"^rgba?\(\s*([^)]*)\)$")


def colour_hex(value: object) -> str | None:
    """A colour as ``#rrggbb`` (``#rrggbbaa`` when not opaque), or None if it is none we read.

    Generation 1 keeps a ROI's colour as free text; what we have seen is CSS-like (``#f00``,
    ``#ff0000``, ``rgb(255, 0, 0)``, ``rgba(255, 0, 0, 0.5)``), as for channel colours. An
    ``(r, g, b[, a])`` sequence of 0..1 floats (a napari colour) is read too.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"#[0-9a-f]{3}", text):
            return "#" + "".join(c * 2 for c in text[1:])
        if re.fullmatch(r"#[0-9a-f]{6}([0-9a-f]{2})?", text):
            return text[:7] if text.endswith("ff") and len(text) == 9 else text
        found = _CSS_RGB.match(text)
        if found is None:
            return None
        try:
            parts = [float(p) for p in found.group(1).split(",")]
        except ValueError:
            return None
        if len(parts) not in (3, 4):
            return None
        rgba = [p / 255 for p in parts[:3]] + parts[3:]
    else:
        try:
            rgba = [float(v) for v in np.asarray(value, dtype=float).ravel()]
        except (TypeError, ValueError):
            return None
        if len(rgba) not in (3, 4):
            return None
    if not all(0.0 <= v <= 1.0 for v in rgba):
        return None
    out = "#" + "".join(f"{round(v * 255):02x}" for v in rgba[:3])
    if len(rgba) == 4 and round(rgba[3] * 255) != 255:
        out += f"{round(rgba[3] * 255):02x}"
    return out


def box_corners(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The four corners of the y/x box between two opposite corners, in napari's order."""
    (y0, x0), (y1, x1) = first[3:], second[3:]
    corners = np.repeat(first[None, :], 4, axis=0)
    corners[:, 3:] = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
    return corners


def _axis_aligned(corners: np.ndarray) -> bool:
    """True when four y/x corners form a box whose sides follow the pixel grid."""
    yx = corners[:, 3:]
    for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):
        if not np.isclose(yx[a, 0], yx[b, 0], atol=1e-6) and not np.isclose(
            yx[a, 1], yx[b, 1], atol=1e-6
        ):
            return False
    return True


def to_wire(roi: Roi) -> tuple[str, np.ndarray, str | None]:
    """The wire kind (``RECTANGLE``, ...) and vertices of ``roi``, plus a note when a shape had
    to change kind to be kept exactly.

    Rectangles go as two opposite corners; a rotated rectangle has no such form and goes as a
    polygon. Ellipses go as ``[centre, radii]`` (the radii vector carries the centre's c, t, z),
    the form the generation-2 server itself reads; a rotated ellipse keeps its box only.
    """
    v = roi.vertices
    if roi.kind == "point":
        return "POINT", v[:1], None
    if roi.kind == "line":
        return "LINE", v[:2], None
    if roi.kind in ("path", "polygon"):
        return roi.kind.upper(), v, None
    if len(v) != 4:
        raise WireError(f"a {roi.kind} needs the four corners of its box, got {len(v)} vertices")
    if roi.kind == "rectangle":
        if _axis_aligned(v):
            return "RECTANGLE", np.stack([v[0], v[2]]), None
        return "POLYGON", v, "a rotated rectangle was saved as a polygon"
    low, high = v[:, 3:].min(axis=0), v[:, 3:].max(axis=0)
    centre = v[0].copy()
    centre[3:] = (low + high) / 2
    radii = centre.copy()
    radii[3:] = (high - low) / 2
    note = None if _axis_aligned(v) else "a rotated ellipse was saved without its rotation"
    return "ELLIPSIS", np.stack([centre, radii]), note


def from_wire(kind: str, vertices: Sequence[Sequence[float]]) -> Roi:
    """A :class:`Roi` from a wire kind (either generation's names) and its ``(c, t, z, y, x)``
    vertices. Raises :class:`WireError` for kinds napari cannot draw or vertex counts that do
    not fit the kind.

    Ellipses come in every encoding seen in the wild: ``[centre, radii]`` (ours and the
    server's), the four box corners (napari, the old mikro-napari) and an outline of many
    points (web clients); the outline is read as the box around it.
    """
    v = np.asarray(vertices, dtype=float).reshape(-1, 5) if len(vertices) else np.empty((0, 5))
    name = kind.upper()
    wanted = {"POINT": 1, "LINE": 2, "RECTANGLE": 2}
    if name in wanted and len(v) != wanted[name]:
        raise WireError(f"a {name} has {wanted[name]} vertices, this one {len(v)}")
    if name == "POINT":
        return Roi("point", v)
    if name == "LINE":
        return Roi("line", v)
    if name == "RECTANGLE":
        return Roi("rectangle", box_corners(v[0], v[1]))
    if name in ("PATH", "POLYGON"):
        if len(v) < 2:
            raise WireError(f"a {name} needs at least two vertices, this one has {len(v)}")
        return Roi(name.lower(), v)
    if name in ("ELLIPSIS", "ELLIPSE"):
        return Roi("ellipse", _ellipse_box(v))
    raise WireError(f"napari cannot draw a {name} ROI")


def _ellipse_box(v: np.ndarray) -> np.ndarray:
    if len(v) == 2:
        centre, radii = v[0], np.abs(v[1][3:])
        first, second = centre.copy(), centre.copy()
        first[3:] -= radii
        second[3:] += radii
        return box_corners(first, second)
    if len(v) == 4:  # napari's own form, rotated or not
        return v
    if len(v) >= _FEWEST_OUTLINE:
        return box_corners(v.min(axis=0), v.max(axis=0))
    raise WireError(f"an ellipse with {len(v)} vertices has no known encoding")
