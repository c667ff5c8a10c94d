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
stay in the file, which is always written with permissions 0600 (both through
:mod:`napari_lablink.client.secrets`, which the reader's lookup uses too). A stored secret is
never read back into a :class:`Profile` (which only says whether there is one), a ``repr`` or a
log line. Connecting with a profile resolves its credentials once and hands them to
:func:`~napari_lablink.client.connection.connect`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from napari_lablink._toml_write import dumps
from napari_lablink.client.config import (
    Credentials,
    config_path,
    load_profiles,
    merge_credentials,
)
from napari_lablink.client.connection import Server, connect
from napari_lablink.client.errors import ConfigurationError, InvalidURIError
from napari_lablink.client.schemes import SCHEMES, Scheme, scheme_info
from napari_lablink.client.secrets import (
    SECRET_FIELDS,
    SecretStore,
    forget_secrets,
    keyring_secrets,
    read_secret,
    write_private,
    write_secret,
)
from napari_lablink.client.uri import RemoteURI, parse_server_uri

__all__ = [
    "KIND_NAMES",
    "Profile",
    "ProfileStore",
    "normalise_url",
    "server_uri",
]

log = logging.getLogger(__name__)

#: How the kinds are shown to users, in the registry's order.
KIND_NAMES: dict[str, str] = {scheme: info.display_name for scheme, info in SCHEMES.items()}


class Profile(BaseModel):
    """A named server: what the browser lists and connects to. Holds no secret, only whether
    one is stored."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Scheme
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


def normalise_url(kind: str, url: str) -> str:
    """``url`` without surrounding blanks, a trailing ``/`` or the kind's endpoint suffix:
    ``http://host:8080/mikro/graphql`` (what a mikro server's playground shows) is the server
    ``http://host:8080/mikro``."""
    text = url.strip().rstrip("/")
    info = scheme_info(kind)
    suffix = info.url_suffix if info else ""
    if suffix and text.lower().endswith(suffix):
        text = text[: -len(suffix)].rstrip("/")
    return text


def server_uri(kind: str, url: str) -> RemoteURI:
    """``mikro`` + ``http://host:8080/mikro`` -> ``mikro+http://host:8080/mikro``."""
    text = normalise_url(kind, url)
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
        """What connecting with profile ``name`` needs, secrets included.

        What the profile stores comes first; what it lacks is looked up as for any connection
        (the environment, napari's settings).
        """
        profile = self.get(name)
        key = profile.server_key
        table = load_profiles(self.path).get(key, {})
        stored = {f: read_secret(table, key, f, self.secrets) for f in SECRET_FIELDS}
        explicit = {"email": profile.email, "s3": profile.s3, **stored}
        return merge_credentials(key, table, explicit)

    def connect(self, name: str) -> Server:
        """A new connection with profile ``name``; the caller closes it."""
        return connect(self.get(name).uri, credentials=self.credentials(name))

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
                    secrets[field] = read_secret(old_table, old.server_key, field, self.secrets)
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
                write_secret(table, key, field, value, self.secrets)
        url = normalise_url(profile.kind, profile.url)
        table.setdefault("profiles", {})[name] = {"kind": profile.kind, "url": url}
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
        forget_secrets(table, key, self.secrets)
        del data[key]

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        write_private(self.path, dumps(data))
