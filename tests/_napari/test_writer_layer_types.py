"""Saving layers that cannot upload to a server URI says which layers can."""

from __future__ import annotations

import npe2
import numpy as np
import pytest
from npe2 import io_utils

from napari_lablink.client.errors import ConfigurationError


@pytest.mark.parametrize("kind", ["points", "shapes"])
def test_points_and_shapes_get_a_clear_message(kind: str) -> None:
    npe2.PluginManager.instance().discover()
    with pytest.raises(ConfigurationError) as caught:
        io_utils.write(
            "mikro+http://127.0.0.1:1/mikro/image",
            [(np.zeros((3, 2)), {}, kind)],
            plugin_name="napari-lablink",
        )
    assert "Only image and labels layers upload" in str(caught.value)
    assert kind in str(caught.value)
