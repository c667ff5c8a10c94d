"""Named server profiles, kept in the servers.toml that :mod:`napari_lablink.client.config` reads.

A profile is a name, a server kind (``mikro``, ``mibi``, ``pims``), the server's URL and the
credentials it needs. Credentials belong to the server's ``["host:port"]`` table, exactly where
``resolve_credentials`` (and so napari's reader) looks for them; a profile only adds its kind and
URL under ``profiles`` in that table, so two profiles of one server (the two mikro generations
behind one port) share its token::

    ["127.0.0.1:8080"]
    s3 = "http://127.0.0.1:9000"
    token = "..."                  # only when no keyring is usable (the file is then 0600)

    ["127.0.0.1:8080".profiles."Lab mikro"]
    kind = "mikro"
    url = "http://127.0.0.1:8080/mikro"

Secrets (token, password) go to the OS keyring when the optional ``keyring`` package has a
working backend; the table then lists them under ``keyring = ["token"]`` instead. Otherwise they
stay in the file, which is always written with permissions 0600. A stored secret is never read
back into a :class:`Profile` (which only says whether there is one), a ``repr`` or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from napari_lablink._toml_write import dumps
from napari_lablink.client.config import Credentials, config_path, load_profiles
from napari_lablink.client.errors import ConfigurationError, InvalidURIError
from napari_lablink.client.uri import RemoteURI, parse_server_uri

__all__ = [
    "KIND_NAMES",
    "KeyringSecrets",
    "Profile",
    "ProfileStore",
    "SecretStore",
    "keyring_secrets",
    "stored_secret",
]

log = logging.getLogger(__name__)

ProfileKind = Literal["mikro", "mibi", "pims"]
#: How the kinds are shown to users.
KIND_NAMES: dict[str, str] = {"mikro": "mikro", "mibi": "MIBItracker", "pims": "Cytomine PIMS"}
SECRET_FIELDS = ("token", "password")
KEYRING_SERVICE = "napari-lablink"


class SecretStore(Protocol):
    """Where secrets go instead of the config file (the OS keyring)."""

    name: str

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class KeyringSecrets:
    """The OS keyring through the ``keyring`` package."""

    name = "the OS keyring"

    def __init__(self, module: Any) -> None:
        self._keyring = module

    def get(self, key: str) -> str | None:
        return self._keyring.get_password(KEYRING_SERVICE, key)

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


def stored_secret(server_key: str, field: str, path: Path | None = None) -> str | None:
    """A secret of ``server_key`` that profiles put into the keyring, for credential lookups."""
    table = load_profiles(path).get(server_key, {})
    if field not in (table.get("keyring") or []):
        return None
    store = keyring_secrets()
    return store.get(_secret_key(server_key, field)) if store else None


class Profile(BaseModel):
    """A named server: what the browser lists and connects to. Holds no secret, only whether
    one is stored."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ProfileKind
    #: ``http(s)://host[:port][/prefix]`` (a ``kind+http://`` URI is accepted too).
    url: str
    s3: str | None = None
    email: str | None = None
    has_token: bool = False
    has_password: bool = False

    @property
    def server(self) -> RemoteURI:
        """The server as napari-lablink URIs name it."""
        return server_uri(self.kind, self.url)

    @property
    def uri(self) -> str:
        return self.server.server

    @property
    def server_key(self) -> str:
        return self.server.server_key


