"""What napari-lablink asks a deployment for when it registers: who it is and which services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LABLINK_APP", "MIKRO", "S3", "AppManifest", "Requirement"]


@dataclass(frozen=True)
class Requirement:
    """A service the app needs, under the key the granted configuration will use for it."""

    key: str
    service: str
    optional: bool = False
    description: str | None = None


MIKRO = Requirement("mikro", "live.arkitekt.mikro", description="Images and their metadata")
S3 = Requirement("s3", "live.arkitekt.s3", description="The pixels of the images")


@dataclass(frozen=True)
class AppManifest:
    """The app's identity on the deployment. Scopes default to ``openid``, the one scope every
    organization knows (an unknown scope makes approval fail on G2b deployments)."""

    identifier: str = "napari-lablink"
    version: str = "0.1.0"
    scopes: tuple[str, ...] = ("openid",)
    requirements: tuple[Requirement, ...] = (MIKRO, S3)

    def __post_init__(self) -> None:
        if not self.identifier or "/" in self.identifier:
            raise ValueError("an app identifier is non-empty and has no '/'")

    def as_json(self, *, modern: bool) -> dict[str, Any]:
        """The ``manifest`` body: requirements as a list (G2b) or a mapping by key (G1/G2a)."""
        requirements: Any
        if modern:
            requirements = [
                {
                    "key": r.key,
                    "service": r.service,
                    "optional": r.optional,
                    "description": r.description,
                }
                for r in self.requirements
            ]
        else:
            requirements = {
                r.key: {"service": r.service, "optional": r.optional, "description": r.description}
                for r in self.requirements
            }
        return {
            "identifier": self.identifier,
            "version": self.version,
            "scopes": list(self.scopes),
            "requirements": requirements,
        }


LABLINK_APP = AppManifest()
