"""Keeping a grant between runs: the client token and the configuration it was granted.

Both are secrets (the client token yields everything), stored per (deployment, app identifier).
:class:`GrantStore` is what the login needs; :class:`FileGrantStore` keeps each grant in its own
file readable by the user only (0600), for systems without a keyring.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FileGrantStore", "GrantStore", "MemoryGrantStore", "StoredGrant"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredGrant:
    """What is kept between runs. Secret fields stay out of ``repr``."""

    deployment: str  # the fakts base_url
    app: str  # the app identifier
    client_token: str = field(repr=False)
    configuration: Mapping[str, Any] = field(repr=False, default_factory=dict)


class GrantStore(Protocol):
    def load(self, deployment: str, app: str) -> StoredGrant | None: ...

    def save(self, grant: StoredGrant) -> None: ...

    def delete(self, deployment: str, app: str) -> bool: ...


class MemoryGrantStore:
    """Grants for this process only (tests, or a user who wants nothing on disk)."""

    def __init__(self) -> None:
        self._grants: dict[tuple[str, str], StoredGrant] = {}

    def load(self, deployment: str, app: str) -> StoredGrant | None:
        return self._grants.get((deployment, app))

    def save(self, grant: StoredGrant) -> None:
        self._grants[(grant.deployment, grant.app)] = grant

    def delete(self, deployment: str, app: str) -> bool:
        return self._grants.pop((deployment, app), None) is not None


class FileGrantStore:
    """One JSON file per grant in ``directory`` (created 0700), each written 0600 atomically."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, deployment: str, app: str) -> Path:
        digest = hashlib.sha256(f"{deployment}\n{app}".encode()).hexdigest()[:32]
        return self.directory / f"arkitekt-{digest}.json"

    def load(self, deployment: str, app: str) -> StoredGrant | None:
        path = self.path(deployment, app)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if (data["deployment"], data["app"]) != (deployment, app):
                return None
            token, configuration = data["client_token"], data["configuration"]
            if not isinstance(token, str) or not isinstance(configuration, dict):
                raise TypeError
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable stored Arkitekt login (%s)", path.name)
            return None
        return StoredGrant(deployment, app, token, configuration)

    def save(self, grant: StoredGrant) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {
            "deployment": grant.deployment,
            "app": grant.app,
            "client_token": grant.client_token,
            "configuration": dict(grant.configuration),
        }
        target = self.path(grant.deployment, grant.app)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".arkitekt-")
        try:
            os.chmod(temporary, 0o600)  # mkstemp does so on POSIX; be explicit
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def delete(self, deployment: str, app: str) -> bool:
        try:
            self.path(deployment, app).unlink()
        except FileNotFoundError:
            return False
        return True
