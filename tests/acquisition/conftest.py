"""Fixtures for the acquisition tests: the Micro-Manager demo configuration."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def adapter_path() -> str:
    from mm_test_adapters import device_adapter_path

    return str(device_adapter_path())


@pytest.fixture(scope="session")
def demo_config(adapter_path: str) -> Path:
    return Path(adapter_path) / "MMConfig_demo.cfg"
