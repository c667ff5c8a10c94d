"""Every MIBItiff the writer makes opens under mibidata's rules, with or without metadata."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest

from napari_lablink.formats.mibitiff import (
    DEFAULTS,
    MibiTiffError,
    read_mibitiff,
    write_mibitiff,
)
from tests.mibidata_rules import read_like_mibidata

COUNTS = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
CHANNELS = [(150, "CD45"), (89, "dsDNA")]  # already in page order


def test_a_file_written_without_metadata_gets_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tonsil_scan.tiff"
    before = dt.datetime.now().replace(microsecond=0)
    write_mibitiff(path, COUNTS, CHANNELS, fov_size_um=400.0)
    after = dt.datetime.now()

    strict = read_like_mibidata(str(path))
    assert before <= strict.date <= after
    assert strict.coordinates == DEFAULTS["coordinates"] == (0.0, 0.0)
    assert strict.description["mibi.run"] == "tonsil_scan"  # named after the file
    assert strict.description["mibi.fov_id"] == DEFAULTS["fov_id"] == "FOV1"
    assert strict.description["mibi.folder"] == "FOV1"
    assert strict.channels == CHANNELS
    assert strict.size_um == pytest.approx(400.0)
    np.testing.assert_array_equal(strict.data, np.moveaxis(COUNTS, 0, -1))


def test_a_file_object_gets_the_default_run_name() -> None:
    buffer = io.BytesIO()
    write_mibitiff(buffer, COUNTS, CHANNELS, fov_size_um=400.0)
    buffer.seek(0)
    assert read_like_mibidata(buffer).description["mibi.run"] == DEFAULTS["run"]


def test_given_values_win_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "x.tiff"
    metadata = {
        "mibi.run": "20190823_run",
        "folder": "Point3/RowNumber0/Depth_Profile0",
        "date": "2019-08-23T11:31:52",
        "coordinates": (-120.5, 80.0),
    }
    write_mibitiff(path, COUNTS, CHANNELS, metadata, fov_size_um=400.0)
    strict = read_like_mibidata(str(path))
    assert strict.description["mibi.run"] == "20190823_run"
    assert strict.description["mibi.fov_id"] == "Point3"  # from the folder, as mibidata does
    assert strict.date == dt.datetime(2019, 8, 23, 11, 31, 52)
    assert strict.coordinates == pytest.approx((-120.5, 80.0))
    # The plugin's own reader sees the same.
    assert read_mibitiff(path).metadata["fov_id"] == "Point3"


def test_a_fov_id_alone_names_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "x.tiff"
    write_mibitiff(path, COUNTS, CHANNELS, {"fov_id": "FOV7"}, fov_size_um=400.0)
    assert read_like_mibidata(str(path)).description["mibi.folder"] == "FOV7"


def test_a_folder_of_another_fov_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MibiTiffError, match="does not start with the FOV id 'FOV2'"):
        write_mibitiff(
            tmp_path / "x.tiff",
            COUNTS,
            CHANNELS,
            {"fov_id": "FOV2", "folder": "FOV3"},
            fov_size_um=400.0,
        )


def test_a_file_with_an_sed_page_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "x.tiff"
    write_mibitiff(path, COUNTS, CHANNELS, fov_size_um=400.0, sed=np.ones((8, 8), np.uint8))
    assert read_like_mibidata(str(path)).channels == CHANNELS


def test_the_strict_reader_refuses_what_mibidata_refuses(tmp_path: Path) -> None:
    """Guard the guard: a file without DateTime or positions does not pass."""
    import tifffile

    path = tmp_path / "bare.tiff"
    tifffile.imwrite(
        path,
        COUNTS[0],
        description='{"image.type": "SIMS", "channel.mass": 89, "channel.target": "dsDNA", '
        '"mibi.run": "r", "mibi.fov_id": "FOV1", "mibi.folder": "FOV1"}',
        metadata=None,
        software="IonpathMIBIv1.0",
        resolution=(400.0, 400.0),
        resolutionunit="CENTIMETER",
    )
    with pytest.raises(AssertionError, match="DateTime"):
        read_like_mibidata(str(path))
