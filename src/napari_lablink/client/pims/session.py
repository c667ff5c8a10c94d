"""The HTTP side of PIMS: JSON routes of an image file, window requests, PIMS's own errors."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import httpx

from napari_lablink.client.config import Credentials
from napari_lablink.client.errors import LablinkError, NotFoundError, ServerError
from napari_lablink.client.transport import Transport
from napari_lablink.client.uri import RemoteURI

__all__ = ["MAX_CONNECTIONS", "PimsSession", "content_type"]

#: dask computes chunks on many threads; each needs its own connection to overlap requests.
MAX_CONNECTIONS = 32
_CLIENT_ERRORS = tuple(range(400, 500))


class PimsSession:
    """Calls to one PIMS server (standalone PIMS has no authentication).

    A session pickles (inside the lazy arrays sent to ``dask.distributed`` workers) as what
    opens the same session in another process; each process keeps one session per server, so
    its window reads share one connection pool.
    """

    def __init__(self, uri: RemoteURI, label: str, credentials: Credentials) -> None:
        self.uri = uri
        self.label = label
        self._credentials = credentials
        self.transport = Transport(
            uri.base_url,
            label=label,
            secrets=lambda: credentials.secrets,
            max_connections=MAX_CONNECTIONS,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_session_for, (self.uri, self.label, self._credentials))

    def close(self) -> None:
        self.transport.close()

    def info(self) -> None:
        """``GET /info`` of the server itself."""
        self.transport.request("GET", "info", obj="server info")

    def _route(self, path: str, route: str) -> str:
        return f"image/{quote(path, safe='/')}/{route}"

    def get_json(self, path: str, route: str) -> Any:
        """The JSON of ``GET image/{path}/{route}``."""
        response = self.transport.request(
            "GET", self._route(path, route), obj=path, expect=_CLIENT_ERRORS
        )
        if response.status_code >= 400:
            raise self._refusal(response, path, f"GET {route}")
        try:
            return response.json()
        except ValueError:
            raise self.transport.protocol_error(
                f"GET {route} answered {content_type(response) or 'no content type'}, not JSON",
                path,
            ) from None

    def window(
        self,
        path: str,
        tier: int,
        region: tuple[int, int, int, int],
        *,
        channel: int | None,
        z: int,
        t: int,
        bits: int,
    ) -> httpx.Response:
        """``POST .../window.png`` of raw data; ``region`` is (top, left, height, width) in the
        pixels of tier ``tier``. ``channel`` None asks for every sample (RGB images)."""
        top, left, height, width = region
        body: dict[str, Any] = {
            "region": {
                "top": top,
                "left": left,
                "width": width,
                "height": height,
                "reference_tier_index": tier,
                "tier_index_type": "LEVEL",
            },
            "level": tier,
            "z_slices": z,
            "timepoints": t,
            "colormaps": "NONE",
            "bits": bits,
        }
        if channel is not None:
            body["channels"] = channel
        response = self.transport.request(
            "POST",
            self._route(path, "window.png"),
            json=body,
            idempotent=True,
            obj=path,
            expect=_CLIENT_ERRORS,
        )
        if response.status_code >= 400:
            shown = f"level {tier}, top {top}, left {left}, {width} x {height} px"
            plane = f"channel {channel}, z {z}, t {t}" if channel is not None else f"z {z}, t {t}"
            raise self._refusal(response, path, f"the window ({shown}; {plane})")
        return response

    def _refusal(self, response: httpx.Response, path: str, what: str) -> LablinkError:
        """The error for a 4xx answer, in PIMS's own words (``{title, details}``)."""
        said = self.transport.scrub(_problem(response))
        status = response.status_code
        if status == 404:
            return NotFoundError(
                f"PIMS has no image file at this path (HTTP 404: {said})",
                server=self.label,
                obj=path,
                hint="Check the path: PIMS paths look like upload-<id>/<file name>",
            )
        return ServerError(
            f"PIMS refused {what} (HTTP {status}: {said})",
            server=self.label,
            obj=path,
            hint="The image may have changed on the server; reopen it",
        )


_sessions: dict[tuple[RemoteURI, str, Credentials], PimsSession] = {}
_sessions_lock = threading.Lock()


def _session_for(uri: RemoteURI, label: str, credentials: Credentials) -> PimsSession:
    """This process's session with the server, opened on first use (a worker's, usually)."""
    with _sessions_lock:
        session = _sessions.get((uri, label, credentials))
        if session is None or session.transport.closed:
            session = PimsSession(uri, label, credentials)
            _sessions[uri, label, credentials] = session
        return session


def content_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def _problem(response: httpx.Response) -> str:
    """PIMS's ``{title, details}``, FastAPI's ``{detail}``, or the answer's text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if "<html" not in text[:200].lower() else "no explanation"
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("title", "details", "detail") if body.get(key)]
        if parts:
            return ": ".join(parts)[:300]
    return str(body)[:300]