def server_uri(kind: str, url: str) -> RemoteURI:
    """``mikro`` + ``http://host:8080/mikro`` -> ``mikro+http://host:8080/mikro``."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "https", text
    transport = scheme.rpartition("+")[2].lower() if "+" in scheme else scheme.lower()
    named = scheme.partition("+")[0].lower() if "+" in scheme else None
    if named is not None and named != kind:
        raise ConfigurationError(
            f"The URL {text!r} is a {named} URL, but the profile's kind is {kind}",
            hint="Pick the matching kind, or give the server's http(s):// URL",
        )
    if transport == kind:
        transport = "https"
    if transport not in ("http", "https"):
        raise ConfigurationError(
            f"The URL {text!r} is neither http:// nor https://",
            hint="Give the server's address, such as http://127.0.0.1:8080/mikro",
        )
    try:
        return parse_server_uri(f"{kind}{'+http' if transport == 'http' else ''}://{rest}")
    except InvalidURIError as exc:
        raise ConfigurationError(
            f"The URL {text!r} is not a server address ({exc})",
            hint="Give the server's address, such as http://127.0.0.1:8080/mikro",
        ) from None


class ProfileStore:
    """Add, edit, remove and read profiles of one servers.toml.

    ``secrets`` is where secrets go: by default the OS keyring when usable (see
    :func:`keyring_secrets`), ``None`` for the config file.
    """

    _AUTO: Any = object()

    def __init__(self, path: Path | None = None, secrets: SecretStore | None = _AUTO) -> None:
        self.path = path or config_path()
        self.secrets: SecretStore | None = keyring_secrets() if secrets is self._AUTO else secrets

    def __repr__(self) -> str:
        where = self.secrets.name if self.secrets else "the config file"
        return f"<ProfileStore {self.path} (secrets in {where})>"

    # -- reading --------------------------------------------------------------------------------

    def profiles(self) -> list[Profile]:
        """Every profile of the file, in file order."""
        return [profile for profile, _ in self._entries(load_profiles(self.path))]

    def get(self, name: str) -> Profile:
        for profile in self.profiles():
            if profile.name == name:
                return profile
        raise ConfigurationError(
            f"No server profile is named {name!r}",
            hint=f"Add it in the Lablink browser or to {self.path}",
        )

    def credentials(self, name: str) -> Credentials:
        """What connecting with profile ``name`` needs, secrets included."""
        profile = self.get(name)
        table = load_profiles(self.path).get(profile.server_key, {})
        values = {f: self._read_secret(profile.server_key, table, f) for f in SECRET_FIELDS}
        return Credentials(email=profile.email, s3=profile.s3, **values)

    def connect(self, name: str) -> Any:
        """A new connection (a ``Server``) with profile ``name``; the caller closes it."""
        from napari_lablink.client.connection import connect

        profile = self.get(name)
        credentials = self.credentials(name)
        return connect(
            profile.uri,
            token=credentials.token,
            email=credentials.email,
            password=credentials.password,
            s3=credentials.s3,
        )

    # -- writing --------------------------------------------------------------------------------

    def save(
        self,
        profile: Profile,
        *,
        token: str | None = None,
        password: str | None = None,
        replaces: str | None = None,
    ) -> Profile:
        """Add ``profile`` or, with ``replaces``, edit the profile of that name (which may be
        renamed or moved to another server).

        A secret given as ``None`` is kept as stored (it was never shown, so a form leaves it
        empty), ``""`` removes it. A new profile without ``s3`` or ``email`` takes those its
        server has already. Returns the profile as stored.
        """
        name = profile.name.strip()
        if not name:
            raise ConfigurationError("A server profile needs a name")
        key = server_uri(profile.kind, profile.url).server_key  # validates kind and URL
        data = load_profiles(self.path)
        entries = {p.name: p for p, _ in self._entries(data)}
        if name in entries and name != replaces:
            raise ConfigurationError(
                f"A server profile named {name!r} exists already", hint="Pick another name"
            )
        secrets: dict[str, str | None] = {"token": token, "password": password}
        old = entries.get(replaces) if replaces else None
        if old is not None:
            old_table = data.get(old.server_key, {})
            for field, value in secrets.items():
                if value is None:  # kept: carried over, as dropping the old entry may remove it
                    secrets[field] = self._read_secret(old.server_key, old_table, field)
            self._drop(data, old)
        table = data.setdefault(key, {})
        for field, value in (("s3", profile.s3), ("email", profile.email)):
            if value:
                table[field] = value
            elif old is not None:  # an edit showed the stored value: empty clears it
                table.pop(field, None)
            # A new profile leaves what its server's table has (another profile's, or the user's).
        for field, value in secrets.items():
            if value is not None:
                self._write_secret(key, table, field, value)
        table.setdefault("profiles", {})[name] = {"kind": profile.kind, "url": profile.url.strip()}
        self._write(data)
        where = self.secrets.name if self.secrets else "the config file"
        log.info("saved server profile %r for %s (secrets in %s)", name, key, where)
        return self.get(name)

    def remove(self, name: str) -> None:
        """Remove profile ``name``; the server's credentials go with its last profile."""
        profile = self.get(name)
        data = load_profiles(self.path)
        self._drop(data, profile)
        self._write(data)
        log.info("removed server profile %r", name)

    # -- internals ------------------------------------------------------------------------------

    def _entries(self, data: dict[str, dict[str, Any]]) -> Iterator[tuple[Profile, str]]:
        for key, table in data.items():
            listed = table.get("profiles")
            if not isinstance(listed, dict):
                continue
            for name, entry in listed.items():
                if not isinstance(entry, dict) or entry.get("kind") not in KIND_NAMES:
                    continue
                in_keyring = table.get("keyring") or []
                yield (
                    Profile(
                        name=name,
                        kind=entry["kind"],
                        url=str(entry.get("url") or ""),
                        s3=table.get("s3"),
                        email=table.get("email"),
                        has_token=bool(table.get("token")) or "token" in in_keyring,
                        has_password=bool(table.get("password")) or "password" in in_keyring,
                    ),
                    key,
                )

    def _drop(self, data: dict[str, dict[str, Any]], profile: Profile) -> None:
        key = profile.server_key
        table = data.get(key)
        if table is None:
            return
        listed = table.get("profiles") or {}
        listed.pop(profile.name, None)
        if listed:
            return
        # The server's last profile: its credentials go too (keyring entries included).
        for field in table.get("keyring") or []:
            if self.secrets is not None:
                self.secrets.delete(_secret_key(key, field))
        del data[key]

    def _read_secret(self, key: str, table: dict[str, Any], field: str) -> str | None:
        if field in (table.get("keyring") or []):
            if self.secrets is None:
                raise ConfigurationError(
                    f"The {field} of {key} is in the OS keyring, which cannot be used now",
                    hint="Install the keyring package with a backend, or enter it again",
                )
            return self.secrets.get(_secret_key(key, field))
        value = table.get(field)
        return str(value) if value else None

    def _write_secret(self, key: str, table: dict[str, Any], field: str, value: str) -> None:
        in_keyring = [f for f in table.get("keyring") or [] if f != field]
        table.pop(field, None)
        if self.secrets is not None:
            self.secrets.delete(_secret_key(key, field))
        if value and self.secrets is not None:
            try:
                self.secrets.set(_secret_key(key, field), value)
                in_keyring.append(field)
            except Exception as exc:  # a keyring that refuses: keep the secret in the 0600 file
                log.warning(
                    "%s refused the %s of %s (%s); it goes to the config file",
                    self.secrets.name,
                    field,
                    key,
                    type(exc).__name__,
                )
                table[field] = value
        elif value:
            table[field] = value
        if in_keyring:
            table["keyring"] = in_keyring
        else:
            table.pop("keyring", None)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically, readable by its owner only (it may hold secrets)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(prefix=".servers-", dir=self.path.parent)
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(dumps(data))
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        os.chmod(self.path, 0o600)


def _secret_key(server_key: str, field: str) -> str:
    return f"{server_key}/{field}"
