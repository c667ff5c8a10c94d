from __future__ import annotations

import pytest

from napari_lablink.client.config import (
    Credentials,
    config_path,
    load_profiles,
    resolve_credentials,
)
from napari_lablink.client.errors import ConfigurationError


def test_argument_beats_environment_beats_config(_isolated_config, monkeypatch) -> None:
    _isolated_config.write_text('["h:443"]\ntoken = "from-file"\ns3 = "http://file-s3"\n')
    assert resolve_credentials("h:443").token == "from-file"
    monkeypatch.setenv("LABLINK_TOKEN", "from-env")
    monkeypatch.setenv("LABLINK_SERVER", "h:443")
    assert resolve_credentials("h:443").token == "from-env"
    assert resolve_credentials("h:443", token="from-arg").token == "from-arg"
    assert resolve_credentials("h:443").s3 == "http://file-s3"


def test_config_tables_are_per_server(_isolated_config) -> None:
    _isolated_config.write_text('["a:443"]\ntoken = "a-token"\n')
    assert resolve_credentials("a:443").token == "a-token"
    assert resolve_credentials("b:443").token is None


def test_config_path_follows_environment(_isolated_config) -> None:
    assert config_path() == _isolated_config
    assert load_profiles() == {}


def test_broken_config_file_says_how_to_fix_it(_isolated_config) -> None:
    _isolated_config.write_text("[unclosed\n")
    with pytest.raises(ConfigurationError) as info:
        resolve_credentials("h:443")
    assert str(_isolated_config) in str(info.value)
    assert '["host:port"]' in str(info.value)


def test_repr_hides_secrets() -> None:
    text = repr(Credentials(token="tok-123456", password="pw-123456", email="me@x.org"))
    assert "tok-123456" not in text and "pw-123456" not in text and "me@x.org" in text


def test_environment_credentials_go_only_to_their_servers(monkeypatch) -> None:
    """A dropped mikro://evil/... URI must not receive the token meant for the lab's server."""
    monkeypatch.setenv("LABLINK_TOKEN", "lab-token")
    monkeypatch.setenv("LABLINK_MIBI_PASSWORD", "lab-password")
    monkeypatch.setenv("LABLINK_S3_ENDPOINT", "https://s3.lab.org")
    # Unbound: only servers on this machine get them.
    assert resolve_credentials("127.0.0.1:8080").token == "lab-token"
    evil = resolve_credentials("evil.example:443")
    assert (evil.token, evil.password) == (None, None)
    assert evil.s3 == "https://s3.lab.org"  # an endpoint is no secret
    monkeypatch.setenv("LABLINK_SERVER", "mikro.lab.org:443, https://tracker.lab.org")
    assert resolve_credentials("mikro.lab.org:443").token == "lab-token"
    assert resolve_credentials("tracker.lab.org:8000").password == "lab-password"
    assert resolve_credentials("mikro.lab.org:8443").token is None
    assert resolve_credentials("evil.example:443").token is None
    assert resolve_credentials("127.0.0.1:8080").token is None  # bound elsewhere now
