"""The process's Arkitekt logins: which hosts are deployments, one session per deployment.

A mikro URI names only a host. When that host is an Arkitekt deployment (a login is stored for
it, or it answers ``/.well-known/fakts``), connections take the GraphQL and S3 endpoints and the
access tokens from the session kept here, so every image and upload of one deployment shares one
token provider. Hosts that answer but are no deployment are remembered as such; unreachable ones
are not (the connection then reports its own error, and a later attempt asks again).

How a login that needs the user's approval asks for it is the registry's :class:`ApprovalPolicy`:
scripts print the code and URL and wait (the default); inside napari, the glue sets a policy that
waits only briefly, the approval going on in the background, so the viewer never blocks for
minutes (see ``docs/arkitekt.md``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import httpx

from napari_lablink.client.arkitekt.discovery import FaktsEndpoint, discover
from napari_lablink.client.arkitekt.errors import (
    DeploymentUnreachableError,
    LoginRequiredError,
    NotFaktsError,
)
from napari_lablink.client.arkitekt.manifest import LABLINK_APP, AppManifest
from napari_lablink.client.arkitekt.registration import ApprovalPrompt
from napari_lablink.client.arkitekt.session import ArkitektSession, login
from napari_lablink.client.arkitekt.storage import GrantStore, default_grant_store

__all__ = [
    "NO_BROWSER_VARIABLE",
    "ApprovalPolicy",
    "Deployments",
    "can_open_browser",
    "console_prompt",
    "deployments",
    "open_in_browser",
]

log = logging.getLogger(__name__)

#: Set (to anything) to never open a web browser for an approval: tests, CI, remote shells.
NO_BROWSER_VARIABLE = "LABLINK_NO_BROWSER"


def can_open_browser(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a browser can be shown: not asked not to, not in CI, a display on Linux."""
    if environ.get(NO_BROWSER_VARIABLE) or environ.get("CI"):
        return False
    if sys.platform.startswith("linux"):
        return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    return True


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the user's browser where there is one; whether that was tried."""
    if not can_open_browser():
        return False
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


def console_prompt(prompt: ApprovalPrompt, *, browser: bool = True) -> None:
    """Ask in the terminal (stderr, so piped output stays clean) and open a browser if any."""
    print(
        f"napari-lablink needs your approval at {prompt.deployment}.\n"
        f"  Open {prompt.url}\n  and approve the code {prompt.code}.",
        file=sys.stderr,
        flush=True,
    )
    if browser:
        open_in_browser(prompt.url)


@dataclass(frozen=True)
class ApprovalPolicy:
    """How a login that needs the user's approval asks for it.

    ``prompt`` shows the code and URL (None: never ask; only stored logins and headless tokens
    work). ``wait`` is how long the caller blocks for the decision (None: until the code
    expires); the approval is still waited for in the background after that, so trying again
    once the user has approved succeeds.
    """

    prompt: Callable[[ApprovalPrompt], None] | None = console_prompt
    wait: float | None = None


def origin(address: str) -> str:
    """``scheme://host[:port]`` of an address that has a scheme."""
    url = httpx.URL(address)
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def _origins(target: str) -> list[str]:
    target = target.strip().rstrip("/")
    if "://" in target:
        return [origin(target)]
    return [f"https://{target}", f"http://{target}"]


def _endpoint_of(fakts: Mapping[str, object]) -> FaktsEndpoint | None:
    names = {f.name for f in fields(FaktsEndpoint)}
    try:
        return FaktsEndpoint(**{k: v for k, v in fakts.items() if k in names})  # type: ignore[arg-type]
    except TypeError:
        return None


