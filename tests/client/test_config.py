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
