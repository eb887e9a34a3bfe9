"""The gateway's ASGI application: S3 requests in, the chain and the origin behind.

Path-style requests only (``/bucket/key``; a bucket name cannot start with ``-``, so
``/-/health`` is the gateway's own). Reads of object bytes (GetObject, HeadObject) go through the
chain (:mod:`tiercache.gateway.objects`), except keys ending in ``/`` (directory markers, which
the chain cannot name: :mod:`tiercache.gateway.markers`); listings, bucket calls and every write
pass through to the origin (:mod:`tiercache.gateway.upstream`), and a write invalidates what the
tiers hold for the key before its success is returned. Every answer carries an
``x-amz-request-id``, as S3's do. Every failure is an S3 XML error the client's own retry logic
understands. Blocking work runs on a bounded pool of worker threads.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from tiercache.gateway.auth import decode_body
from tiercache.gateway.calls import Call
from tiercache.gateway.markers import Markers
from tiercache.gateway.metrics import LIVE_GATEWAYS, GatewayCounters
from tiercache.gateway.objects import Answer, Objects
from tiercache.gateway.requests import Route, route
from tiercache.gateway.s3errors import S3Error, internal_error
from tiercache.gateway.sigv4_types import IncomingRequest
from tiercache.gateway.snapshots import Snapshots
from tiercache.gateway.writes import Writes

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_REQUESTS = itertools.count()
_PROCESS = os.urandom(4).hex().upper()


def new_request_id() -> str:
    """A request id (``x-amz-request-id``): this process's random prefix and a counter, 16
    hex digits; unique within a process, unlikely to repeat across processes."""
    return f"{_PROCESS}{next(_REQUESTS) & 0xFFFFFFFF:08X}"


#: Seconds ``GET /-/stats?settle`` waits for the fills in progress.
SETTLE_S = 10.0
#: The largest seed request body taken (``POST /-/seed``: about 200 bytes an object).
MAX_SEED_BYTES = 64 << 20

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Verifies a request's signature; returns what the body must match (see gateway.auth).
Authenticate = Callable[[IncomingRequest], Any]


class Request:
    """One HTTP request as the handlers see it: method, route, query, headers, and the body."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.method: str = scope["method"]
        self.raw_path: str = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        self.query: dict[str, str] = dict(parse_qsl(self.query_string, keep_blank_values=True))
        self.header_list: list[tuple[str, str]] = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        ]
        self.headers: dict[str, str] = {}
        for name, value in self.header_list:
            self.headers[name] = (
                value if name not in self.headers else f"{self.headers[name]},{value}"
            )
        self._receive = receive
        self.route: Route = route(self.method, unquote_path(self.raw_path), self.query)
        self.request_id = new_request_id()

    async def body(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (EntityTooLarge beyond)."""
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise S3Error("EntityTooLarge", 400, f"the body is over {limit} bytes")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", 400, "the client went away before the body ended")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise S3Error("EntityTooLarge", 400, f"the body is over {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def unquote_path(raw_path: str) -> str:
    """The decoded path; an encoded slash (``%2F``) in a key is refused (it would name another
    key once decoded)."""
    if "%2f" in raw_path.lower():
        raise S3Error("InvalidURI", 400, "an encoded slash (%2F) in the path is not supported")
    return unquote(raw_path)


class GatewayApp:
    """The ASGI application.

    Args:
        objects: Reads of object bytes through the chain.
        writes: Everything passed through to the origin.
        authenticate: Verifies a request's signature (None: any signature is accepted; the server
            then binds loopback only).
        workers: Worker threads for blocking work (chain reads, origin calls).
        max_body_bytes: The largest request body accepted (a PutObject, an UploadPart).
        snapshots: The snapshot views it answers for (``POST /-/snapshot``).
    """

    def __init__(
        self,
        objects: Objects,
        writes: Writes,
        *,
        authenticate: Authenticate | None = None,
        workers: int = 64,
        max_body_bytes: int = 256 << 20,
        snapshots: Snapshots | None = None,
    ) -> None:
        self.objects = objects
        self.snapshots = snapshots if snapshots is not None else Snapshots()
        self.writes = writes
        self.markers = Markers(writes.upstream)
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.counters = GatewayCounters()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tiercache-gateway")

    def stats(self, settle: bool = False) -> dict[str, Any]:
        """The chain's stats and the gateway's own counters (``GET /-/stats``).

        ``settle`` (``GET /-/stats?settle``): first let the fills of the slower tiers queued
        by the requests so far finish (at most :data:`SETTLE_S`), so that their bytes are
        counted.
        """
        if settle:
            self.objects.chain.fills.join(timeout_s=SETTLE_S)
        return {"chain": self.objects.chain.stats(), "gateway": self.counters.snapshot()}

    def close(self) -> None:
        """Stop the worker threads (after the requests in progress)."""
        LIVE_GATEWAYS.discard(self.counters)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        began = time.perf_counter()
        operation, status, sent = "Unknown", 500, 0
        request_id = new_request_id()
        try:
            request = Request(scope, receive)
            request_id = request.request_id
            operation = request.route.operation
            status, sent = await self._handle(request, send)
        except S3Error as exc:
            status, sent = await self._error(send, exc, request_id, scope["method"])
        except Exception:
            logger.exception("gateway: %s %s failed", scope["method"], scope.get("path"))
            status, sent = await self._error(send, internal_error(), request_id, scope["method"])
        finally:
            self.counters.observe(operation, status, sent, time.perf_counter() - began)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _handle(self, request: Request, send: Send) -> tuple[int, int]:
        route_ = request.route
        if route_.operation == "Health":
            return await _respond(send, 200, [("content-type", "text/plain")], b"ok\n")
        verified = None
        if self.authenticate is not None:
            incoming = IncomingRequest(
                request.method, request.raw_path, request.query_string, request.header_list
            )
            verified = self.authenticate(incoming)
        if route_.operation == "Stats":
            settle = "settle" in request.query
            document = await self._run(self.stats, settle)
            body = json.dumps(document, default=str).encode()
            return await _respond(send, 200, [("content-type", "application/json")], body)
        if route_.operation in ("GetObject", "HeadObject"):
            return await self._read(request, send)
        if route_.operation == "Snapshot":
            body = decode_body(request.headers, await request.body(MAX_SEED_BYTES), verified)
            body = json.dumps(await self._run(self.snapshots.add, body)).encode()
            return await _respond(send, 200, [("content-type", "application/json")], body)
        if route_.operation == "Seed":
            body = decode_body(request.headers, await request.body(MAX_SEED_BYTES), verified)
            body = json.dumps(await self._run(self.objects.seed, body)).encode()
            return await _respond(send, 200, [("content-type", "application/json")], body)
        body = b""
        if request.method in ("PUT", "POST"):
            body = await request.body(self.max_body_bytes)
        call = Call(route_, request.query, request.headers, body)
        answer = await self._run(self.writes.handle, call, verified)
        headers = [*answer.headers, ("x-amz-request-id", request.request_id)]
        return await _respond(send, answer.status, headers, answer.body)

    async def _read(self, request: Request, send: Send) -> tuple[int, int]:
        bucket, key = request.route.bucket, request.route.key
        key = self.snapshots.resolve(bucket, key) or key  # a snapshot view's file: the real one
        path = f"{bucket}/{key}"
        head = request.route.operation == "HeadObject"
        answer: Answer
        if key.endswith("/"):
            marker = self.markers.head if head else self.markers.get
            answer = await self._run(marker, bucket, key, request.headers)
        elif not head and request.headers.get("x-tiercache-purpose") == "prefetch":
            answer = await self._run(self.objects.prefetch, path, request.headers)
        else:
            ready = self.objects.resident(path, request.headers, request.method)
            if ready is not None:  # all in RAM: answered here, no trip to a worker thread
                answer = ready
            else:
                fn = self.objects.head if head else self.objects.get
                answer = await self._run(fn, path, request.headers)
        headers = [*answer.headers, ("x-amz-request-id", request.request_id)]
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": _raw(headers)}
        )
        if head or answer.status == 304:
            await send({"type": "http.response.body", "body": b""})
            return answer.status, 0
        if answer.parts:  # in RAM: sent buffer by buffer, nothing joined or copied
            last = len(answer.parts) - 1
            for i, part in enumerate(answer.parts):
                await send({"type": "http.response.body", "body": part, "more_body": i < last})
            return answer.status, sum(len(part) for part in answer.parts)
        sent = len(answer.first)
        if answer.remaining <= 0:  # the whole body in one piece: no second trip to a worker
            await send({"type": "http.response.body", "body": answer.first})
            return answer.status, sent
        await send({"type": "http.response.body", "body": answer.first, "more_body": True})
        rest: Iterator[bytes] = answer.rest
        while True:
            try:
                chunk = await self._run(next, rest, None)
            except Exception:
                # The headers are gone: the client sees a short body (its length was announced)
                # and its own retry repeats the request.
                logger.warning("gateway: %s broke off after %d bytes", path, sent, exc_info=True)
                raise _Aborted() from None
            if chunk is None:
                break
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return answer.status, sent

    async def _error(
        self, send: Send, exc: S3Error, request_id: str, method: str
    ) -> tuple[int, int]:
        if isinstance(exc, _Aborted):
            raise exc
        body = b"" if method == "HEAD" else exc.body(request_id)
        headers = [("content-type", "application/xml"), ("x-amz-request-id", request_id)]
        if exc.status == 503:
            headers.append(("retry-after", "1"))
        try:
            return await _respond(send, exc.status, headers, body)
        except RuntimeError:  # the response had started: nothing more can be said
            return exc.status, 0

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._run(lambda: None)  # let queued work see the pool once more
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Aborted(S3Error):
    """A response body broken off after its headers were sent."""

    def __init__(self) -> None:
        super().__init__("InternalError", 500, "the response was broken off")


async def _respond(
    send: Send, status: int, headers: Sequence[tuple[str, str]], body: bytes
) -> tuple[int, int]:
    headers = [*headers, ("content-length", str(len(body)))]
    await send({"type": "http.response.start", "status": status, "headers": _raw(headers)})
    await send({"type": "http.response.body", "body": body})
    return status, len(body)


def _raw(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
