"""Server profiles in servers.toml: secrets in the keyring or a 0600 file, never shown back."""

from __future__ import annotations

import logging
import stat
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

import napari_lablink
from napari_lablink import AuthenticationError, ConfigurationError
from napari_lablink._toml_write import dumps
from napari_lablink.client.config import resolve_credentials
from napari_lablink.client.secrets import keyring_secrets
from napari_lablink.profiles import Profile, ProfileStore, server_uri
from napari_lablink.testing import MikroStandIn, TrackerStandIn

TOKEN = "tok-SECRET-1234567890"
PASSWORD = "pw-SECRET-0987654321"


class MemorySecrets:
    """An in-memory stand-in for the OS keyring: CI machines have no keyring backend, and the
    point here is what ProfileStore puts where, not the keyring package itself."""

    name = "the test keyring"

    def __init__(self, refuse: bool = False) -> None:
        self.values: dict[str, str] = {}
        self.refuse = refuse

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        if self.refuse:
            raise RuntimeError("locked")
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def mikro_profile(name: str = "lab", url: str = "http://127.0.0.1:8080/mikro") -> Profile:
    return Profile(name=name, kind="mikro", url=url, s3="http://127.0.0.1:9000")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_keyring_secrets_go_to_a_0600_file_the_reader_uses(_isolated_config) -> None:
    store = ProfileStore(secrets=None)
    saved = store.save(mikro_profile(), token=TOKEN)
    assert saved.has_token and not saved.has_password
    assert saved.uri == "mikro+http://127.0.0.1:8080/mikro"
    assert mode(_isolated_config) == 0o600
    data = tomllib.loads(_isolated_config.read_text())
    assert data["127.0.0.1:8080"]["token"] == TOKEN
    assert data["127.0.0.1:8080"]["profiles"]["lab"] == {
        "kind": "mikro",
        "url": "http://127.0.0.1:8080/mikro",
    }
    # Where config.py (and so napari's reader) looks for credentials.
    found = resolve_credentials("127.0.0.1:8080")
    assert (found.token, found.s3) == (TOKEN, "http://127.0.0.1:9000")
    assert store.credentials("lab").token == TOKEN


def test_a_loose_file_is_tightened_on_write(_isolated_config) -> None:
    _isolated_config.write_text('["other:443"]\ntoken = "hand-written"\n')
    _isolated_config.chmod(0o644)
    ProfileStore(secrets=None).save(mikro_profile())
    assert mode(_isolated_config) == 0o600
    # Tables written by hand survive.
    assert resolve_credentials("other:443").token == "hand-written"


