"""Image layer data -> MIBItiff content: names, sizes and the errors that tell users what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lablink._napari.mibitiff.layers import mibi_layers, parse_channel_name
from napari_lablink.client.errors import ConfigurationError


def layer(name: str, shape=(8, 10), scale=(0.5, 0.5), units=("um", "um"), **meta):
    return (
        np.ones(shape, np.uint16),
        {"name": name, "scale": scale, "units": units, **meta},
        "image",
    )


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("CD45 (150)", ("CD45", 150)),
        ("  HLA class 1 A, B, and C (144) ", ("HLA class 1 A, B, and C", 144)),
        ("Na(23)", ("Na", 23)),
        ("CD45", None),
        ("CD45 (15.5)", None),
        ("(150)", None),
    ],
)
def test_channel_names_give_target_and_mass(name: str, parsed) -> None:
    assert parse_channel_name(name) == parsed


def test_layers_become_channels_in_layer_order_with_the_fov_size() -> None:
    content = mibi_layers([layer("dsDNA (89)"), layer("CD45 (150)")])
    assert content.channels == [(89, "dsDNA"), (150, "CD45")]
    assert content.data.shape == (2, 8, 10)
    assert content.fov_size_um == pytest.approx(5.0)  # 10 px of 0.5 um


def test_nanometre_scale_is_converted() -> None:
    content = mibi_layers([layer("CD3 (143)", scale=(250.0, 250.0), units=("nm", "nm"))])
    assert content.fov_size_um == pytest.approx(2.5)


def test_layers_without_a_mass_are_named_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        mibi_layers([layer("CD45 (150)"), layer("nuclei"), layer("membrane")])
    message = str(caught.value)
    assert "'nuclei', 'membrane'" in message and "'Target (mass)'" in message


def test_layers_of_different_shapes_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"one size.*CD3 \(143\) \(8, 12\)"):
        mibi_layers([layer("CD45 (150)"), layer("CD3 (143)", shape=(8, 12))])


def test_non_2d_and_labels_layers_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a 2-D grayscale image layer"):
        mibi_layers([layer("CD45 (150)", shape=(3, 8, 10))])
    data, meta, _ = layer("cells (1)")
    with pytest.raises(ConfigurationError, match="labels layer"):
        mibi_layers([(data, meta, "labels")])


def test_pixel_scale_needs_a_size_from_somewhere() -> None:
    with pytest.raises(ConfigurationError, match="scale in micrometres"):
        mibi_layers([layer("CD45 (150)", scale=(1.0, 1.0), units=("pixel", "pixel"))])
    source = {"lablink": {"mibitiff": {"size": 400.0, "run": "R1", "fov_id": "FOV2"}}}
    content = mibi_layers(
        [layer("CD45 (150)", scale=(1.0, 1.0), units=("pixel", "pixel"), metadata=source)]
    )
    assert content.fov_size_um == 400.0
    assert content.metadata == {"run": "R1", "fov_id": "FOV2"}  # size is the writer's to set


def test_tracker_layers_carry_their_fov() -> None:
    server = {
        "image_id": 7,
        "number": "FOV3",
        "folder": "FOV3",
        "description": "tonsil",
        "run": {"id": 1, "label": "L", "name": "run A"},
        "fov_size_um": 200.0,
        "dwell_time": None,
    }
    content = mibi_layers([layer("CD45 (150)", metadata={"lablink": {"server_metadata": server}})])
    assert content.metadata == {
        "run": "run A",
        "fov_id": "FOV3",
        "folder": "FOV3",
        "fov_name": "tonsil",
    }
