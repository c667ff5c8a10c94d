"""How napari asks for an Arkitekt approval: open the browser, wait a few seconds, never minutes.

The reader, the writer and the upload widgets run on napari's thread or hold a worker while they
connect, so a login started there waits only :data:`NAPARI_APPROVAL_WAIT` seconds (enough for a
deployment that approves at once, or a headless token). If the user has not approved by then,
the open fails with a notification naming the code and the approval URL while the approval goes
on in the background: opening again once approved works. The browser widget's "Add Arkitekt
deployment" is the way to log in that shows the whole flow.
"""

from __future__ import annotations

from napari_lablink.client.arkitekt.deployments import (
    ApprovalPolicy,
    deployments,
    open_in_browser,
)
from napari_lablink.client.arkitekt.registration import ApprovalPrompt

__all__ = ["NAPARI_APPROVAL", "NAPARI_APPROVAL_WAIT", "use_napari_approval"]

NAPARI_APPROVAL_WAIT = 5.0


def _open_browser(prompt: ApprovalPrompt) -> None:
    open_in_browser(prompt.url)


NAPARI_APPROVAL = ApprovalPolicy(prompt=_open_browser, wait=NAPARI_APPROVAL_WAIT)


def use_napari_approval() -> None:
    """Make logins started by connections follow napari's policy (from here on, process-wide)."""
    deployments.policy = NAPARI_APPROVAL
