"""S3 calls the gateway passes through to the origin: listings, bucket calls, every write.

They go to the origin with the gateway's own credentials (the target filesystem's client, never
the client's), as one ``botocore`` call each on the client s3fs keeps, so the origin's answer
comes back whole: an S3 error keeps its code and status and becomes the same S3 error for the
gateway's client, whose own retry logic then applies. Calls run on a worker thread and wait on
s3fs's event loop, at most the origin deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from tiercache.gateway.s3errors import S3Error


class OriginCalls(Protocol):
    """What the pass-through handlers call the origin with: one botocore S3 operation at a time,
    answered in botocore's shape (:class:`Upstream` on s3fs; on any other fsspec filesystem,
    :class:`tiercache.gateway.upstream_fsspec.FsspecUpstream`, which emulates them)."""

    def call(self, method: str, **params: Any) -> Mapping[str, Any]:
        """Call ``method`` with ``params``; blocking.

        Raises:
            S3Error: The origin's failure, as the S3 error the gateway's client gets.
        """
        ...


def is_s3fs(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` is an s3fs filesystem (:class:`Upstream` can pass calls to its client)."""
    return all(hasattr(fs, n) for n in ("set_session", "get_s3", "_get_s3_method_kwargs", "loop"))


class Upstream:
    """The origin's S3 client, for the calls that are not reads of object bytes.

    Args:
        fs: The target filesystem (s3fs).
        timeout_s: Deadline of one call (``TIERCACHE_ORIGIN_TIMEOUT``).
    """

    def __init__(self, fs: AbstractFileSystem, timeout_s: float) -> None:
        if not is_s3fs(fs):
            raise TypeError(f"Upstream needs an s3fs target, got {type(fs).__name__}")
        self.fs = fs
        self.timeout_s = timeout_s

    def call(self, method: str, **params: Any) -> Mapping[str, Any]:
        """Call ``method`` (a botocore S3 operation) with ``params``; blocking. A streaming
        ``Body`` in the answer comes back read, as bytes.

        Raises:
            S3Error: The origin answered with an error (its code and status), or did not answer
                in time (503 SlowDown), or could not be reached (503 ServiceUnavailable).
        """
        try:
            result: Mapping[str, Any] = sync(
                self.fs.loop, self._call, method, params, timeout=self.timeout_s
            )
        except S3Error:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        return result

    async def _call(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        fs: Any = self.fs
        await fs.set_session()
        client = await fs.get_s3(params.get("Bucket"))
        operation = getattr(client, method)
        response: Mapping[str, Any] = await operation(
            **fs._get_s3_method_kwargs(operation, **params)
        )
        body = response.get("Body")
        if body is not None and hasattr(body, "read"):
            # A streaming body (GetObject) is read here, on s3fs's loop that owns the connection.
            async with body:
                response = {**response, "Body": await body.read()}
        return response


def translate(exc: BaseException) -> S3Error:
    """The S3 error a client of the gateway gets for an origin failure."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
        error = response["Error"]
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        code = str(error.get("Code") or "InternalError")
        if code.isdigit():  # a HEAD answered without a body: only the status is known
            code = _CODES.get(status, "InternalError")
        return S3Error(code, status, str(error.get("Message") or code))
    if isinstance(exc, TimeoutError):
        return S3Error("SlowDown", 503, "the origin did not answer in time; retry")
    if isinstance(exc, FileNotFoundError):
        return S3Error("NoSuchKey", 404, str(exc) or "no such key")
    if isinstance(exc, PermissionError):
        return S3Error("AccessDenied", 403, str(exc) or "access denied")
    return S3Error("ServiceUnavailable", 503, f"the origin failed: {type(exc).__name__}: {exc}")


_CODES = {
    304: "NotModified",
    400: "BadRequest",
    403: "AccessDenied",
    404: "NotFound",
    412: "PreconditionFailed",
}
