"""Saving layers that cannot upload to a server URI says which layers can."""

from __future__ import annotations

import npe2
import numpy as np
import pytest
from npe2 import io_utils

from napari_lablink.client.errors import ConfigurationError


@pytest.mark.parametrize("kind", ["vectors", "tracks"])
def test_layers_a_server_cannot_keep_get_a_clear_message(kind: str) -> None:
    npe2.PluginManager.instance().discover()
    with pytest.raises(ConfigurationError) as caught:
        io_utils.write(
            "mikro+http://127.0.0.1:1/mikro/image",
            [(np.zeros((3, 2)), {}, kind)],
            plugin_name="napari-lablink",
        )
    assert "Only image, labels, shapes and points layers save" in str(caught.value)
    assert kind in str(caught.value)


@pytest.mark.parametrize("kind", ["points", "shapes"])
def test_rois_need_the_image_they_belong_to(kind: str) -> None:
    npe2.PluginManager.instance().discover()
    with pytest.raises(ConfigurationError) as caught:
        io_utils.write(
            "mikro+http://127.0.0.1:1/mikro/image",
            [(np.zeros((3, 2)), {}, kind)],
            plugin_name="napari-lablink",
        )
    assert "ROIs belong to an image" in str(caught.value)
    assert ".../image/<id>" in str(caught.value)
