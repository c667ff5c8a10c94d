"""Shapes an upload would misread are refused before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lablink.client.arrays import check_upload_array, looks_like_rgb
from napari_lablink.client.errors import AmbiguousArrayError, ConfigurationError


@pytest.mark.parametrize("shape", [(32, 32, 3), (480, 640, 4), (5, 64, 64, 3)])
def test_colour_images_without_rgb_are_refused_with_both_ways_out(shape) -> None:
    with pytest.raises(AmbiguousArrayError) as caught:
        check_upload_array(shape)
    message = str(caught.value)
    assert f"shape {shape}" in message
    assert f"stored as {shape[-3]} planes of {shape[-2]} x {shape[-1]} pixels" in message
    assert "Pass rgb=True" in message and "dims=('z', 'y', 'x')" in message
    assert isinstance(caught.value, ConfigurationError)  # shown like every user mistake


def test_the_32_slivers_of_the_issue_are_caught() -> None:
    """A 32 x 32 RGB image without rgb=True was stored as 32 z-planes of 32 x 3 pixels."""
    with pytest.raises(AmbiguousArrayError, match="stored as 32 planes of 32 x 3 pixels"):
        check_upload_array(np.zeros((32, 32, 3), np.uint8).shape)


@pytest.mark.parametrize(
    ("shape", "dims", "rgb"),
    [
        ((32, 32, 3), None, True),  # said so
        ((32, 32, 3), ("z", "y", "x"), False),  # named axes are taken as named
        ((3, 64, 64), None, False),  # channels first: a stack, not a colour image
        ((64, 64), None, False),
        ((3, 3, 3), None, False),  # too small to tell: left alone
        ((10, 64, 5), None, False),
    ],
)
def test_unambiguous_shapes_pass(shape, dims, rgb) -> None:
    check_upload_array(shape, dims=dims, rgb=rgb)


def test_rgb_needs_colour_samples_last() -> None:
    with pytest.raises(AmbiguousArrayError, match=r"rgb=True needs 3 or 4 .* shape \(3, 64, 64\)"):
        check_upload_array((3, 64, 64), rgb=True)


def test_looks_like_rgb() -> None:
    assert looks_like_rgb((100, 100, 3)) and looks_like_rgb((2, 100, 100, 4))
    assert not looks_like_rgb((100, 100)) and not looks_like_rgb((100, 100, 5))
