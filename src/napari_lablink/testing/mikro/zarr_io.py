"""The stand-in server's own view of zarr on S3: writing seeded data and checking uploads.

Seeded data is written with zarr (and xarray for generation 1) exactly as the real clients
write it, never with the plugin's client code. Uploads are checked the way the real servers
check them, plus the layout rules docs/protocols/mikro.md states (five dims c,t,z,y,x) so a client
that breaks them fails here rather than producing unreadable data on a real server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_lablink.testing.mikro.state import MikroError

if TYPE_CHECKING:
    from napari_lablink.testing.s3.server import S3StandIn

DIMS = ["c", "t", "z", "y", "x"]
GEN1_TARGET_CHUNK_BYTES = 20 * 1024 * 1024


def as_5d(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim != 5:
        raise ValueError(f"{what} must have five axes (c, t, z, y, x), got shape {array.shape}")
    return array


def gen1_default_chunks(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    """Chunks like the old generation-1 clients: c and t chunk 1, about 20 MB per chunk."""
    _, _, z, y, x = shape
    plane = y * x * itemsize
    if plane >= GEN1_TARGET_CHUNK_BYTES:
        rows = max(1, GEN1_TARGET_CHUNK_BYTES // (x * itemsize))
        return (1, 1, 1, min(y, rows), x)
    return (1, 1, max(1, min(z, GEN1_TARGET_CHUNK_BYTES // plane)), y, x)


def gen2_default_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """One chunk per plane, tiled at 1024 x 1024 pixels."""
    return (1, 1, 1, min(shape[3], 1024), min(shape[4], 1024))


def write_gen1_dataset(
    s3: S3StandIn, bucket: str, key: str, array: np.ndarray, chunks: Sequence[int]
) -> None:
    """What ``xarray.Dataset.to_zarr(consolidated=True)`` writes for a mikro representation."""
    import xarray as xr

    dataset = xr.Dataset({"data": xr.DataArray(array, dims=DIMS)}, attrs={"fileversion": "v1"})
    dataset.to_zarr(
        s3.zarr_store(bucket, key),
        mode="w",
        consolidated=True,
        zarr_format=2,
        encoding={"data": {"chunks": tuple(chunks)}},
    )


def write_gen2_array(
    s3: S3StandIn, bucket: str, key: str, array: np.ndarray, chunks: Sequence[int]
) -> None:
    """A zarr v3 array (not a group) with dimension_names c,t,z,y,x."""
    import zarr

    target = zarr.create_array(
        store=s3.zarr_store(bucket, key),
        shape=array.shape,
        chunks=tuple(chunks),
        dtype=array.dtype,
        dimension_names=DIMS,
        zarr_format=3,
        fill_value=0,
    )
    target[...] = array


def downsample_yx(array: np.ndarray) -> np.ndarray:
    """2x block mean in y and x (odd edges dropped), keeping the dtype."""
    c, t, z, y, x = array.shape
    y2, x2 = max(1, y // 2), max(1, x // 2)
    if y < 2 or x < 2:
        raise ValueError(f"cannot downsample a {y}x{x} plane any further")
    blocks = array[..., : y2 * 2, : x2 * 2].reshape(c, t, z, y2, 2, x2, 2)
    mean = blocks.mean(axis=(4, 6), dtype=np.float64)
    if np.issubdtype(array.dtype, np.integer):
        mean = np.rint(mean)
    return mean.astype(array.dtype)


def _read_json(s3: S3StandIn, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_object(bucket, key))
    except KeyError:
        return None
    except ValueError as exc:
        raise MikroError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from exc


def read_gen1_dataset(s3: S3StandIn, bucket: str, key: str) -> dict[str, Any]:
    """Shape, dims and dtype of the Dataset at bucket/key, or a MikroError saying what is wrong."""
    where = f"{bucket}/{key}"
    if bucket not in _buckets(s3):
        raise MikroError(f"store {where!r}: bucket {bucket!r} does not exist")
    if _read_json(s3, bucket, f"{key}/zarr.json") is not None:
        raise MikroError(
            f"store {where!r} is zarr format 3; generation-1 representations must be xarray "
            "Datasets written with zarr format 2"
        )
    consolidated = _read_json(s3, bucket, f"{key}/.zmetadata")
    if consolidated is not None:
        metadata = consolidated.get("metadata", {})
        zarray, zattrs = metadata.get("data/.zarray"), metadata.get("data/.zattrs")
    else:
        zarray = _read_json(s3, bucket, f"{key}/data/.zarray")
        zattrs = _read_json(s3, bucket, f"{key}/data/.zattrs")
    if zarray is None:
        if not s3.list_objects(bucket, key + "/"):
            raise MikroError(f"store {where!r} does not exist in S3 (nothing under that key)")
        raise MikroError(
            f"store {where!r} has no variable 'data' (expected {key}/data/.zarray); write an "
            "xarray Dataset with one variable named 'data'"
        )
    if zarray.get("zarr_format") != 2:
        raise MikroError(f"store {where!r}: variable 'data' is not zarr format 2")
    dims = list((zattrs or {}).get("_ARRAY_DIMENSIONS") or [])
    if dims != DIMS:
        raise MikroError(
            f"store {where!r}: variable 'data' has dims {dims}, but generation 1 needs all five "
            f"dims in the order {DIMS} (size-1 axes included)"
        )
    return {"shape": list(zarray["shape"]), "dims": dims, "dtype": zarray.get("dtype")}


def read_gen2_array(s3: S3StandIn, bucket: str, key: str) -> dict[str, Any]:
    """The zarr.json facts of an uploaded store, checked as finishZarrUpload checks them."""
    where = f"s3://{bucket}/{key}"
    metadata = _read_json(s3, bucket, f"{key}/zarr.json")
    if metadata is None:
        if _read_json(s3, bucket, f"{key}/.zarray") is not None or (
            _read_json(s3, bucket, f"{key}/.zgroup") is not None
        ):
            raise MikroError(
                f"{where} is a zarr v2 store. Zarr v2 is not supported. Only Zarr v3 stores "
                "are supported."
            )
        raise MikroError(f"Could not find Zarr v3 metadata (zarr.json) at {where}.")
    if metadata.get("zarr_format") == 2:
        raise MikroError("Zarr v2 is not supported. Only Zarr v3 stores are supported.")
    if metadata.get("node_type") != "array":
        raise MikroError(
            f"{where} is a zarr {metadata.get('node_type')}: only Zarr v3 ARRAY stores are "
            "supported (write the array at the grant's key, not a group)."
        )
    shape = metadata.get("shape")
    chunk_shape = metadata.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
    if shape is None or chunk_shape is None:
        raise MikroError(f"Malformed zarr.json at {where}: missing shape or chunk shape.")
    dims = metadata.get("dimension_names")
    if dims != DIMS:
        raise MikroError(
            f"{where} has dimension_names {dims}; images must be five-dimensional with "
            f"dimension_names {DIMS}"
        )
    data_type = metadata.get("data_type")
    return {
        "shape": list(shape),
        "chunks": list(chunk_shape),
        "dtype": data_type if isinstance(data_type, str) else json.dumps(data_type),
        "dimension_names": dims,
        "version": str(metadata["zarr_format"]),
    }


def _buckets(s3: S3StandIn) -> set[str]:
    return {b["Name"] for b in s3.admin_client().list_buckets().get("Buckets", [])}
