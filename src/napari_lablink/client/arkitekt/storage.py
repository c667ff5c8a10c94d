"""Keeping a grant between runs: the client token and the configuration it was granted.

Both are secrets (the client token yields everything), stored per (deployment, app identifier).
:class:`GrantStore` is what the login needs; :class:`FileGrantStore` keeps each grant in its own
file readable by the user only (0600). Given the OS keyring (a
:class:`~napari_lablink.client.secrets.SecretStore`), it keeps the client token there instead and
writes neither it nor the configuration to disk: the configuration is then claimed again at the
next start (one request), which keeps the keyring entry small enough for every backend.
:func:`default_grant_store` picks the keyring when one is usable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from napari_lablink.client.config import config_path
from napari_lablink.client.secrets import SecretStore, keyring_secrets, write_private

__all__ = ["FileGrantStore", "GrantStore", "MemoryGrantStore", "StoredGrant", "default_grant_store"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredGrant:
    """What is kept between runs. Secret fields stay out of ``repr``."""

    deployment: str  # the fakts base_url
    app: str  # the app identifier
    client_token: str = field(repr=False)
    #: The granted configuration; empty when only the token was kept (claim it again).
    configuration: Mapping[str, Any] = field(repr=False, default_factory=dict)
    #: The deployment's discovery document (no secret): finds it again without the network.
    fakts: Mapping[str, Any] = field(default_factory=dict)


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
    """One JSON file per grant in ``directory`` (created 0700), each written 0600 atomically.

    With ``secrets`` (the OS keyring) the client token goes there and the file keeps only what
    is no secret: which deployment, which app, its discovery document.
    """

    def __init__(
        self, directory: str | os.PathLike[str], secrets: SecretStore | None = None
    ) -> None:
        self.directory = Path(directory)
        self.secrets = secrets

    def __repr__(self) -> str:
        where = f", tokens in {self.secrets.name}" if self.secrets else ""
        return f"<FileGrantStore {self.directory}{where}>"

    def path(self, deployment: str, app: str) -> Path:
        digest = hashlib.sha256(f"{deployment}\n{app}".encode()).hexdigest()[:32]
        return self.directory / f"arkitekt-{digest}.json"

    @staticmethod
    def _keyring_key(deployment: str, app: str) -> str:
        return f"arkitekt:{deployment}#{app}"

    def load(self, deployment: str, app: str) -> StoredGrant | None:
        path = self.path(deployment, app)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if (data["deployment"], data["app"]) != (deployment, app):
                return None
            if data.get("keyring"):
                if self.secrets is None:
                    log.warning("a stored Arkitekt login is in the OS keyring, which is unusable")
                    return None
                token = self.secrets.get(self._keyring_key(deployment, app))
                if token is None:
                    return None
                configuration: Any = {}
            else:
                token, configuration = data["client_token"], data["configuration"]
            fakts = data.get("fakts") or {}
            if not isinstance(token, str) or not isinstance(configuration, dict):
                raise TypeError
            if not isinstance(fakts, dict):
                raise TypeError
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable stored Arkitekt login (%s)", path.name)
            return None
        return StoredGrant(deployment, app, token, configuration, fakts)

    def save(self, grant: StoredGrant) -> None:
        data: dict[str, Any] = {
            "deployment": grant.deployment,
            "app": grant.app,
            "fakts": dict(grant.fakts),
        }
        key = self._keyring_key(grant.deployment, grant.app)
        if self.secrets is not None:
            try:
                self.secrets.set(key, grant.client_token)
                data["keyring"] = True
            except Exception as exc:  # a keyring that refuses: keep the grant in the 0600 file
                log.warning(
                    "%s refused the Arkitekt login (%s); it goes to a private file",
                    self.secrets.name,
                    type(exc).__name__,
                )
        if not data.get("keyring"):
            data["client_token"] = grant.client_token
            data["configuration"] = dict(grant.configuration)
        write_private(self.path(grant.deployment, grant.app), json.dumps(data))

    def delete(self, deployment: str, app: str) -> bool:
        if self.secrets is not None:
            self.secrets.delete(self._keyring_key(deployment, app))
        try:
            self.path(deployment, app).unlink()
        except FileNotFoundError:
            return False
        return True


def default_grant_store() -> FileGrantStore:
    """Where logins are kept: beside the config file (``arkitekt/``), the client tokens in the
    OS keyring when one is usable."""
    return FileGrantStore(config_path().parent / "arkitekt", keyring_secrets())
