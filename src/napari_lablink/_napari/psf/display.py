"""The PSF widget's layers: live stacks, XZ/YZ reslices through a bead, and bead markers.

napari has no linked orthogonal views, so the reslices are 2-D image layers placed beside the
stack in world coordinates (XZ below it, YZ to its right), the classic orthogonal layout.

Cost per redraw is what matters at display rate. Each stack layer holds the engine's *live*
stack (the same array for a whole run, updated in place by the acquisition thread), so a redraw
is ``layer.refresh()``: napari re-reads only the displayed plane. Each reslice owns a small
preallocated array that receives one (z, x) or (y, z) cut per redraw. Nothing stack-sized is
copied, and nothing is redrawn when no frame arrived since the last redraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Layer, Points, Shapes

from napari_lablink.acquisition import AcquisitionEngine, PSFResult, StackGeometry

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["BEADS_LAYER", "FRAMES_LAYER", "LiveStackDisplay"]

BEADS_LAYER = "PSF beads"
FRAMES_LAYER = "PSF panels"
_GAP_PX = 8  # gap between the stack and its reslices, in stack pixels
_MARK_PX = 10  # diameter of a bead's ring in the XY view, in stack pixels
_THUMBNAIL_EVERY = 25  # redraws between layer-list thumbnail updates (about once a second)


@dataclass
class _ChannelLayers:
    stack: Image
    xz: Image
    yz: Image
    xz_buffer: np.ndarray
    yz_buffer: np.ndarray
    contrast_run: int = -1
    plane_state: tuple[object, ...] = ()


class LiveStackDisplay:
    """Creates, updates and forgets the layers of one widget in ``viewer``."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.channels: list[_ChannelLayers] = []
        self.beads: Points | None = None
        self.frames: Shapes | None = None
        self.bead_yx_px: tuple[float, float] | None = None
        self.redraws = 0
        self.frames_shown = 0  # camera frames the redraws brought to the screen
        self._key: tuple[object, ...] | None = None
        self._seen: tuple[int, int] | None = None
        self._scale = (1.0, 1.0)  # (z step, pixel size) in µm
        self._bead_colours: list[str] = []

    # -- layers ---------------------------------------------------------------------------------

    def ensure_layers(
        self,
        engine: AcquisitionEngine,
        geometry: StackGeometry,
        colormaps: dict[str, str],
        pixel_size_um: float,
    ) -> None:
        """(Re)build the layers when the stacks' buffers or scale changed; otherwise nothing.

        A layer the user deleted stays deleted until then (redraws skip it).
        """
        dz = abs(geometry.z_step_um) or 1.0
        key = (geometry.generation, geometry.channels, dz, pixel_size_um, id(engine))
        if key == self._key:
            return
        self.remove_layers()
        self._key = key
        self._seen = None
        self._scale = (dz, pixel_size_um)
        nz, (ny, nx) = geometry.n_slices, geometry.frame_shape
        px = pixel_size_um
        below = (ny + _GAP_PX) * px
        right = (nx + _GAP_PX) * px
        for c, name in enumerate(geometry.channels):
            cmap = colormaps.get(name, "gray")
            common = {
                "colormap": cmap,
                "blending": "additive",
                "interpolation2d": "nearest",
                "units": "um",  # as every other lablink layer: napari warns about mixed units
            }
            stack = self.viewer.add_image(
                engine.live_stack(c),
                name=name,
                scale=(dz, px, px),
                axis_labels=("z", "y", "x"),  # the slider then reads "z", not "-3"
                rendering="attenuated_mip",
                metadata={"lablink": "psf-stack"},
                **common,
            )
            xz_buffer = np.zeros((nz, nx), geometry.dtype)
            yz_buffer = np.zeros((ny, nz), geometry.dtype)
            xz = self.viewer.add_image(
                xz_buffer,
                name=f"{name} XZ",
                scale=(dz, px),
                translate=(below, 0.0),
                axis_labels=("y", "x"),  # placed in the canvas's (y, x), below the stack
                **common,
            )
            yz = self.viewer.add_image(
                yz_buffer,
                name=f"{name} YZ",
                scale=(px, dz),
                translate=(0.0, right),
                axis_labels=("y", "x"),
                **common,
            )
            self.channels.append(_ChannelLayers(stack, xz, yz, xz_buffer, yz_buffer))
        # outlines, so the three panels read as one orthogonal view even where they are black
        frames = [
            [(0, 0), (ny * px, nx * px)],
            [(below, 0), (below + nz * dz, nx * px)],
            [(0, right), (ny * px, right + nz * dz)],
        ]
        half = px / 2  # pixel centres sit on the grid: the image extends half a pixel around
        self.frames = self.viewer.add_shapes(
            [np.array(f) - half for f in frames],
            shape_type="rectangle",
            name=FRAMES_LAYER,
            units="um",
            edge_color="dimgray",
            face_color="transparent",
            edge_width=px,
            features={"panel": ["XY", "XZ", "YZ"]},
            text={"string": "{panel}", "anchor": "upper_left", "color": "gray", "size": 9},
        )
        self.beads = self.viewer.add_points(
            np.empty((0, 2)),
            name=BEADS_LAYER,
            units="um",
            symbol="disc",
            size=_MARK_PX * px,
            face_color="transparent",
            border_color="yellow",
            border_width=0.12,
            border_width_is_relative=True,
        )
        self.viewer.layers.selection.active = self.channels[0].stack
        self.viewer.dims.set_current_step(0, nz // 2)
        self.viewer.reset_view()

    def remove_layers(self) -> None:
        """Take this display's layers out of the viewer (the user may have removed some)."""
        layers = [x for x in (self.beads, self.frames) if x is not None]
        for c in self.channels:
            layers += [c.stack, c.xz, c.yz]
        for layer in layers:
            if self._alive(layer):
                self.viewer.layers.remove(layer)
        self.channels, self._key, self._bead_colours = [], None, []
        self.beads = self.frames = None

    def _alive(self, layer: Layer | None) -> bool:
        return layer is not None and layer in self.viewer.layers

    # -- redraw ---------------------------------------------------------------------------------

    def redraw(self, engine: AcquisitionEngine, *, force: bool = False) -> bool:
        """Refresh from the engine's newest frames; False (and no work) if none arrived.

        Reslices change with every frame; a stack layer in 2-D view only when the plane on
        screen was rewritten, so it is refreshed only then (or when a stack completed).
        """
        stats = engine.stats()
        if stats is None or not self.channels:
            return False
        seen = (stats.run_id, stats.frames)
        if seen == self._seen and not force:
            return False
        if self._seen is not None and self._seen[0] == stats.run_id:
            self.frames_shown += stats.frames - self._seen[1]
        self._seen = seen
        thumbnail = self.redraws % _THUMBNAIL_EVERY == 0
        versions = engine.versions()
        for c, layers in enumerate(self.channels):
            live = engine.live_stack(c)
            y, x = self._bead_pixel(live.shape)
            np.copyto(layers.xz_buffer, live[:, y, :])
            np.copyto(layers.yz_buffer, live[:, :, x].T)
            if layers.contrast_run != stats.run_id and versions[c] > 0:
                self._auto_contrast(engine, c, layers, stats.run_id)
            stale = [layers.xz, layers.yz]
            plane = self._plane_on_screen(engine, c, live.shape[0], versions[c], stats.frames)
            if force or plane != layers.plane_state:
                layers.plane_state = plane
                stale.append(layers.stack)
            for layer in stale:
                if self._alive(layer):
                    layer.refresh(thumbnail=thumbnail, extent=False, highlight=False)
        self.redraws += 1
        return True

    def _plane_on_screen(
        self, engine: AcquisitionEngine, channel: int, n_slices: int, version: int, frames: int
    ) -> tuple[object, ...]:
        """A token that changes whenever the stack layer's displayed pixels may have changed.

        In 2-D view that is: a stack completed, or the plane on screen was written in the
        current sweep. In 3-D view every plane is on screen, so any frame counts.
        """
        if self.viewer.dims.ndisplay == 3:
            return (version, frames)
        z = min(max(round(self.viewer.dims.point[0] / self._scale[0]), 0), n_slices - 1)
        progress = engine.in_progress_stack(channel)
        filled = bool(progress.filled[z]) if progress is not None else False
        return (version, z, filled)

    def _bead_pixel(self, shape: tuple[int, ...]) -> tuple[int, int]:
        _, ny, nx = shape
        if self.bead_yx_px is None:
            return ny // 2, nx // 2
        y, x = self.bead_yx_px
        return min(max(round(y), 0), ny - 1), min(max(round(x), 0), nx - 1)

    def _auto_contrast(
        self, engine: AcquisitionEngine, channel: int, layers: _ChannelLayers, run_id: int
    ) -> None:
        """Once per run, from the first complete stack: background to brightest bead."""
        view = engine.newest_stack(channel)
        if view is None or view.run_id != run_id:
            return
        # the median of a sample is the background level: it maps to black
        lo = float(np.median(view.data[:, ::4, ::4]))
        hi = float(np.max(view.data))
        if hi <= lo:
            hi = lo + 1.0
        for layer in (layers.stack, layers.xz, layers.yz):
            layer.contrast_limits_range = (lo, hi)
            layer.contrast_limits = (lo, hi)
        layers.contrast_run = run_id

    # -- beads ----------------------------------------------------------------------------------

    def clear_beads(self) -> None:
        """No markers until the next result (a new run's beads may lie elsewhere)."""
        if self.beads is not None and self._alive(self.beads):
            self.beads.data = np.empty((0, 2))
        self._bead_colours = []

    def zoom_to(self, z_px: float, y_um: float, x_um: float, width_um: float) -> None:
        """Show the plane ``z_px`` centred on (y, x), about ``width_um`` across."""
        if self.channels:
            nz = self.channels[0].stack.data.shape[0]
            self.viewer.dims.set_current_step(0, min(max(round(z_px), 0), nz - 1))
        self.viewer.reset_view()
        extent = self.viewer.layers.extent.world[:, -2:]
        span = float(np.max(extent[1] - extent[0]))
        self.viewer.camera.center = (y_um, x_um)
        self.viewer.camera.zoom = self.viewer.camera.zoom * span / width_um

    def show_beads(self, result: PSFResult, selected: int | None) -> None:
        """Mark every fitted bead in XY, and the selected one in the XZ and YZ reslices too."""
        if self.beads is None or not self._alive(self.beads) or not self.channels:
            return
        dz, px = self._scale
        first = self.channels[0]
        below, right = first.xz.translate[0], first.yz.translate[1]
        points = [(b.y_px * px, b.x_px * px) for b in result.beads]
        colours = ["yellow" if b.bead == selected else "cyan" for b in result.beads]
        sizes = [_MARK_PX * px] * len(points)
        for b in result.beads:
            if b.bead == selected:  # rings around the bead's image in XZ and YZ
                points += [(below + b.z_px * dz, b.x_px * px), (b.y_px * px, right + b.z_px * dz)]
                colours += ["yellow", "yellow"]
                sizes += [2.0 * b.fwhm_z_um] * 2
        data = np.array(points, dtype=float).reshape(-1, 2)
        # setting a Points layer's data costs tens of ms: skip when nothing visibly moved
        old = self.beads.data
        if (
            old.shape == data.shape
            and colours == self._bead_colours
            and np.allclose(old, data, atol=px)
        ):
            return
        self.beads.data = data
        self.beads.size = sizes if sizes else _MARK_PX * px
        self.beads.border_color = colours if colours else "yellow"
        self._bead_colours = colours
