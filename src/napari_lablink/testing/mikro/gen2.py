"""Generation-2 GraphQL resolvers ("images"): GraphQL arguments in, dicts out."""

from __future__ import annotations

from typing import Any

from napari_lablink.testing.mikro.backend import MikroBackend
from napari_lablink.testing.mikro.state import Image, MaskView, ScaleView, ZarrStore

#: The datalayer name grants of early-2026 servers carry.
DATALAYER = "zarr"
#: The S3 region grants of v2.0.0 carry.
REGION = "us-east-1"
#: Server versions the stand-in imitates, newest first.
VERSIONS = ("2.0.0", "early-2026")


class Gen2Root:
    def __init__(self, backend: MikroBackend, version: str = VERSIONS[0]) -> None:
        if version not in VERSIONS:
            raise ValueError(f"generation-2 version must be one of {VERSIONS}, not {version!r}")
        self._backend = backend
        self._version = version

    def image(self, info: Any, id: str) -> dict[str, Any]:
        return self._image(self._backend.state.image(id))

    def images(
        self,
        info: Any,
        filters: dict[str, Any] | None = None,
        pagination: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        pagination = pagination or {}
        found = self._backend.find_images(
            filters, pagination.get("offset") or 0, pagination.get("limit")
        )
        return [self._image(image) for image in found]

    def requestZarrAccess(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        store, credentials = self._backend.access_grant(input.get("storeId"))
        grant = {
            **_credentials(credentials),
            "bucket": store.s3_bucket,
            "key": store.key,
            "path": store.path,
            "expiresIn": self._backend.expires_in,
        }
        if self._version == "early-2026":
            return {**grant, "datalayer": DATALAYER}
        return {**grant, "region": REGION}

    def requestZarrUpload(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        store, credentials = self._backend.upload_grant(
            input.get("shape"), input.get("chunks"), input.get("version")
        )
        return self._upload_grant(store, credentials)

    def refreshZarrUpload(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        store, credentials = self._backend.refresh_upload_grant(input["storeId"])
        return self._upload_grant(store, credentials)

    def _upload_grant(self, store: ZarrStore, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            **_credentials(credentials),
            "bucket": store.s3_bucket,
            "key": store.key,
            "path": store.path,
            "store": store.id,
            "expiresIn": self._backend.expires_in,
            "maxBytes": store.max_bytes,
        }

    def finishZarrUpload(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return _store(self._backend.finish_upload(input["storeId"], input["valid"]))

    def fromArrayLike(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        image = self._backend.register_image(
            input["array"],
            name=input["name"],
            tags=input.get("tags"),
            channel_views=input.get("channelViews"),
            transformation_views=input.get("transformationViews"),
            scale_views=input.get("scaleViews"),
            mask_views=input.get("maskViews"),
            instance_mask_views=input.get("instanceMaskViews"),
            rgb_views=input.get("rgbViews"),
        )
        return self._image(image)

    def deleteImage(self, info: Any, input: dict[str, Any]) -> str:
        return self._backend.delete_image(input["id"])

    def _image(self, image: Image) -> dict[str, Any]:
        state = self._backend.state
        return {
            "id": image.id,
            "name": image.name,
            "tags": image.tags,
            "store": lambda info: _store(state.store(image.store)),
            "channelViews": [
                {
                    "id": view.id,
                    "name": view.name,
                    "emissionWavelength": view.emission_wavelength,
                    "excitationWavelength": view.excitation_wavelength,
                    "cMin": view.c_min,
                    "cMax": view.c_max,
                }
                for view in image.channel_views
            ],
            "affineTransformationViews": [
                {
                    "id": view.id,
                    "affineMatrix": view.affine_matrix,
                    "pixelSizeX": view.affine_matrix[0][0],
                    "pixelSizeY": view.affine_matrix[1][1],
                    "pixelSizeZ": view.affine_matrix[2][2],
                }
                for view in image.affine_views
            ],
            "derivedScaleViews": lambda info: [
                self._scale_view(view) for view in state.derived_scale_views(image.id)
            ],
            "maskViews": [self._mask_view(v) for v in image.mask_views if not v.instance],
            "instanceMaskViews": [self._mask_view(v) for v in image.mask_views if v.instance],
            "rgbContexts": [
                {
                    "id": context.id,
                    "name": context.name,
                    "views": [
                        {
                            "id": view.id,
                            "cMin": view.c_min,
                            "cMax": view.c_max,
                            "colorMap": view.color_map,
                            "gamma": view.gamma,
                            "contrastLimitMin": view.contrast_limit_min,
                            "contrastLimitMax": view.contrast_limit_max,
                            "active": view.active,
                            "baseColor": view.base_color,
                        }
                        for view in context.views
                    ],
                }
                for context in image.rgb_contexts
            ],
        }

    def _mask_view(self, view: MaskView) -> dict[str, Any]:
        reference = self._backend.state.reference_view(view.reference_view)
        return {
            "id": view.id,
            "referenceView": {
                "id": reference.id,
                "image": lambda info: self._image(self._backend.state.image(reference.image)),
            },
        }

    def _scale_view(self, view: ScaleView) -> dict[str, Any]:
        return {
            "id": view.id,
            "scaleX": view.scale_x,
            "scaleY": view.scale_y,
            "scaleZ": view.scale_z,
            "scaleT": view.scale_t,
            "scaleC": view.scale_c,
            "image": lambda info: self._image(self._backend.state.image(view.image)),
        }


def _credentials(credentials: dict[str, Any]) -> dict[str, Any]:
    return {
        "accessKey": credentials["access_key_id"],
        "secretKey": credentials["secret_access_key"],
        "sessionToken": credentials["session_token"],
    }


def _store(store: ZarrStore) -> dict[str, Any]:
    return {
        "id": store.id,
        "path": store.path,
        "bucket": store.bucket,
        "key": store.key,
        "shape": store.shape,
        "chunks": store.chunks,
        "dtype": store.dtype,
        "dimensionNames": store.dimension_names,
        "version": store.version,
    }
