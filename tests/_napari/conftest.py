"""Fixtures the viewer tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from napari.utils.notifications import notification_manager


@pytest.fixture
def notifications() -> Iterator[list[str]]:
    """The messages of the notifications napari shows while the test runs, in order."""
    seen: list[str] = []

    def record(notification: object) -> None:
        seen.append(str(getattr(notification, "message", notification)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
