"""Generation-1 GraphQL resolvers ("representations"): GraphQL arguments in, dicts out.

graphql-core's default resolver calls a root attribute with ``(info, **arguments)`` and reads
nested fields from dict keys, so these return dicts keyed by the schema's field names.
"""

from __future__ import annotations

from typing import Any

from napari_lablink.testing.mikro.backend import MikroBackend
from napari_lablink.testing.mikro.state import Representation

#: What the real generation-1 server puts into ``request.status``.
GRANTED_STATUS = "success"


class Gen1Root:
    def __init__(self, backend: MikroBackend) -> None:
        self._backend = backend

    def request(self, info: Any) -> dict[str, Any]:
        credentials = self._backend.gen1_credentials()
        return {
            "accessKey": credentials["access_key_id"],
            "secretKey": credentials["secret_access_key"],
            "sessionToken": credentials["session_token"],
            "status": GRANTED_STATUS,
        }

    def representation(self, info: Any, id: str) -> dict[str, Any]:
        return self._as_dict(self._backend.state.representation(id))

    def representations(
        self,
        info: Any,
        name: str | None = None,
        tags: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        found = self._backend.find_representations(name, tags, limit, offset)
        return [self._as_dict(r) for r in found]

    def fromXArray(
        self,
        info: Any,
        xarray: str,
        name: str | None = None,
        variety: str | None = None,
        tags: list[str] | None = None,
        origins: list[str] | None = None,
        omero: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        representation = self._backend.register_representation(
            xarray, name=name, variety=variety, tags=tags, origins=origins, omero=omero
        )
        return self._as_dict(representation)

    def deleteRepresentation(self, info: Any, id: str) -> dict[str, Any]:
        return {"id": self._backend.delete_representation(id)}

    def _as_dict(self, representation: Representation) -> dict[str, Any]:
        state = self._backend.state
        omero = representation.omero
        return {
            "id": representation.id,
            "name": representation.name,
            "store": representation.store,
            "shape": representation.shape,
            "dims": representation.dims,
            "variety": representation.variety,
            "tags": representation.tags,
            "omero": None if omero is None else _omero(omero),
            "sample": None,
            "origins": lambda info: [
                self._as_dict(state.representation(o)) for o in representation.origins
            ],
        }


def _omero(omero: dict[str, Any]) -> dict[str, Any]:
    channels = omero.get("channels")
    if channels is not None:
        channels = [
            None if c is None else {"name": c.get("name"), "color": c.get("color")}
            for c in channels
        ]
    return {
        "physicalSize": omero.get("physicalSize"),
        "scale": omero.get("scale"),
        "channels": channels,
    }
