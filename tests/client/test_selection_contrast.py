"""Channel selection and sampled contrast on a RemoteImage: lazy, and never full resolution
when a smaller level exists."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_lablink.client.contrast import sample_plane, with_contrast
from napari_lablink.client.errors import NotFoundError
from napari_lablink.client.models import Channel, RemoteImage
from napari_lablink.client.selection import parse_channel_list, select_channels

DATA = np.arange(4 * 5 * 8 * 8, dtype=np.uint16).reshape(4, 5, 8, 8)


def image(**update) -> RemoteImage:
    names = ["CD45 (150)", "dsDNA (89)", "CD8 (143)", "Ki67"]
    full = da.from_array(DATA, chunks=(1, 1, 8, 8))
    small = full[:, :, ::2, ::2]
    fields = {
        "uri": "mibi://h/images/1",
        "name": "FOV1",
        "dims": ("c", "z", "y", "x"),
        "levels": [full, small],
        "channels": [Channel(name=n) for n in names],
    }
    return RemoteImage(**{**fields, **update})


def test_parse_channel_list() -> None:
    assert parse_channel_list(" CD45, dsDNA ,,") == ["CD45", "dsDNA"]
    assert parse_channel_list(None) == []


def test_select_by_name_without_mass_by_case_and_by_index() -> None:
    chosen = select_channels(image(), ["dsdna", "Ki67", "0"])
    assert [c.name for c in chosen.channels] == ["dsDNA (89)", "Ki67", "CD45 (150)"]
    assert chosen.shape == (3, 5, 8, 8)
    np.testing.assert_array_equal(chosen.levels[0][2].compute(), DATA[0])
    assert chosen.levels[1].shape == (3, 5, 4, 4)
    assert select_channels(image(), []).shape == DATA.shape


def test_unknown_channel_names_the_choices() -> None:
    with pytest.raises(NotFoundError, match=r"no channel CD3.*Pick one of: CD45 \(150\)"):
        select_channels(image(), ["CD3"])


def test_contrast_from_the_middle_plane_of_the_smallest_level() -> None:
    limited = image(
        channels=[
            Channel(name="a", contrast_limits=(1.0, 2.0)),
            Channel(name="b"),
            Channel(name="c"),
            Channel(name="d"),
        ]
    )
    sampled = with_contrast(limited)
    assert sampled.channels[0].contrast_limits == (1.0, 2.0)  # the server's stays
    plane = DATA[1, 2, ::2, ::2]
    assert sampled.channels[1].contrast_limits == (float(plane.min()), float(plane.max()))
    assert sample_plane(limited).shape == (4, 4, 4)


def test_contrast_of_a_constant_plane_is_not_empty() -> None:
    flat = RemoteImage(
        uri="u", name="n", dims=("y", "x"), levels=[da.zeros((4, 4), dtype=np.uint16)]
    )
    assert with_contrast(flat).channels[0].contrast_limits == (0.0, 1.0)
