"""seed_demo puts content on the stand-in that is worth looking at and reads back intact."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lablink.testing import MikroStandIn


@pytest.fixture(scope="module")
def demo(mikro: MikroStandIn) -> dict[str, str]:
    return mikro.seed_demo()


def test_demo_ids_name_both_generations(mikro: MikroStandIn, demo: dict[str, str]) -> None:
    assert set(demo) == {"cells_gen1", "cells_gen2", "tissue_pyramid", "nuclei_labels_gen1"}
    assert demo["cells_gen1"] in mikro.state.representations
    assert demo["nuclei_labels_gen1"] in mikro.state.representations
    assert demo["cells_gen2"] in mikro.state.images
    assert demo["tissue_pyramid"] in mikro.state.images


def test_demo_stack_in_both_generations(mikro: MikroStandIn, demo: dict[str, str]) -> None:
    gen1 = mikro.state.representation(demo["cells_gen1"])
    assert gen1.shape == [3, 1, 16, 256, 256] and gen1.variety == "VOXEL"
    assert gen1.omero["physicalSize"] == {"x": 0.2, "y": 0.2, "z": 0.5, "t": None, "c": None}
    assert [c["name"] for c in gen1.omero["channels"]] == ["DAPI", "Beads", "Actin"]
    assert all(c["color"].startswith("rgb(") for c in gen1.omero["channels"])
    pixels = mikro.read_representation(demo["cells_gen1"])
    np.testing.assert_array_equal(mikro.read_image(demo["cells_gen2"]), pixels)
    assert pixels.dtype == np.uint16
    for channel in pixels:  # every channel has structure above its background
        assert channel.max() > 4 * np.median(channel)
    image = mikro.state.image(demo["cells_gen2"])
    assert [v.name for v in image.channel_views] == ["DAPI", "Beads", "Actin"]
    assert [(v.c_min, v.c_max) for v in image.channel_views] == [(0, 0), (1, 1), (2, 2)]
    (affine,) = image.affine_views
    assert [affine.affine_matrix[i][i] for i in range(3)] == [0.2, 0.2, 0.5]


def test_demo_pyramid_has_three_levels(mikro: MikroStandIn, demo: dict[str, str]) -> None:
    base = mikro.state.image(demo["tissue_pyramid"])
    assert mikro.state.store(base.store).shape == [2, 1, 1, 2048, 2048]
    views = sorted(mikro.state.derived_scale_views(base.id), key=lambda v: v.scale_x)
    assert [v.scale_x for v in views] == [2.0, 4.0]
    shapes = [mikro.state.store(mikro.state.image(v.image).store).shape for v in views]
    assert shapes == [[2, 1, 1, 1024, 1024], [2, 1, 1, 512, 512]]
    assert mikro.state.store(base.store).chunks == [1, 1, 1, 512, 512]


def test_demo_labels_are_a_mask_of_the_nuclei(mikro: MikroStandIn, demo: dict[str, str]) -> None:
    labels = mikro.read_representation(demo["nuclei_labels_gen1"])
    assert mikro.state.representation(demo["nuclei_labels_gen1"]).variety == "MASK"
    assert labels.shape == (1, 1, 16, 256, 256)
    assert len(np.unique(labels)) > 4  # background plus several nuclei
    nuclei = mikro.read_representation(demo["cells_gen1"])[0]
    assert nuclei[labels[0] > 0].mean() > 2 * nuclei[labels[0] == 0].mean()
