"""What S3 failures mean to a user, in a sentence instead of obstore's page of Rust debug output.

obstore reports every failure after its own retries as one long message (request, retries,
status, the XML body, a ``Debug source`` dump): over a thousand characters, and a Rust panic
("rust future panicked") for endpoints it cannot use. These functions keep what a person can act
on: which request, which status, whether it is the endpoint, the credentials or the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from napari_lablink.client.errors import (
    ConfigurationError,
    LablinkError,
    ServerFailedError,
    ServerUnavailableError,
    UploadError,
    cut,
)

__all__ = ["s3_failure", "write_failure"]

_ENDPOINT_HINT = (
    "Check the S3 endpoint (?s3=, LABLINK_S3_ENDPOINT or servers.toml) and that it is running"
)
_UNREACHABLE = ("connect", "timed out", "timeout", "error sending request", "dns error")


def _is_s3_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("obstore", "pyo3")) or type(exc).__name__ == "RustPanic"


def s3_failure(exc: BaseException, endpoint: str, obj: str) -> LablinkError | None:
    """The typed error for an S3 (obstore) failure, or None when ``exc`` is not one or is an
    authentication failure (the caller renews the grant for those)."""
    if not _is_s3_error(exc):
        return None
    text = str(exc)
    lowered = text.lower()
    if "panicked" in lowered or type(exc).__name__ == "RustPanic":
        return ConfigurationError(
            "The S3 client cannot use this endpoint", server=endpoint, obj=obj, hint=_ENDPOINT_HINT
        )
    status = re.search(r"status(?: code)?:? ?(\d{3})", text)
    request = re.search(r"performing (\w+) (\S+)", text)
    if request and request[1] in ("PUT", "POST", "DELETE"):
        return None  # a failed write: the upload words it, and says nothing was registered
    retries = re.search(r"after (\d+) retries", text)
    what = f"{request[1]} {cut(request[2], 120)}" if request else "the request"
    tail = f" after {retries[1]} retries" if retries else ""
    if status and status[1].startswith("5"):
        return ServerFailedError(
            f"S3 failed: {what} answered HTTP {status[1]}{tail}",
            server=endpoint,
            obj=obj,
            hint="The storage server had trouble; try again later",
        )
    if status is None and any(word in lowered for word in _UNREACHABLE):
        return ServerUnavailableError(
            f"The S3 endpoint could not be reached ({what}{tail})",
            server=endpoint,
            obj=obj,
            hint=_ENDPOINT_HINT,
        )
    return None


def write_failure(
    exc: Exception,
    fallback: Callable[[Exception], UploadError],
    endpoint: str,
    obj: str,
) -> LablinkError:
    """The error for a failed write: S3's (short), the data's (zarr refused it: no S3 failure
    at all), or ``fallback``'s."""
    if not _is_s3_error(exc) and _raised_in(exc, ("zarr", "numcodecs", "numpy")):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return UploadError(
            f"The data cannot be stored as zarr ({cut(first, 200)})",
            obj=obj,
            hint="Nothing was registered; convert the layer to a plain numeric type (for "
            "example uint16 or float32)",
        )
    translated = s3_failure(exc, endpoint, obj)
    if isinstance(translated, ConfigurationError):
        return translated
    return fallback(exc)  # obstore's own wording of a failed write, shortened


def _raised_in(exc: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``exc`` ran code of one of ``packages``."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".", 1)[0] in packages
