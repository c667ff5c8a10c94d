"""With an OS keyring, a stored login keeps its client token there and nothing secret on disk;
the configuration is claimed again at the next start."""

from __future__ import annotations

import json
from pathlib import Path

from napari_lablink.client.arkitekt import LABLINK_APP, FileGrantStore, login
from napari_lablink.testing.arkitekt import ArkitektStandIn

from .conftest import approver


class MemoryKeyring:
    """A keyring backend held in memory (this machine has none), as client/secrets.py uses one."""

    name = "a test keyring"

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def set(self, key: str, value: str) -> None:
        self.entries[key] = value

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)


def test_the_client_token_goes_to_the_keyring(deployment: ArkitektStandIn, tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    store = FileGrantStore(tmp_path, keyring)
    prompt, seen = approver(deployment)
    with login(deployment.url, prompt=prompt, store=store, environ={}, poll_interval=0.02) as s:
        first = s.configuration
    (client,) = deployment.clients()
    assert list(keyring.entries.values()) == [client.client_token]
    (path,) = tmp_path.iterdir()
    on_disk = path.read_text()
    assert client.client_token not in on_disk and client.client_secret not in on_disk
    assert json.loads(on_disk)["fakts"]["base_url"] == deployment.base_url
    deployment.reset_requests()
    with login(deployment.url, store=store, environ={}) as again:  # no prompt: stored login
        assert again.configuration == first
    assert any(r.path.endswith("/claim/") for r in deployment.requests)
    assert len(seen) == 1
    assert store.delete(deployment.base_url, LABLINK_APP.identifier)
    assert keyring.entries == {} and list(tmp_path.iterdir()) == []
