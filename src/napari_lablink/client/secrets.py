"""Where secrets (tokens, passwords) are kept: the OS keyring when usable, else a 0600 file.

A server's table in servers.toml either holds a secret itself, in a file only its owner can read,
or lists it under ``keyring = ["token"]``, the secret then being in the OS keyring under
``host:port/field``. The config lookup (:mod:`napari_lablink.client.config`) reads secrets
through here and the profile store (:mod:`napari_lablink.profiles`) writes them through here,
so both agree on the layout without either importing the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from napari_lablink.client.errors import ConfigurationError

__all__ = [
    "KEYRING_SERVICE",
    "SECRET_FIELDS",
    "KeyringSecrets",
    "SecretStore",
    "forget_secrets",
    "keyring_secrets",
    "read_secret",
    "write_private",
    "write_secret",
]

log = logging.getLogger(__name__)

#: The fields of a server's table that are secrets.
SECRET_FIELDS = ("token", "password")
KEYRING_SERVICE = "napari-lablink"

#: One table of servers.toml (TOML values are str, list, table, ...).
Table = MutableMapping[str, Any]


class SecretStore(Protocol):
    """Where secrets go instead of the config file (the OS keyring)."""

    name: str

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class KeyringSecrets:
    """The OS keyring through the ``keyring`` package."""

    name = "the OS keyring"

    def __init__(self, module: ModuleType) -> None:
        self._keyring = module

    def get(self, key: str) -> str | None:
        value = self._keyring.get_password(KEYRING_SERVICE, key)
        return str(value) if value is not None else None

    def set(self, key: str, value: str) -> None:
        self._keyring.set_password(KEYRING_SERVICE, key, value)

    def delete(self, key: str) -> None:
        with contextlib.suppress(self._keyring.errors.PasswordDeleteError):
            self._keyring.delete_password(KEYRING_SERVICE, key)


def keyring_secrets() -> KeyringSecrets | None:
    """The OS keyring if ``keyring`` is installed and has a backend that can store secrets.

    Headless machines usually have none (keyring then picks its "fail" or "null" backend, of
    priority <= 0); secrets then stay in the 0600 config file.
    """
    try:
        import keyring
        import keyring.errors
    except ImportError:
        return None
    try:
        usable = float(keyring.get_keyring().priority) > 0
    except Exception:  # a backend that cannot even say its priority (no D-Bus, ...) is no backend
        usable = False
    return KeyringSecrets(keyring) if usable else None


def _key(server_key: str, field: str) -> str:
    return f"{server_key}/{field}"


def _in_keyring(table: Mapping[str, Any]) -> list[str]:
    listed = table.get("keyring") or []
    return [str(f) for f in listed] if isinstance(listed, list) else []


def read_secret(
    table: Mapping[str, Any], server_key: str, field: str, store: SecretStore | None
) -> str | None:
    """The secret ``field`` of the server whose table is ``table``, wherever it is kept.

    A secret the table says is in the keyring, while no keyring can be used, is an error rather
    than a silent ``None``: the user stored it and would otherwise only see a refused login.
    """
    if field in _in_keyring(table):
        if store is None:
            raise ConfigurationError(
                f"The {field} of {server_key} is in the OS keyring, which cannot be used now",
                hint="Install the keyring package with a backend, or enter it again",
            )
        return store.get(_key(server_key, field))
    value = table.get(field)
    return str(value) if value else None


def write_secret(
    table: Table, server_key: str, field: str, value: str, store: SecretStore | None
) -> None:
    """Keep ``value`` (``""`` removes the secret) in ``store``, else in ``table``."""
    in_keyring = [f for f in _in_keyring(table) if f != field]
    table.pop(field, None)
    if store is not None:
        store.delete(_key(server_key, field))
    if value and store is not None:
        try:
            store.set(_key(server_key, field), value)
            in_keyring.append(field)
        except Exception as exc:  # a keyring that refuses: keep the secret in the 0600 file
            log.warning(
                "%s refused the %s of %s (%s); it goes to the config file",
                store.name,
                field,
                server_key,
                type(exc).__name__,
            )
            table[field] = value
    elif value:
        table[field] = value
    if in_keyring:
        table["keyring"] = in_keyring
    else:
        table.pop("keyring", None)


def forget_secrets(table: Table, server_key: str, store: SecretStore | None) -> None:
    """Delete the keyring entries of a server whose table is being removed."""
    if store is None:
        return
    for field in _in_keyring(table):
        store.delete(_key(server_key, field))


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only (it may hold
    secrets); its folder is created private too."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