def test_no_keyring_package_means_the_file(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # what an absent package looks like
    assert keyring_secrets() is None
    assert ProfileStore().secrets is None


def fake_keyring_package(priority: float) -> types.ModuleType:
    """A module with the ``keyring`` package's API over a dict: CI machines have neither the
    package nor an OS keyring, and this checks the adapter's calls against that API."""
    module = types.ModuleType("keyring")
    errors = types.ModuleType("keyring.errors")

    class PasswordDeleteError(Exception):
        pass

    errors.PasswordDeleteError = PasswordDeleteError
    module.errors = errors
    vault: dict[tuple[str, str], str] = {}
    module.vault = vault

    class Backend:
        @property
        def priority(self) -> float:
            if priority < 0:
                raise RuntimeError("no D-Bus session")
            return priority

    def delete_password(service: str, user: str) -> None:
        if (service, user) not in vault:
            raise PasswordDeleteError(user)
        del vault[service, user]

    module.get_keyring = Backend
    module.get_password = lambda service, user: vault.get((service, user))
    module.set_password = lambda service, user, value: vault.__setitem__((service, user), value)
    module.delete_password = delete_password
    return module


@pytest.mark.parametrize("priority", [0, -1])
def test_a_keyring_without_a_usable_backend_means_the_file(monkeypatch, priority) -> None:
    fake = fake_keyring_package(priority)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setitem(sys.modules, "keyring.errors", fake.errors)
    assert keyring_secrets() is None


def test_the_os_keyring_through_the_keyring_package(_isolated_config, monkeypatch) -> None:
    fake = fake_keyring_package(5)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setitem(sys.modules, "keyring.errors", fake.errors)
    store = ProfileStore()
    assert store.secrets is not None and store.secrets.name == "the OS keyring"
    store.save(mikro_profile(), token=TOKEN)
    assert fake.vault == {("napari-lablink", "127.0.0.1:8080/token"): TOKEN}
    assert TOKEN not in _isolated_config.read_text()
    # The reader's lookup (config.py) finds it there, through the same secrets module.
    found = resolve_credentials("127.0.0.1:8080")
    assert (found.token, found.password) == (TOKEN, None)
    store.save(mikro_profile(), token="", replaces="lab")
    assert fake.vault == {} and resolve_credentials("127.0.0.1:8080").token is None
    store.remove("lab")  # nothing left to delete: no error


def test_with_a_keyring_no_secret_is_in_the_file(_isolated_config) -> None:
    keyring = MemorySecrets()
    store = ProfileStore(secrets=keyring)
    store.save(
        Profile(name="tracker", kind="mibi", url="http://127.0.0.1:8000", email="me@lab.org"),
        password=PASSWORD,
        token=TOKEN,
    )
    text = _isolated_config.read_text()
    assert PASSWORD not in text and TOKEN not in text
    assert tomllib.loads(text)["127.0.0.1:8000"]["keyring"] == ["token", "password"]
    assert keyring.values == {"127.0.0.1:8000/password": PASSWORD, "127.0.0.1:8000/token": TOKEN}
    profile = store.get("tracker")
    assert profile.has_password and profile.has_token and profile.email == "me@lab.org"
    credentials = store.credentials("tracker")
    assert (credentials.password, credentials.token) == (PASSWORD, TOKEN)
    # The keyring's secret without the keyring: a clear message, not a silent None.
    with pytest.raises(ConfigurationError, match="keyring"):
        ProfileStore(secrets=None).credentials("tracker")
    store.remove("tracker")
    assert keyring.values == {} and store.profiles() == []


def test_a_refusing_keyring_falls_back_to_the_file(_isolated_config, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ProfileStore(secrets=MemorySecrets(refuse=True)).save(mikro_profile(), token=TOKEN)
    assert tomllib.loads(_isolated_config.read_text())["127.0.0.1:8080"]["token"] == TOKEN
    assert mode(_isolated_config) == 0o600
    assert "refused the token" in caplog.text and TOKEN not in caplog.text


def test_secrets_are_never_shown_back(_isolated_config, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    store = ProfileStore(secrets=None)
    profile = store.save(mikro_profile(), token=TOKEN, password=PASSWORD)
    shown = [repr(profile), str(profile), str(profile.model_dump()), repr(store)]
    shown += [repr(store.credentials("lab")), caplog.text]
    for text in shown:
        assert TOKEN not in text and PASSWORD not in text
    assert "saved server profile 'lab'" in caplog.text


def test_edit_keeps_unchanged_secrets_clears_empty_ones_and_renames(_isolated_config) -> None:
    keyring = MemorySecrets()
    store = ProfileStore(secrets=keyring)
    store.save(mikro_profile(), token=TOKEN)
    edited = store.save(
        mikro_profile("renamed", "http://127.0.0.1:8080/other"), token=None, replaces="lab"
    )
    assert [p.name for p in store.profiles()] == ["renamed"]
    assert edited.url == "http://127.0.0.1:8080/other" and edited.has_token
    assert store.credentials("renamed").token == TOKEN
    # Moved to another server: the secret moves with it.
    moved = store.save(mikro_profile("renamed", "http://10.0.0.2:8080"), replaces="renamed")
    assert moved.server_key == "10.0.0.2:8080" and store.credentials("renamed").token == TOKEN
    assert list(keyring.values) == ["10.0.0.2:8080/token"]
    assert "127.0.0.1:8080" not in tomllib.loads(_isolated_config.read_text())
    cleared = store.save(
        mikro_profile("renamed", "http://10.0.0.2:8080"), token="", replaces="renamed"
    )
    assert not cleared.has_token and keyring.values == {}


def test_profiles_of_one_server_share_its_credentials(_isolated_config) -> None:
    store = ProfileStore(secrets=None)
    store.save(mikro_profile("gen1", "http://127.0.0.1:8080"), token=TOKEN)
    store.save(mikro_profile("gen2", "http://127.0.0.1:8080/mikro"))
    assert [(p.name, p.has_token) for p in store.profiles()] == [("gen1", True), ("gen2", True)]
    store.remove("gen1")
    assert store.credentials("gen2").token == TOKEN  # still needed by gen2
    store.remove("gen2")
    assert tomllib.loads(_isolated_config.read_text()) == {}


def test_a_new_profile_keeps_what_its_server_has(_isolated_config) -> None:
    _isolated_config.write_text('["127.0.0.1:8080"]\ns3 = "http://s3:9000"\ntoken = "hand"\n')
    store = ProfileStore(secrets=None)
    added = store.save(Profile(name="gen1", kind="mikro", url="http://127.0.0.1:8080"))
    assert added.s3 == "http://s3:9000" and added.has_token
    assert resolve_credentials("127.0.0.1:8080").token == "hand"
    # Editing with the field emptied clears it.
    edited = store.save(
        Profile(name="gen1", kind="mikro", url="http://127.0.0.1:8080"), replaces="gen1"
    )
    assert edited.s3 is None and edited.has_token


def test_bad_profiles_are_refused_with_a_reason(_isolated_config) -> None:
    store = ProfileStore(secrets=None)
    store.save(mikro_profile())
    with pytest.raises(ConfigurationError, match="exists already"):
        store.save(mikro_profile())
    with pytest.raises(ConfigurationError, match="needs a name"):
        store.save(mikro_profile(" "))
    with pytest.raises(ConfigurationError, match="kind is mikro"):
        store.save(mikro_profile("x", "mibi+http://127.0.0.1:8000"))
    with pytest.raises(ConfigurationError, match="neither http"):
        store.save(mikro_profile("x", "ftp://127.0.0.1"))
    with pytest.raises(ConfigurationError, match="No server profile is named 'nope'"):
        store.remove("nope")


def test_server_uri_accepts_the_usual_spellings() -> None:
    assert server_uri("mikro", "mikro.lab.org").server == "mikro://mikro.lab.org"
    assert server_uri("pims", "http://h:5000/").server == "pims+http://h:5000"
    assert server_uri("mibi", "mibi+http://h:8000").server == "mibi+http://h:8000"
    assert server_uri("mikro", "https://h/mikro").server_key == "h:443"


def test_toml_writer_round_trips_awkward_strings() -> None:
    data = {"a:1": {"token": 'q"u\\o\nte ü', "n": 3, "on": True, "keyring": ["token"]}}
    data["a:1"]["profiles"] = {'my "lab"': {"kind": "mikro", "url": "http://a:1"}}
    assert tomllib.loads(dumps(data)) == data


def test_connect_with_a_profile(_isolated_config) -> None:
    store = ProfileStore(secrets=MemorySecrets())
    with MikroStandIn() as mikro, TrackerStandIn() as tracker:
        url = f"http://{mikro.uri_authority}/mikro"
        store.save(
            Profile(name="m", kind="mikro", url=url, s3=mikro.s3_endpoint), token=mikro.token
        )
        mikro.add_image(np.zeros((1, 1, 1, 4, 4), "uint8"), "tiny")
        with store.connect("m") as server:
            assert [e.name for e in server.browse()] == ["tiny"]
        tracker_url = f"http://127.0.0.1:{tracker.port}"
        profile = Profile(name="t", kind="mibi", url=tracker_url, email=tracker.email)
        store.save(profile, password="wrong-password")
        with pytest.raises(AuthenticationError) as caught:
            store.connect("t")
        assert "Unable to log in" in str(caught.value) and "wrong-password" not in str(caught.value)
        store.save(profile, password=tracker.password, replaces="t")
        with store.connect("t") as server:
            assert server.browse() == []


def test_a_profile_s_own_secrets_come_before_the_environment(_isolated_config, monkeypatch) -> None:
    monkeypatch.setenv("LABLINK_TOKEN", "tok-from-the-environment")
    monkeypatch.setenv("LABLINK_MIBI_EMAIL", "env@lab.org")
    store = ProfileStore(secrets=MemorySecrets())
    store.save(mikro_profile(), token=TOKEN)
    credentials = store.credentials("lab")
    # Stored: the profile's; not stored: looked up as for any connection.
    assert (credentials.token, credentials.email) == (TOKEN, "env@lab.org")
    with pytest.raises(TypeError, match="either credentials"):
        napari_lablink.connect("mikro+http://127.0.0.1:1", token="x", credentials=credentials)


def test_a_graphql_endpoint_names_its_server(_isolated_config) -> None:
    assert server_uri("mikro", "http://h:8080/mikro/graphql").prefix == "/mikro"
    assert server_uri("mikro", "https://h/graphql/").server == "mikro://h"
    saved = ProfileStore(secrets=None).save(mikro_profile(url="http://127.0.0.1:8080/graphql"))
    assert saved.url == "http://127.0.0.1:8080" and saved.uri == "mikro+http://127.0.0.1:8080"
