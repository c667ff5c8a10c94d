"""MIBItiff reading and writing, checked against files built with tifffile as the format describes.

The "foreign" files below are assembled tag by tag with tifffile, the way Ionpath's instruments
and tools write them, so the reader is tested on files the plugin did not write.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_lablink.formats.mibitiff import (
    MibiTiffError,
    channel_sort_key,
    is_mibitiff,
    read_mibitiff,
    write_mibitiff,
)

RNG = np.random.default_rng(7)


def _counts(n: int, shape: tuple[int, int] = (32, 40)) -> np.ndarray:
    return RNG.poisson(2.0, size=(n, *shape)).astype(np.uint16)


def _foreign_page(
    tif: tifffile.TiffWriter,
    plane: np.ndarray,
    description: dict[str, object],
    page_name: str,
    size_um: float,
    software: str = "IonpathMIBIv1.0",
) -> None:
    """One page as Ionpath's writer lays it out: JSON through tifffile's metadata argument."""
    resolution = plane.shape[1] * 1e4 / size_um
    tif.write(
        plane,
        compression=8,
        metadata=description,  # tifffile adds a "shape" key, as in files from the instrument
        software=software,
        resolution=(resolution, resolution),
        resolutionunit="CENTIMETER",
        datetime="2019:08:23 11:31:52",
        extratags=[
            (285, "s", 0, page_name.encode(), True),
            (286, "2i", 1, (-1, 100), True),
            (287, "2i", 1, (3, 200), True),
        ],
    )


def test_round_trip_keeps_data_channels_and_metadata(tmp_path: Path) -> None:
    data = _counts(3)
    channels = [(150, "CD45"), (89, "dsDNA"), (143, "CD3")]
    metadata = {
        "run": "20190823_run",
        "fov_id": "FOV2",
        "fov_name": "tonsil edge",
        "folder": "FOV2",
        "dwell": 4.0,
        "coordinates": (-1250.5, 3000.0),
        "date": dt.datetime(2019, 8, 23, 11, 31, 52),
        "operator_note": "user-defined key",
    }
    path = tmp_path / "fov.tiff"
    write_mibitiff(path, data, channels, metadata, fov_size_um=400.0)

    image = read_mibitiff(path)
    assert image.channels == ((143, "CD3"), (150, "CD45"), (89, "dsDNA"))
    np.testing.assert_array_equal(image.data, data[[2, 0, 1]])
    assert image.data.dtype == np.uint16
    assert image.fov_size_um == pytest.approx(400.0)
    assert image.pixel_size_um == pytest.approx(10.0)
    assert image.names == ("CD3 (143)", "CD45 (150)", "dsDNA (89)")
    assert image.metadata["run"] == "20190823_run"
    assert image.metadata["fov_id"] == "FOV2"
    assert image.metadata["fov_name"] == "tonsil edge"
    assert image.metadata["size"] == 400.0
    assert image.metadata["date"] == "2019-08-23T11:31:52"
    assert image.metadata["coordinates"] == pytest.approx((-1250.5, 3000.0))
    assert image.metadata["operator_note"] == "user-defined key"
    np.testing.assert_array_equal(image.channel("CD45"), data[0])


def test_written_file_has_the_tags_the_format_specifies(tmp_path: Path) -> None:
    path = tmp_path / "fov.tiff"
    data = _counts(2, (48, 64))
    write_mibitiff(path, data, [(89, "dsDNA"), (150, "CD45")], {"run": "r1"}, fov_size_um=500)

    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 2
        first, second = tif.pages
        for page, (mass, target) in zip(
            (first, second), [(150, "CD45"), (89, "dsDNA")], strict=True
        ):
            tags = page.tags
            assert tags.valueof("Software").startswith("IonpathMIBI")
            assert tags.valueof("PageName") == f"{target} ({mass})"
            assert tags.valueof("ResolutionUnit") == tifffile.RESUNIT.CENTIMETER
            numerator, denominator = tags.valueof("XResolution")
            assert numerator / denominator == pytest.approx(64 * 1e4 / 500)
            assert tags.valueof("Compression") == tifffile.COMPRESSION.ADOBE_DEFLATE
            description = json.loads(tags.valueof("ImageDescription"))
            assert description["image.type"] == "SIMS"
            assert description["channel.mass"] == mass
            assert description["channel.target"] == target
            assert description["mibi.run"] == "r1"
            assert description["mibi.size"] == 500.0
            assert "shape" not in description
        assert second.tags.valueof("SMaxSampleValue") == int(data[0].max())


def test_reads_a_file_written_as_the_instrument_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "instrument.tiff"
    planes = _counts(2, (40, 40))
    sed = RNG.integers(0, 255, size=(80, 80), dtype=np.uint8)
    common = {
        "mibi.run": "20190823_run",
        "mibi.fov_id": "FOV1",
        "mibi.fov_name": "R1C1",
        "mibi.folder": "FOV1",
        "mibi.size": 500.0,
        "mibi.version": "1.0",
        "mibi.panel": "tonsil panel",
    }
    with tifffile.TiffWriter(path) as tif:
        for plane, (mass, target) in zip(planes, [(143, "CD3"), (89, "dsDNA")], strict=True):
            description = {
                **common,
                "image.type": "SIMS",
                "channel.mass": mass,
                "channel.target": target,
            }
            _foreign_page(tif, plane, description, f"{target} ({mass})", 500.0)
        _foreign_page(tif, sed, {"image.type": "SED"}, "SED", 500.0)
        _foreign_page(tif, sed[:10, :10], {"image.type": "Label"}, "Label", 500.0)

    assert is_mibitiff(path)
    image = read_mibitiff(path)
    assert image.channels == ((143, "CD3"), (89, "dsDNA"))
    np.testing.assert_array_equal(image.data, planes)
    assert image.fov_size_um == pytest.approx(500.0)
    assert image.metadata["panel"] == "tonsil panel"
    assert image.metadata["fov_name"] == "R1C1"
    assert image.metadata["coordinates"] == pytest.approx((-100.0, 150.0))
    assert "shape" not in image.metadata
    assert "image.type" not in image.metadata


def test_reads_format_version_0_1(tmp_path: Path) -> None:
    path = tmp_path / "point1.tiff"
    planes = _counts(2, (16, 16))
    with tifffile.TiffWriter(path) as tif:
        for plane, (mass, target) in zip(planes, [(113, "Vimentin"), (89, "dsDNA")], strict=True):
            description = {
                "mibi.run": "old_run",
                "mibi.description": "Tonsil_point",
                "mibi.folder": "Point1/RowNumber0/Depth_Profile0",
                "mibi.version": "0.1",
                "image.type": "SIMS",
                "channel.mass": mass,
                "channel.target": target,
            }
            _foreign_page(tif, plane, description, f"{target} ({mass})", 400.0, "IonpathMIBIv0.1")

    image = read_mibitiff(path)
    assert image.metadata["fov_name"] == "Tonsil_point"
    assert image.metadata["fov_id"] == "Point1"
    assert image.metadata["folder"] == "Point1/RowNumber0/Depth_Profile0"
    assert image.metadata["version"] == "0.1"
    assert image.pixel_size_um == pytest.approx(25.0)


def test_other_tiffs_are_declined(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((8, 8), np.uint16), software="napari")
    assert not is_mibitiff(plain)
    with pytest.raises(MibiTiffError, match=r"not a MIBItiff: its Software tag is 'napari'"):
        read_mibitiff(plain)

    no_software = tmp_path / "bare.tif"
    tifffile.imwrite(no_software, np.zeros((8, 8), np.uint8))
    assert not is_mibitiff(no_software)

    not_tiff = tmp_path / "notes.tiff"
    not_tiff.write_bytes(b"\x89PNG\r\n\x1a\n not a tiff at all")
    assert not is_mibitiff(not_tiff)
    with pytest.raises(MibiTiffError, match="is not a TIFF file"):
        read_mibitiff(not_tiff)

    with pytest.raises(FileNotFoundError):
        is_mibitiff(tmp_path / "missing.tiff")


def test_is_mibitiff_reads_tags_only_and_restores_file_position(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    write_mibitiff(buffer, _counts(2), [(89, "dsDNA"), (150, "CD45")], fov_size_um=100)
    raw = bytearray(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        offset = tif.pages.first.dataoffsets[0]
        count = tif.pages.first.databytecounts[0]
    raw[offset : offset + count] = b"\xff" * count  # pixels no Deflate stream can decode

    corrupt = io.BytesIO(bytes(raw))
    assert is_mibitiff(corrupt)
    assert corrupt.tell() == 0
    with pytest.raises(Exception, match=r"(?i)(zlib|deflate|decode|error)"):
        read_mibitiff(corrupt)


def test_float32_round_trip(tmp_path: Path) -> None:
    data = RNG.random((2, 12, 12)).astype(np.float64) * 3.5
    path = tmp_path / "float.tiff"
    write_mibitiff(path, data, [(89, "dsDNA"), (150, "CD45")], fov_size_um=120)
    image = read_mibitiff(path)
    assert image.data.dtype == np.float32
    np.testing.assert_allclose(image.data, data[[1, 0]].astype(np.float32))


def test_integer_data_that_uint16_cannot_hold_is_refused(tmp_path: Path) -> None:
    data = np.zeros((1, 4, 4), np.int32)
    data[0, 0, 0] = 70000
    with pytest.raises(MibiTiffError, match=r"'CD3' has values from 0 to 70000.*dtype='float32'"):
        write_mibitiff(tmp_path / "x.tiff", data, [(143, "CD3")], fov_size_um=10)
    fractional = np.full((1, 4, 4), 0.5)
    with pytest.raises(MibiTiffError, match="fractional values"):
        write_mibitiff(
            tmp_path / "y.tiff", fractional, [(143, "CD3")], fov_size_um=10, dtype="uint16"
        )
    forced = tmp_path / "z.tiff"
    write_mibitiff(forced, data, [(143, "CD3")], fov_size_um=10, dtype="float32")
    assert read_mibitiff(forced).data[0, 0, 0] == 70000.0


def test_pages_are_sorted_text_first_then_numbers() -> None:
    targets = ["dsDNA", "CD45", "197", "beta-tubulin", "23", "Keratin", "CD4"]
    expected = ["beta-tubulin", "CD4", "CD45", "dsDNA", "Keratin", "23", "197"]
    assert sorted(targets, key=channel_sort_key) == expected

    buffer = io.BytesIO()
    data = np.stack([np.full((4, 4), i, np.uint16) for i in range(len(targets))])
    channels = [(100 + i, target) for i, target in enumerate(targets)]
    write_mibitiff(buffer, data, channels, fov_size_um=40)
    buffer.seek(0)
    image = read_mibitiff(buffer)
    assert list(image.targets) == expected
    for target, plane in zip(image.targets, image.data, strict=True):
        assert plane[0, 0] == targets.index(target)


def test_sed_page_is_written_but_not_read_as_a_channel(tmp_path: Path) -> None:
    path = tmp_path / "with_sed.tiff"
    sed = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    write_mibitiff(path, _counts(1), [(89, "dsDNA")], {"run": "r"}, fov_size_um=80, sed=sed)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 2
        assert json.loads(tif.pages[1].tags.valueof("ImageDescription")) == {"image.type": "SED"}
        np.testing.assert_array_equal(tif.pages[1].asarray(), sed)
    image = read_mibitiff(path)
    assert image.channels == ((89, "dsDNA"),)
    assert image.data.shape == (1, 32, 40)


def test_non_ascii_targets_survive(tmp_path: Path) -> None:
    path = tmp_path / "beta.tiff"
    write_mibitiff(path, _counts(1), [(160, "β-tubulin")], fov_size_um=50)
    image = read_mibitiff(path)
    assert image.targets == ("β-tubulin",)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.tags.valueof("PageName") == "β-tubulin (160)"


def test_dask_input_is_written_page_by_page(tmp_path: Path) -> None:
    computed: list[int] = []

    def plane(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        index = block_info[None]["chunk-location"][0]
        computed.append(index)
        return np.full(block.shape, index + 1, np.uint16)

    lazy = da.zeros((3, 8, 8), dtype=np.uint16, chunks=(1, 8, 8)).map_blocks(plane, dtype=np.uint16)
    path = tmp_path / "lazy.tiff"
    write_mibitiff(path, lazy, [(1, "a"), (2, "b"), (3, "c")], fov_size_um=8)
    assert sorted(computed) == [0, 1, 2]
    np.testing.assert_array_equal(read_mibitiff(path).data[:, 0, 0], [1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": [(1, "a"), (2, "a")]}, "targets must be unique.*repeated: a"),
        ({"channels": [(1, "a"), (1, "b")]}, "masses must be unique"),
        ({"channels": [(1, "a")]}, "has 2 channels but 1"),
        ({"channels": [(1.5, "a"), (2, "b")]}, "masses must be integers"),
        ({"fov_size_um": None}, "needs the field of view size"),
        ({"metadata": {"channel.target": "x"}}, "set per page by the writer"),
        ({"metadata": {"date": "yesterday"}}, "ISO 8601"),
        ({"metadata": {"coordinates": "here"}}, r"must be \(x, y\)"),
        ({"metadata": {"tissue": object()}}, "cannot be stored in the JSON"),
        ({"dtype": "uint8"}, "uint16 or float32"),
    ],
)
def test_bad_writer_input_gets_a_clear_message(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "channels": [(1, "a"), (2, "b")],
        "metadata": None,
        "fov_size_um": 10.0,
    }
    arguments.update(kwargs)
    with pytest.raises(MibiTiffError, match=message):
        write_mibitiff(tmp_path / "bad.tiff", np.zeros((2, 4, 4), np.uint16), **arguments)  # type: ignore[arg-type]


def test_file_without_sims_pages_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sed_only.tiff"
    with tifffile.TiffWriter(path) as tif:
        _foreign_page(tif, np.zeros((8, 8), np.uint8), {"image.type": "SED"}, "SED", 10.0)
    assert is_mibitiff(path)
    with pytest.raises(MibiTiffError, match="without SIMS pages"):
        read_mibitiff(path)
