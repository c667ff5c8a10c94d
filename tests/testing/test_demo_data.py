"""The synthetic demo images are reproducible, so a demo or benchmark run can be repeated."""

from __future__ import annotations

import numpy as np

from napari_lablink.testing import demo_data


def test_demo_data_is_deterministic() -> None:
    first, labels = demo_data.cell_stack((3, 1, 4, 64, 64), seed=3)
    second, _ = demo_data.cell_stack((3, 1, 4, 64, 64), seed=3)
    np.testing.assert_array_equal(first, second)
    assert labels.shape == (1, 1, 4, 64, 64)
    tissue = demo_data.tissue_plane((1, 1, 1, 128, 96))
    assert tissue.shape == (1, 1, 1, 128, 96) and tissue.dtype == np.uint16