class _Pending:
    """A login running in the background, joined by whoever needs that deployment."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.prompt: ApprovalPrompt | None = None
        self.session: ArkitektSession | None = None
        self.error: BaseException | None = None


class Deployments:
    """The logged-in deployments of this process, by origin (``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        store: Callable[[], GrantStore] = default_grant_store,
        app: AppManifest = LABLINK_APP,
    ) -> None:
        self._store = store
        self.app = app
        self._lock = threading.Lock()
        self._sessions: dict[str, ArkitektSession] = {}
        self._not_deployments: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        #: How logins started by connections ask for approval.
        self.policy = ApprovalPolicy()

    # -- used by connections --------------------------------------------------------------------

    def session_for(
        self, address: str, policy: ApprovalPolicy | None = None
    ) -> ArkitektSession | None:
        """The session of the deployment at ``address`` (logging in if needed), or None when
        nothing there is an Arkitekt deployment."""
        home = origin(address)
        with self._lock:
            session = self._sessions.get(home)
            if session is not None or home in self._not_deployments:
                return session
        endpoint = self._find(home)
        if endpoint is None:
            return None
        return self._join(home, endpoint, policy or self.policy)

    def _find(self, home: str) -> FaktsEndpoint | None:
        store = self._store()
        for base in (f"{home}/lok/f/", f"{home}/f/"):
            grant = store.load(base, self.app.identifier)
            endpoint = _endpoint_of(grant.fakts) if grant is not None else None
            if endpoint is not None:
                return endpoint
        try:
            return discover(home)
        except NotFaktsError:
            with self._lock:
                self._not_deployments.add(home)
            return None
        except DeploymentUnreachableError:
            return None

    def _join(self, home: str, endpoint: FaktsEndpoint, policy: ApprovalPolicy) -> ArkitektSession:
        with self._lock:
            pending = self._pending.get(home)
            if pending is None:
                pending = self._pending[home] = _Pending()
                threading.Thread(
                    target=self._run,
                    args=(home, endpoint, policy, pending),
                    name=f"lablink-login {home}",
                    daemon=True,
                ).start()
        if not pending.done.wait(policy.wait):
            prompt = pending.prompt
            where = f"Open {prompt.url} and approve the code {prompt.code}" if prompt else ""
            raise LoginRequiredError(
                "napari-lablink is waiting for approval by the Arkitekt deployment"
                + (f". {where}" if where else ""),
                server=endpoint.label,
                hint="Then open it again; or log in first (Plugins > Lablink browser > Add "
                "Arkitekt deployment, or napari-lablink login HOST)",
            )
        if pending.error is not None:
            raise pending.error
        assert pending.session is not None
        return pending.session

    def _run(
        self, home: str, endpoint: FaktsEndpoint, policy: ApprovalPolicy, pending: _Pending
    ) -> None:
        def prompted(prompt: ApprovalPrompt) -> None:
            pending.prompt = prompt
            if policy.prompt is not None:
                policy.prompt(prompt)

        try:
            session = login(
                endpoint,
                app=self.app,
                store=self._store(),
                prompt=prompted if policy.prompt is not None else None,
            )
            self._keep(session, home)
            pending.session = session
        except BaseException as error:  # handed to every caller waiting for it
            pending.error = error
        finally:
            with self._lock:
                self._pending.pop(home, None)
            pending.done.set()

    def _keep(self, session: ArkitektSession, *homes: str) -> None:
        with self._lock:
            # A replaced session is not closed: layers opened through it keep reading.
            for home in {*homes, session.endpoint.label}:
                self._sessions[home] = session
                self._not_deployments.discard(home)

    # -- used by people (the command line, the browser widget) ----------------------------------

    def login(
        self,
        target: str,
        *,
        prompt: Callable[[ApprovalPrompt], None] | None = console_prompt,
        cancel: threading.Event | None = None,
        redeem_token: str | None = None,
        endpoint: FaktsEndpoint | None = None,
    ) -> ArkitektSession:
        """Log in to ``target`` now (a stored login is reused) and keep the session."""
        endpoint = endpoint or discover(target)
        session = login(
            endpoint,
            app=self.app,
            store=self._store(),
            prompt=prompt,
            cancel=cancel,
            redeem_token=redeem_token,
        )
        self._keep(session, *(_origins(target) if "://" in target else ()))
        return session

    def logout(self, target: str) -> bool:
        """Forget the login of ``target`` (stored and in memory); whether there was one."""
        store = self._store()
        homes = _origins(target)
        bases = [base for home in homes for base in (f"{home}/lok/f/", f"{home}/f/")]
        with self._lock:
            sessions = {s for h, s in self._sessions.items() if h in homes}
            for session in sessions:
                bases.append(session.endpoint.base_url)
            for home in [h for h, s in self._sessions.items() if s in sessions]:
                del self._sessions[home]
        for session in sessions:
            session.close()
        found = any([store.delete(base, self.app.identifier) for base in dict.fromkeys(bases)])
        if not found and not sessions:
            try:
                endpoint = discover(target)
            except (NotFaktsError, DeploymentUnreachableError):
                return False
            found = store.delete(endpoint.base_url, self.app.identifier)
        return found or bool(sessions)

    def reset(self) -> None:
        """Close every session and forget what was learnt (tests, a changed configuration)."""
        with self._lock:
            sessions = set(self._sessions.values())
            self._sessions.clear()
            self._not_deployments.clear()
        for session in sessions:
            session.close()


#: The process's logins, shared by every connection.
deployments = Deployments()
