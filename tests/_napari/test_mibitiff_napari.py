"""Local MIBItiffs in a real napari viewer (under Xvfb): the npe2 reader, the writer, and saving
channel layers to a MIBItracker run over real HTTP to the stand-in, read back by the mibi reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import npe2.io_utils
import numpy as np
import pytest
import tifffile

from napari_lablink._napari.mibitiff.reader import get_mibitiff_reader, read_mibitiff_layers
from napari_lablink._napari.opening import wait_for_opens
from napari_lablink.formats.mibitiff import read_mibitiff
from napari_lablink.testing.tracker.server import TrackerStandIn

pytestmark = pytest.mark.viewer

RNG = np.random.default_rng(11)
PLUGIN = "napari-lablink"


def counts(shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    return RNG.poisson(3.0, size=shape).astype(np.uint16)


def instrument_file(path: Path, planes: dict[tuple[str, int], np.ndarray], size_um: float) -> None:
    """A MIBItiff laid out page by page as the format describes, without the plugin's writer:
    JSON descriptions, IonpathMIBI software tag, resolution in pixels per cm, an SED page."""
    with tifffile.TiffWriter(path) as tif:
        for (target, mass), plane in planes.items():
            resolution = plane.shape[1] * 1e4 / size_um
            description = {
                "mibi.run": "20190823_run",
                "mibi.fov_id": "FOV2",
                "mibi.fov_name": "tonsil edge",
                "mibi.folder": "FOV2",
                "image.type": "SIMS",
                "channel.mass": mass,
                "channel.target": target,
            }
            tif.write(
                plane,
                compression="zlib",
                description=json.dumps(description),
                metadata=None,
                software="IonpathMIBIv1.0",
                resolution=(resolution, resolution),
                resolutionunit="CENTIMETER",
                extratags=[(285, "s", 0, f"{target} ({mass})".encode(), True)],
            )
        sed = np.full((40, 40), 9, np.uint8)
        tif.write(
            sed,
            description=json.dumps({"image.type": "SED"}),
            metadata=None,
            software="IonpathMIBIv1.0",
        )


@pytest.fixture
def tracker(monkeypatch) -> Iterator[TrackerStandIn]:
    with TrackerStandIn() as stand_in:
        stand_in.add_run("20240115-A", "tonsil run", fovs=["FOV1"])
        monkeypatch.setenv("LABLINK_MIBI_EMAIL", stand_in.email)
        monkeypatch.setenv("LABLINK_MIBI_PASSWORD", stand_in.password)
        yield stand_in


def test_instrument_mibitiff_opens_as_additive_channels(make_napari_viewer, tmp_path) -> None:
    # Pages sorted by target, as the format has them.
    planes = {("CD3", 143): counts(), ("CD45", 150): counts(), ("dsDNA", 89): counts()}
    path = tmp_path / "FOV2.tiff"
    instrument_file(path, planes, size_um=400.0)
    assert get_mibitiff_reader(str(path)) is read_mibitiff_layers
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["CD3 (143)", "CD45 (150)", "dsDNA (89)"]
    for layer in layers:
        assert layer.blending == "additive"
        np.testing.assert_allclose(layer.scale, (10.0, 10.0))  # 400 um over 40 px
        assert str(layer.units[0]) == "micrometer"
        target, mass = layer.name[:-1].split(" (")
        plane = planes[(target, int(mass))]
        np.testing.assert_array_equal(np.asarray(layer.data), plane)
        # Sparse counts are shown up to their 99.5th percentile, not their hottest pixel.
        assert tuple(layer.contrast_limits) == (0.0, np.percentile(plane, 99.5))
    assert layers[0].metadata["lablink"]["mibitiff"]["fov_id"] == "FOV2"


def test_single_channel_is_additive_too(make_napari_viewer, tmp_path) -> None:
    path = tmp_path / "one.tif"
    instrument_file(path, {("CD8", 146): counts()}, size_um=200.0)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer.name == "CD8 (146)" and layer.blending == "additive"
    np.testing.assert_allclose(layer.scale, (5.0, 5.0))


def test_plain_tiffs_are_left_to_napari(make_napari_viewer, tmp_path) -> None:
    plain = tmp_path / "plain.tif"
    data = counts()
    tifffile.imwrite(plain, data, software="tifffile")
    assert get_mibitiff_reader(str(plain)) is None
    assert get_mibitiff_reader(str(tmp_path / "missing.tiff")) is None
    (tmp_path / "notes.txt").write_text("not an image")
    assert get_mibitiff_reader(str(tmp_path / "notes.txt")) is None
    (tmp_path / "broken.tiff").write_bytes(b"not a tiff at all")
    assert get_mibitiff_reader(str(tmp_path / "broken.tiff")) is None
    make_napari_viewer()  # registers napari's builtins next to our plugin
    # npe2 tries each reader that claims *.tif; ours declines, napari's own reads it.
    layer_data, reader = npe2.io_utils.read_get_reader(str(plain))
    assert reader.plugin_name == "napari"
    np.testing.assert_array_equal(np.asarray(layer_data[0][0]), data)


def test_layers_saved_as_mibitiff_open_back_the_same(make_napari_viewer, tmp_path) -> None:
    viewer = make_napari_viewer()
    cd45, dsdna = counts(), counts()
    viewer.add_image(dsdna, name="dsDNA (89)", scale=(2.5, 2.5), units="um")
    viewer.add_image(cd45, name="CD45 (150)", scale=(2.5, 2.5), units="um")
    path = tmp_path / "saved.tiff"
    assert viewer.layers.save(str(path), plugin=PLUGIN) == [str(path)]
    image = read_mibitiff(path)
    assert image.channels == ((150, "CD45"), (89, "dsDNA"))
    assert image.fov_size_um == pytest.approx(100.0)

    viewer.layers.clear()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["CD45 (150)", "dsDNA (89)"]
    np.testing.assert_array_equal(np.asarray(layers[0].data), cd45)
    np.testing.assert_array_equal(np.asarray(layers[1].data), dsdna)
    np.testing.assert_allclose(layers[0].scale, (2.5, 2.5))

    # Saved again from the reopened layers: the file's FOV metadata comes along.
    instrument = tmp_path / "instrument.tiff"
    instrument_file(instrument, {("CD45", 150): cd45}, size_um=80.0)
    viewer.layers.clear()
    viewer.open(str(instrument), plugin=PLUGIN)
    again = tmp_path / "again.tiff"
    viewer.layers.save(str(again), plugin=PLUGIN)
    metadata = read_mibitiff(again).metadata
    assert (metadata["run"], metadata["fov_id"], metadata["size"]) == ("20190823_run", "FOV2", 80)


def test_a_single_layer_saved_without_extension_gets_tiff(make_napari_viewer, tmp_path) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(counts(), name="CD45 (150)", scale=(1.5, 1.5), units="um")
    (written,) = viewer.layers.save(str(tmp_path / "single"), plugin=PLUGIN)
    assert written == str(tmp_path / "single.tiff")
    assert read_mibitiff(written).names == ("CD45 (150)",)


def test_layers_without_a_mass_are_refused_clearly(make_napari_viewer, tmp_path) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(counts(), name="CD45 (150)", scale=(1.0, 1.0), units="um")
    viewer.add_image(counts(), name="nuclei", scale=(1.0, 1.0), units="um")
    with pytest.raises(Exception, match=r"'nuclei' give no mass.*'Target \(mass\)'"):
        viewer.layers.save(str(tmp_path / "x.tiff"), plugin=PLUGIN)
    assert not (tmp_path / "x.tiff").exists()


@pytest.mark.parametrize("fov", [None, "FOV1"])
def test_layers_saved_to_a_run_open_back_from_the_tracker(
    make_napari_viewer, tracker: TrackerStandIn, fov: str | None
) -> None:
    viewer = make_napari_viewer()
    cd45, dsdna = counts(), counts()
    viewer.add_image(cd45, name="CD45 (150)", scale=(5.0, 5.0), units="um")
    viewer.add_image(dsdna, name="dsDNA (89)", scale=(5.0, 5.0), units="um")
    run_uri = f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A"
    (uri,) = viewer.layers.save(run_uri + (f"/{fov}" if fov else ""), plugin=PLUGIN)
    image_id = int(uri.rsplit("/", 1)[1])
    assert uri == f"mibi+http://127.0.0.1:{tracker.port}/images/{image_id}"
    stored = tracker.image(image_id)
    # Without a FOV the upload adds one after the run's last; with one it fills that FOV.
    assert stored["number"] == (fov or "FOV2")
    assert stored["fov_size"] == pytest.approx(200.0)
    # Sign, PUT to the signed URL without the token, register.
    puts = [r for r in tracker.requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].signed

    viewer.layers.clear()
    viewer.open(uri, plugin=PLUGIN)
    assert wait_for_opens(60)
    layers = list(viewer.layers)
    by_target = {layer.name.split(" (")[0]: layer for layer in layers}
    assert set(by_target) == {"CD45", "dsDNA"}
    np.testing.assert_array_equal(np.asarray(by_target["CD45"].data), cd45)
    np.testing.assert_array_equal(np.asarray(by_target["dsDNA"].data), dsdna)
    np.testing.assert_allclose(by_target["CD45"].scale, (5.0, 5.0))


def test_a_single_layer_goes_to_the_run_too(make_napari_viewer, tracker: TrackerStandIn) -> None:
    """npe2 appends ".tiff" to a bare path for one layer; the writer still uploads."""
    viewer = make_napari_viewer()
    plane = counts()
    viewer.add_image(plane, name="CD8 (146)", scale=(2.0, 2.0), units="um")
    (uri,) = viewer.layers.save(
        f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A", plugin=PLUGIN
    )
    image_id = int(uri.rsplit("/", 1)[1])
    np.testing.assert_array_equal(tracker.image_channels(image_id)["CD8"], plane)


def test_run_upload_failures_name_the_run(make_napari_viewer, tracker: TrackerStandIn) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(counts(), name="CD8 (146)", scale=(2.0, 2.0), units="um")
    viewer.add_image(counts(), name="CD3 (143)", scale=(2.0, 2.0), units="um")
    before = len(tracker.state.images)
    with pytest.raises(Exception, match=r"No run has this label.*run 'no-such-run'"):
        viewer.layers.save(f"mibi+http://127.0.0.1:{tracker.port}/runs/no-such-run", plugin=PLUGIN)
    viewer.add_image(counts((40, 50)), name="CD4 (141)", scale=(2.0, 2.0), units="um")
    viewer.layers.remove("CD8 (146)")
    viewer.layers.remove("CD3 (143)")
    with pytest.raises(Exception, match=r"square.*'CD4 \(141\)' is 50x40"):
        viewer.layers.save(f"mibi+http://127.0.0.1:{tracker.port}/runs/20240115-A", plugin=PLUGIN)
    assert not [r for r in tracker.requests if r.method == "PUT"]
    assert len(tracker.state.images) == before
    assert [layer.name for layer in viewer.layers] == ["CD4 (141)"]
