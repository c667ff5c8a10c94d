"""A layer scale without units is taken as micrometres per pixel, with a note; only an unscaled
layer (scale 1, no units) has no field of view size. Checked on layer data and in a real viewer.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_lablink._napari.mibitiff.layers import mibi_layers
from napari_lablink.client.errors import ConfigurationError
from napari_lablink.formats.mibitiff import read_mibitiff
from tests.mibidata_rules import read_like_mibidata


def layer(scale, units=None) -> tuple[np.ndarray, dict, str]:
    meta = {"name": "CD45 (150)", "scale": scale}
    if units is not None:
        meta["units"] = units
    return np.ones((8, 10), np.uint16), meta, "image"


@pytest.mark.parametrize("units", [None, ("pixel", "pixel"), ("px", "px"), (None, None)])
def test_a_unitless_scale_is_micrometres_per_pixel_with_a_note(units) -> None:
    content = mibi_layers([layer((0.5, 0.5), units)])
    assert content.fov_size_um == pytest.approx(5.0)  # 10 px of 0.5 um
    (note,) = content.notes
    assert "'CD45 (150)'" in note and "0.5 micrometres per pixel" in note and "5 um" in note


def test_length_units_need_no_note() -> None:
    content = mibi_layers([layer((0.5, 0.5), ("um", "um"))])
    assert content.fov_size_um == pytest.approx(5.0) and content.notes == []


def test_a_source_size_wins_over_a_unitless_scale() -> None:
    data, meta, kind = layer((0.5, 0.5), ("pixel", "pixel"))
    meta["metadata"] = {"lablink": {"mibitiff": {"size": 400.0}}}
    content = mibi_layers([(data, meta, kind)])
    assert content.fov_size_um == 400.0 and content.notes == []


@pytest.mark.parametrize(
    ("scale", "units"), [((1.0, 1.0), ("pixel", "pixel")), ((1.0, 1.0), None), ((2, 2), ("s", "s"))]
)
def test_no_scale_or_a_non_length_unit_is_refused(scale, units) -> None:
    with pytest.raises(ConfigurationError, match="field of view size of 'CD45 \\(150\\)'"):
        mibi_layers([layer(scale, units)])


@pytest.mark.viewer
def test_saving_a_layer_with_a_bare_scale_says_what_was_assumed(
    make_napari_viewer, tmp_path, notifications: list[str]
) -> None:
    viewer = make_napari_viewer()
    plane = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40)
    viewer.add_image(plane, name="CD45 (150)", scale=(2.5, 2.5))  # napari's units: pixel
    path = tmp_path / "bare_scale.tiff"
    assert viewer.layers.save(str(path), plugin="napari-lablink") == [str(path)]
    assert read_mibitiff(path).fov_size_um == pytest.approx(100.0)
    assert read_like_mibidata(str(path)).size_um == pytest.approx(100.0)
    assert any("took it as 2.5 micrometres per pixel" in text for text in notifications)


def test_float64_layers_get_a_note_about_float32() -> None:
    data, meta, kind = layer((0.5, 0.5), ("um", "um"))
    content = mibi_layers([(data.astype(np.float64), meta, kind)])
    assert content.notes == [
        "A MIBItiff holds float32, so 'CD45 (150)' (float64) is saved with float32 precision"
    ]
    assert mibi_layers([(data.astype(np.float32), meta, kind)]).notes == []
