"""Inside napari, the plugin settings can point at the servers.toml and give a default S3."""

from __future__ import annotations

import pytest
from npe2 import PluginManifest

from napari_lablink.client.config import config_path, resolve_credentials


@pytest.fixture
def lablink_settings(plugin_settings, npe2pm, monkeypatch):
    if "napari-lablink" not in npe2pm:
        npe2pm.register(PluginManifest.from_distribution("napari-lablink"))
    monkeypatch.delenv("LABLINK_CONFIG", raising=False)
    from napari.settings import get_plugin_settings

    return get_plugin_settings("napari-lablink").servers


def test_plugin_settings_name_the_config_file_and_a_default_s3(lablink_settings, tmp_path):
    profiles = tmp_path / "lab.toml"
    profiles.write_text('["mikro.lab.org:443"]\ntoken = "tok-from-file"\n')
    lablink_settings.config_file = str(profiles)
    lablink_settings.s3_endpoint = "https://s3.lab.org"
    assert config_path() == profiles
    credentials = resolve_credentials("mikro.lab.org:443")
    assert credentials.token == "tok-from-file"
    assert credentials.s3 == "https://s3.lab.org"
    # The file and the environment still win over the plugin setting.
    profiles.write_text('["mikro.lab.org:443"]\ns3 = "https://s3.file.org"\n')
    assert resolve_credentials("mikro.lab.org:443").s3 == "https://s3.file.org"


def test_environment_wins_over_plugin_settings(lablink_settings, tmp_path, monkeypatch):
    lablink_settings.config_file = str(tmp_path / "ignored.toml")
    monkeypatch.setenv("LABLINK_CONFIG", str(tmp_path / "env.toml"))
    assert config_path() == tmp_path / "env.toml"
