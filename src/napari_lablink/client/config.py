"""Server profiles and credentials: where napari-lablink finds what a connection needs.

Each setting is looked up in this order: an explicit argument, the environment
(``LABLINK_TOKEN``, ``LABLINK_MIBI_EMAIL``, ``LABLINK_MIBI_PASSWORD``, ``LABLINK_S3_ENDPOINT``;
the first three only for the servers ``LABLINK_SERVER`` names, see :func:`environment_applies`),
the config file (``LABLINK_CONFIG``, else napari's plugin setting "Config file", else
``<user config dir>/napari-lablink/servers.toml``; one table per ``host:port``, whose secrets may
be in the OS keyring, see :mod:`napari_lablink.client.secrets`), and inside
napari its plugin settings (a default S3 endpoint; no secrets: napari stores its settings in
plain YAML). The file is TOML::

    ["mikro.example.org:443"]
    token = "..."
    s3 = "https://s3.example.org"

    ["127.0.0.1:8000"]
    email = "me@example.org"
    password = "..."
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from napari_lablink.client.errors import ConfigurationError
from napari_lablink.client.secrets import SECRET_FIELDS, keyring_secrets, read_secret

__all__ = [
    "Credentials",
    "config_path",
    "environment_applies",
    "load_profiles",
    "merge_credentials",
    "resolve_credentials",
]

#: Which servers the environment's credentials are for: ``host:port`` or ``host``, comma-separated.
SERVER_ENV = "LABLINK_SERVER"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_ENV = {
    "token": "LABLINK_TOKEN",
    "email": "LABLINK_MIBI_EMAIL",
    "password": "LABLINK_MIBI_PASSWORD",
    "s3": "LABLINK_S3_ENDPOINT",
}


@dataclass(frozen=True)
class Credentials:
    """What a connection to one server may need. ``repr`` hides the secrets."""

    token: str | None = None
    email: str | None = None
    password: str | None = None
    s3: str | None = None

    def __repr__(self) -> str:
        shown = {
            "token": "***" if self.token else None,
            "email": self.email,
            "password": "***" if self.password else None,
            "s3": self.s3,
        }
        return "Credentials(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.password) if s)


def napari_setting(name: str) -> str | None:
    """A value of napari's plugin settings for napari-lablink (``servers.<name>``), if set.

    Read only when napari is already running in this process: the core never imports napari.
    """
    if "napari.settings" not in sys.modules:
        return None
    try:
        from napari.settings import get_plugin_settings

        value = getattr(get_plugin_settings("napari-lablink").servers, name)
    except Exception:  # an older napari without plugin settings, or none declared
        return None
    return str(value).strip() or None


def config_path() -> Path:
    """The servers.toml in use: ``LABLINK_CONFIG``, napari's plugin setting, or the default."""
    explicit = os.environ.get("LABLINK_CONFIG") or napari_setting("config_file")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_config_dir("napari-lablink", appauthor=False)) / "servers.toml"


def load_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The config file's tables keyed by ``host:port``; an absent file is an empty config."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the config file {path}: {exc.strerror}",
            hint="Fix its permissions or point LABLINK_CONFIG at another file",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"The config file {path} is not valid TOML ({exc})",
            hint='Each server is a table such as ["host:port"] with token, s3, email, password',
        ) from None
    return {key: value for key, value in data.items() if isinstance(value, dict)}


def resolve_credentials(server_key: str, **explicit: str | None) -> Credentials:
    """Merge explicit arguments, the environment and the config file's table for ``server_key``.

    The environment's credentials apply to the servers ``LABLINK_SERVER`` names (loopback ones
    without it); the config file's tables are per ``host:port``, so a token for one server is
    never offered to another.
    """
    return merge_credentials(server_key, load_profiles().get(server_key, {}), explicit)


def environment_applies(server_key: str) -> bool:
    """Whether the environment's credentials may be offered to the server ``host:port``.

    A URI can name any host (a link dropped on napari, a file from someone else), so a token in
    the environment must not go wherever a URI points. ``LABLINK_SERVER`` names the servers it
    is for (``host:port`` or just ``host``, comma-separated); without it, only servers on this
    machine (loopback) get it, as stand-ins and tunnels do.
    """
    host, _, port = server_key.rpartition(":")
    host = host.strip("[]").lower()
    bound = os.environ.get(SERVER_ENV, "").strip()
    if not bound:
        return host in _LOOPBACK
    for entry in bound.split(","):
        entry = entry.strip().lower()
        if "://" in entry:  # a URL was given: keep its authority
            entry = entry.split("://", 1)[1].split("/", 1)[0]
        if entry in (f"{host}:{port}", host, f"[{host}]:{port}"):
            return True
    return False


def merge_credentials(
    server_key: str, table: Mapping[str, Any], explicit: Mapping[str, str | None]
) -> Credentials:
    """:func:`resolve_credentials` with the server's ``table`` of the config file read already
    (by the profile store); secrets it lists under ``keyring`` are read from the OS keyring."""
    values: dict[str, str | None] = {}
    from_environment = environment_applies(server_key)
    for f in fields(Credentials):
        value = explicit.get(f.name)
        if value is None and (from_environment or f.name == "s3"):
            value = os.environ.get(_ENV[f.name]) or None
        if value is None and f.name in SECRET_FIELDS:
            store = keyring_secrets() if table.get("keyring") else None
            value = read_secret(table, server_key, f.name, store)
        elif value is None:
            stored = table.get(f.name)
            value = str(stored) if stored is not None else None
        if value is None and f.name == "s3":
            value = napari_setting("s3_endpoint")
        values[f.name] = value
    return Credentials(**values)
