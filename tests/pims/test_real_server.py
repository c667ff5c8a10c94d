"""The real Cytomine PIMS 1.0.0 against docs/protocols/pims.md, with plain httpx.

These tests pin what the client can rely on (and the traps it must avoid): metadata routes,
exact 16-bit and RGB windows compared with tifffile's reading of the source files, pyramid
tiers, histogram bounds and error answers. Observations are in docs/protocols/pims.md.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import imagecodecs
import numpy as np
import pytest
import tifffile

from napari_lablink.testing.pims.images import TestImage, write_multichannel
from napari_lablink.testing.pims.install import venv_python
from napari_lablink.testing.pims.server import PimsSetupError, RealPims, ensure_pims_venv

pytestmark = [pytest.mark.pims, pytest.mark.timeout(900)]

IMAGES = ("multichannel", "zt_stack", "pyramid", "rgb_pyramid")


@pytest.fixture(scope="module")
def client(real_pims: RealPims) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=real_pims.base_url, timeout=60.0) as session:
        yield session


def image_url(server: RealPims, image: TestImage, route: str) -> str:
    return f"/image/{server.path(image.path)}/{route}"


def post_window(
    client: httpx.Client,
    server: RealPims,
    image: TestImage,
    region: dict[str, Any],
    **body: Any,
) -> httpx.Response:
    """POST .../window.png with raw-data defaults (no colormap, the image's own bit depth)."""
    payload = {"region": region, "level": 0, "colormaps": "NONE", **body}
    return client.post(image_url(server, image, "window.png"), json=payload)


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return imagecodecs.png_decode(response.content)


def source_levels(image: TestImage) -> list[np.ndarray]:
    with tifffile.TiffFile(image.path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def exact_levels(tiers: list[dict[str, Any]]) -> list[int]:
    """Levels whose size is the full size divided by one integer factor on both axes."""
    width, height = tiers[0]["width"], tiers[0]["height"]
    return [
        tier["level"]
        for tier in tiers
        if width % tier["width"] == 0
        and height % tier["height"] == 0
        and width // tier["width"] == height // tier["height"]
    ]


def spatial_pyramid(client: httpx.Client, server: RealPims, image: TestImage) -> list[dict]:
    info = client.get(image_url(server, image, "info")).json()
    (spatial,) = [rep for rep in info["representations"] if rep["role"] == "SPATIAL"]
    return spatial["pyramid"]["tiers"]


def long_hex(color: str) -> str:
    """PIMS shortens colours (#f0f); compare as #rrggbb."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(2 * d for d in digits)
    return "#" + digits.lower()


# -- the venv ------------------------------------------------------------------------------


def test_venv_runs_pims_1_0_0_with_the_aioredis_fix(pims_venv):
    probe = (
        "import builtins, aioredis.exceptions as e, pims; "
        "print(pims.__version__, issubclass(e.TimeoutError, builtins.TimeoutError))"
    )
    result = subprocess.run(
        [str(venv_python(pims_venv)), "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1.0.0", "True"]


def test_ensure_pims_venv_reuses_a_built_venv(pims_venv):
    marker = pims_venv / "lablink-pims.json"
    before = marker.stat().st_mtime_ns
    assert ensure_pims_venv(pims_venv) == pims_venv
    assert marker.stat().st_mtime_ns == before


# -- metadata ------------------------------------------------------------------------------


def test_paths_are_upload_folders_under_root(real_pims, pims_images):
    for image in pims_images.values():
        folder, name = real_pims.path(image.path).split("/")
        assert folder.startswith("upload-")
        assert name == image.path.name
        assert (real_pims.root / folder / name).is_file()
        assert (
            real_pims.uri(image.path) == f"pims+http://127.0.0.1:{real_pims.port}/{folder}/{name}"
        )


@pytest.mark.parametrize("name", IMAGES)
def test_info_image_describes_the_source(client, real_pims, pims_images, name):
    image = pims_images[name]
    info = client.get(image_url(real_pims, image, "info/image")).json()
    samples = 3 if image.rgb else 1
    assert info["width"] == image.width
    assert info["height"] == image.height
    assert info["depth"] == image.size("Z")
    assert info["duration"] == image.size("T")
    assert info["n_channels"] == len(image.channel_names)
    assert info["n_concrete_channels"] == len(image.channel_names) // samples
    assert info["n_samples"] == samples
    assert info["pixel_type"] == image.dtype
    assert info["significant_bits"] == np.dtype(image.dtype).itemsize * 8
    assert info["physical_size_x"] == pytest.approx(image.physical_size_x)
    assert info["physical_size_y"] == pytest.approx(image.physical_size_y)
    if image.physical_size_z is None:
        assert info["physical_size_z"] is None
    else:
        assert info["physical_size_z"] == pytest.approx(image.physical_size_z)


@pytest.mark.parametrize("name", IMAGES)
def test_info_channels_carry_names_and_colours(client, real_pims, pims_images, name):
    image = pims_images[name]
    body = client.get(image_url(real_pims, image, "info/channels")).json()
    items = body["items"]
    assert body["size"] == len(items) == len(image.channel_names)
    assert [item["index"] for item in items] == list(range(len(items)))
    assert tuple(item["suggested_name"] for item in items) == image.channel_names
    colors = tuple(long_hex(item["color"]) for item in items)
    if image.channel_colors:
        assert colors == image.channel_colors
    else:
        # Without colours in the file PIMS suggests red, green, blue in order.
        assert colors == ("#ff0000", "#00ff00", "#0000ff")[: len(items)]


def test_info_bundles_image_and_channels(client, real_pims, pims_images):
    image = pims_images["zt_stack"]
    info = client.get(image_url(real_pims, image, "info")).json()
    assert info["image"] == client.get(image_url(real_pims, image, "info/image")).json()
    channels = client.get(image_url(real_pims, image, "info/channels")).json()
    assert info["channels"] == channels["items"]


@pytest.mark.parametrize("name", ["pyramid", "rgb_pyramid"])
def test_spatial_pyramid_is_the_files_own_tiers(client, real_pims, pims_images, name):
    image = pims_images[name]
    tiers = spatial_pyramid(client, real_pims, image)
    y_axis = image.axes.index("Y")
    expected = [(lv.shape[y_axis + 1], lv.shape[y_axis]) for lv in source_levels(image)]
    assert [(t["width"], t["height"]) for t in tiers] == expected
    assert [t["level"] for t in tiers] == list(range(len(tiers)))
    assert [t["zoom"] for t in tiers] == list(reversed(range(len(tiers))))
    for tier in tiers:
        assert (tier["tile_width"], tier["tile_height"]) == (256, 256)
        assert tier["n_tx"] == -(-tier["width"] // 256)
        assert tier["n_ty"] == -(-tier["height"] // 256)


def test_normalized_pyramid_may_list_tiers_windows_refuse(client, real_pims, pims_images):
    """normalized-pyramid halves (rounding up) to one tile; windows use the file's tiers."""
    image = pims_images["pyramid"]
    normalized = client.get(image_url(real_pims, image, "info/normalized-pyramid")).json()
    spatial = spatial_pyramid(client, real_pims, image)
    tiers = normalized["tiers"]
    assert normalized["n_tiers"] == len(tiers) > len(spatial)
    assert tiers[0]["level"] == 0 and tiers[0]["width"] == image.width
    assert tiers[-1]["zoom"] == 0
    assert all(t["zoom"] + t["level"] == len(tiers) - 1 for t in tiers)
    assert tiers[3]["width"] == -(-image.width // 8) != spatial[3]["width"]

    missing = len(spatial)
    region = {"top": 0, "left": 0, "width": image.width, "height": image.height}
    answer = post_window(client, real_pims, image, region, level=missing, channels=0, bits=16)
    assert answer.status_code == 400
    assert answer.json()["details"] == f"Level tier {missing} does not exist."


# -- exact pixels ----------------------------------------------------------------------------


def test_window_multichannel_16_bit_is_exact(client, real_pims, pims_images):
    image = pims_images["multichannel"]
    (source,) = source_levels(image)
    full = {"top": 0, "left": 0, "width": image.width, "height": image.height}
    for channel in range(source.shape[0]):
        data = png(post_window(client, real_pims, image, full, channels=channel, bits=16))
        assert data.dtype == np.uint16
        np.testing.assert_array_equal(data, source[channel])
    region = {"top": 17, "left": 33, "width": 101, "height": 57}
    data = png(post_window(client, real_pims, image, region, channels=2, z_slices=0, timepoints=0))
    np.testing.assert_array_equal(data, source[2, 17:74, 33:134])


def test_window_every_zt_plane_is_exact(client, real_pims, pims_images):
    image = pims_images["zt_stack"]
    (source,) = source_levels(image)  # TZCYX
    full = {"top": 0, "left": 0, "width": image.width, "height": image.height}
    for t, z, c in np.ndindex(*source.shape[:3]):
        answer = post_window(
            client, real_pims, image, full, channels=c, z_slices=z, timepoints=t, bits=16
        )
        np.testing.assert_array_equal(png(answer), source[t, z, c], err_msg=f"t={t} z={z} c={c}")


def test_window_without_z_and_t_reads_the_median_slice_of_the_first_timepoint(
    client, real_pims, pims_images
):
    image = pims_images["zt_stack"]
    (source,) = source_levels(image)
    full = {"top": 0, "left": 0, "width": image.width, "height": image.height}
    data = png(post_window(client, real_pims, image, full, channels=1, bits=16))
    np.testing.assert_array_equal(data, source[0, image.size("Z") // 2, 1])


def test_window_pyramid_tiers_are_exact(client, real_pims, pims_images):
    image = pims_images["pyramid"]
    levels = source_levels(image)
    tiers = spatial_pyramid(client, real_pims, image)
    exact = exact_levels(tiers)
    assert exact[:3] == [0, 1, 2]
    for level in exact:
        factor = 2**level
        source = levels[level]
        height, width = source.shape[1:]
        # A 512 x 512 tile-aligned block of this tier, addressed in full-resolution pixels.
        top, left = min(256, height - 1) // 256 * 256, min(512, width - 1) // 256 * 256
        size_y, size_x = min(512, height - top), min(512, width - left)
        region = {
            "top": top * factor,
            "left": left * factor,
            "width": size_x * factor,
            "height": size_y * factor,
        }
        for channel in range(source.shape[0]):
            data = png(post_window(client, real_pims, image, region, level=level, channels=channel))
            np.testing.assert_array_equal(
                data, source[channel, top : top + size_y, left : left + size_x]
            )
        # The same block addressed in the tier's own pixels.
        tier_region = {
            "top": top,
            "left": left,
            "width": size_x,
            "height": size_y,
            "reference_tier_index": level,
            "tier_index_type": "LEVEL",
        }
        data = png(post_window(client, real_pims, image, tier_region, level=level, channels=1))
        np.testing.assert_array_equal(data, source[1, top : top + size_y, left : left + size_x])


def test_window_whole_image_at_each_tier_is_that_tier(client, real_pims, pims_images):
    image = pims_images["pyramid"]
    levels = source_levels(image)
    full = {"top": 0, "left": 0, "width": image.width, "height": image.height}
    for level, source in enumerate(levels):
        data = png(post_window(client, real_pims, image, full, level=level, channels=0, bits=16))
        np.testing.assert_array_equal(data, source[0], err_msg=f"level {level}")


def test_window_partial_edge_tile_is_exact(client, real_pims, pims_images):
    image = pims_images["pyramid"]
    source = source_levels(image)[0]
    top, left = (image.height - 1) // 256 * 256, (image.width - 1) // 256 * 256
    region = {"top": top, "left": left, "width": image.width - left, "height": image.height - top}
    data = png(post_window(client, real_pims, image, region, channels=1, bits=16))
    np.testing.assert_array_equal(data, source[1, top:, left:])


def test_window_resampled_region_comes_back_as_8_bit(client, real_pims, pims_images):
    """A region that does not map onto whole tier pixels is resized into an 8-bit PNG.

    Clients must align regions to the tier's factor (and use only exact tiers) to get data.
    """
    image = pims_images["pyramid"]
    region = {"top": 3, "left": 5, "width": 301, "height": 99}
    data = png(post_window(client, real_pims, image, region, level=1, channels=1, bits=16))
    assert data.dtype == np.uint8 and data.shape == (50, 150)


def test_window_rgb_is_exact(client, real_pims, pims_images):
    image = pims_images["rgb_pyramid"]
    levels = source_levels(image)
    region = {"top": 256, "left": 512, "width": 1024, "height": 768}
    data = png(post_window(client, real_pims, image, region, bits=8))
    assert data.dtype == np.uint8 and data.shape == (768, 1024, 3)
    np.testing.assert_array_equal(data, levels[0][256:1024, 512:1536])
    # The same with PIMS's defaults (display colormap, AUTO bits) is still the raw RGB.
    plain = client.post(
        image_url(real_pims, image, "window.png"), json={"region": region, "level": 0}
    )
    np.testing.assert_array_equal(png(plain), levels[0][256:1024, 512:1536])
    # One sample, and a lower tier.
    green = png(post_window(client, real_pims, image, region, channels=1, bits=8))
    np.testing.assert_array_equal(green, levels[0][256:1024, 512:1536, 1])
    half = png(post_window(client, real_pims, image, region, level=1, bits=8))
    np.testing.assert_array_equal(half, levels[1][128:512, 256:768])


# -- histogram bounds --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["multichannel", "zt_stack"])
def test_histogram_bounds_are_complete_for_small_images(client, real_pims, pims_images, name):
    image = pims_images[name]
    (source,) = source_levels(image)
    channel_axis = image.axes.index("C")
    items = client.get(image_url(real_pims, image, "histogram/per-channels/bounds")).json()["items"]
    for item in items:
        plane = np.take(source, item["channel"], axis=channel_axis)
        assert item["type"] == "COMPLETE"
        assert (item["minimum"], item["maximum"]) == (int(plane.min()), int(plane.max()))


def test_histogram_bounds_are_approximate_for_large_images(client, real_pims, pims_images):
    image = pims_images["pyramid"]
    source = source_levels(image)[0]
    items = client.get(image_url(real_pims, image, "histogram/per-channels/bounds")).json()["items"]
    assert [item["channel"] for item in items] == [0, 1]
    for item in items:
        plane = source[item["channel"]]
        assert item["type"] == "FAST"
        assert plane.min() <= item["minimum"] < item["maximum"] <= plane.max()


# -- errors ----------------------------------------------------------------------------------------


def test_unknown_path_is_a_404_problem(client, real_pims, pims_images):
    answer = client.get("/image/upload-missing/nothing.ome.tif/info")
    assert answer.status_code == 404
    assert answer.json() == {
        "title": "Filepath not found",
        "details": "The filepath upload-missing/nothing.ome.tif does not exist.",
    }


def test_region_out_of_bounds_is_a_400_problem(client, real_pims, pims_images):
    image = pims_images["multichannel"]
    region = {"top": 0, "left": 1, "width": image.width, "height": 10}
    answer = post_window(client, real_pims, image, region, channels=0, bits=16)
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["title"] == "Bad Request"
    assert "out of bounds" in problem["details"]


@pytest.mark.parametrize(
    ("field", "value", "details"),
    [
        ("channels", 3, "No valid indexes for channels"),
        ("z_slices", 5, "No valid indexes for z_slices"),
        ("timepoints", 3, "No valid indexes for timepoints"),
    ],
)
def test_plane_index_out_of_range_is_a_400_problem(
    client, real_pims, pims_images, field, value, details
):
    image = pims_images["zt_stack"]
    region = {"top": 0, "left": 0, "width": 8, "height": 8}
    answer = post_window(client, real_pims, image, region, **{"channels": 0, field: value})
    assert answer.status_code == 400
    assert answer.json() == {"title": "Bad Request", "details": details}


def test_tile_coordinates_region_is_a_server_error(client, real_pims, pims_images):
    """Known PIMS bug: a {tx, ty} region is never parsed; clients give pixel regions."""
    image = pims_images["pyramid"]
    answer = post_window(client, real_pims, image, {"tx": 0, "ty": 0}, channels=0, bits=16)
    assert answer.status_code == 500


def test_size_limit_rejects_and_the_server_stops_cleanly(pims_venv, tmp_path):
    image = write_multichannel(tmp_path / "small.ome.tif")
    with RealPims([image.path], venv=pims_venv, settings={"OUTPUT_SIZE_LIMIT": "256"}) as server:
        url = f"{server.base_url}/image/{server.path(image.path)}/window.png"
        body = {
            "region": {"top": 0, "left": 0, "width": 300, "height": 100},
            "level": 0,
            "channels": 0,
            "colormaps": "NONE",
            "bits": 16,
        }
        rejected = httpx.post(url, json=body, timeout=30)
        assert rejected.status_code == 400
        problem = rejected.json()
        assert problem["title"] == "Too large image output dimensions."
        assert (problem["request_width"], problem["max_size"]) == (300, 256)
        unsafe = httpx.post(url, json=body, headers={"X-Image-Size-Safety": "UNSAFE"}, timeout=30)
        assert png(unsafe).shape == (100, 300)
        process, root, base_url = server.process, server.root, server.base_url
    assert process is not None and process.poll() is not None
    assert not root.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/info", timeout=5)


def test_a_file_pims_cannot_import_is_reported_by_name(pims_venv, tmp_path):
    junk = tmp_path / "not-an-image.ome.tif"
    junk.write_bytes(b"this is no TIFF")
    with pytest.raises(PimsSetupError, match=re.escape("did not import not-an-image.ome.tif")):
        with RealPims([junk], venv=pims_venv):
            pass
