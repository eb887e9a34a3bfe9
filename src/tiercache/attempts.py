"""What the S3 client sent inside tiercache's own origin attempts.

botocore retries inside one call (legacy mode: up to 5 requests on a 5xx, with backoff), so one
of tiercache's attempts can be several HTTP requests, invisible from outside: a storm of 503s
then surfaced as an empty timeout with ``retries: 0``. An observer on the client's
``response-received`` event (:func:`watch`) records each request's answer into the
:class:`Attempts` of the origin call running in the current context (:func:`recording`), so the
origin counts the requests and retries that really happened, and its final error names the last
answer. Requests made outside a recording (the application's own use of the client) are not
looked at. Nothing here changes what the client does; it only watches.

The recording travels in a :class:`contextvars.ContextVar`: fsspec's ``sync`` submits the
coroutine from the calling thread, so the task on the event loop runs in a copy of the caller's
context, where the observer reads it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

_EVENT = "response-received.s3"
_UNIQUE_ID = "tiercache-attempts"


#: Answers about the object, not failures: not found, changed (If-Match), range past the end.
_ANSWERS_NOT_FAILURES = frozenset({404, 412, 416})


@dataclass(frozen=True, slots=True)
class Answer:
    """One request the client sent, and what came back.

    ``status`` is None when no HTTP answer came (a connection error); ``label`` reads like
    ``503 SlowDown``, ``206 Partial Content`` or ``ServerDisconnectedError``. ``operation`` is
    the client's operation (``GetObject``, ``HeadObject``); ``client_attempt`` is botocore's
    attempt number within one call (2 and up: botocore retried).
    """

    status: int | None
    label: str
    failed: bool
    operation: str = ""
    client_attempt: int = 1


@dataclass
class Attempts:
    """The requests the client sent during one origin call, in order (appended from any thread)."""

    answers: list[Answer] = field(default_factory=list)
    #: Hedge requests sent (:mod:`tiercache.hedging`), and those that answered first.
    hedges: int = 0
    hedges_won: int = 0
    #: Requests cancelled before an answer was recorded (a hedged read's loser).
    unanswered: int = 0

    def last_failure(self) -> str | None:
        """Return the label of the last failed request, if any."""
        for answer in reversed(self.answers):
            if answer.failed:
                return answer.label
        return None


def retries_among(answers: Sequence[Answer]) -> int:
    """Count the answers that repeat an earlier request (rather than make a new one).

    botocore numbers its retries; s3fs's own loop repeats a failed call. A different call (s3fs
    lists a prefix after a HEAD answered 404) is a new request, not a retry.
    """
    retries = 0
    for previous, answer in zip([None, *answers], answers, strict=False):
        if answer.client_attempt > 1 or (
            previous is not None and previous.failed and previous.operation == answer.operation
        ):
            retries += 1
    return retries


_current: contextvars.ContextVar[Attempts | None] = contextvars.ContextVar(
    "tiercache_attempts", default=None
)


@contextlib.contextmanager
def recording(attempts: Attempts) -> Iterator[None]:
    """Record into ``attempts`` every request the watched clients send in this context."""
    token = _current.set(attempts)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Attempts | None:
    """Return the recording of the origin call running in this context, if any."""
    return _current.get()


_watched: weakref.WeakSet[Any] = weakref.WeakSet()
_watched_lock = threading.Lock()


def watch(client: Any) -> None:
    """Observe the answers of an aiobotocore/botocore S3 client (idempotent, cheap when done).

    A client without an event system is left alone.
    """
    try:
        if client in _watched:
            return
    except TypeError:  # not weak-referenceable: register every time (botocore dedups by id)
        pass
    events = getattr(getattr(client, "meta", None), "events", None)
    register = getattr(events, "register", None)
    if register is None:
        return
    with _watched_lock:
        register(_EVENT, _on_response, unique_id=_UNIQUE_ID)
        with contextlib.suppress(TypeError):
            _watched.add(client)


def _on_response(
    parsed_response: Mapping[str, Any] | None = None,
    exception: BaseException | None = None,
    context: Mapping[str, Any] | None = None,
    event_name: str = "",
    **_: Any,
) -> None:
    attempts = _current.get()
    if attempts is None:
        return
    operation = event_name.rsplit(".", 1)[-1]
    retries = (context or {}).get("retries")
    client_attempt = retries.get("attempt", 1) if isinstance(retries, Mapping) else 1
    if exception is not None or parsed_response is None:
        name = type(exception).__name__ if exception is not None else "no response"
        attempts.answers.append(Answer(None, name, True, operation, client_attempt))
        return
    answer = answer_of_response(parsed_response)
    attempts.answers.append(replace(answer, operation=operation, client_attempt=client_attempt))


def answer_of_response(response: Mapping[str, Any]) -> Answer:
    """Read a botocore parsed response (or a ``ClientError.response``) as an :class:`Answer`."""
    metadata = response.get("ResponseMetadata") or {}
    status = metadata.get("HTTPStatusCode")
    code = (response.get("Error") or {}).get("Code")
    if not isinstance(status, int):
        return Answer(None, str(code or "no status"), True)
    failed = status >= 400 and status not in _ANSWERS_NOT_FAILURES
    return Answer(status, _label(status, code), failed)


def answer_of_error(exc: BaseException) -> Answer | None:
    """Find the HTTP answer behind an error (its own ``response`` or a cause's), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if isinstance(response, Mapping):
            return answer_of_response(response)
        seen = seen.__cause__ or seen.__context__
    return None


def _label(status: int, code: object) -> str:
    if code and str(code) != str(status):
        return f"{status} {code}"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def failure_message(
    what: str, exc: BaseException, tries: int, attempts: Attempts, budget_s: float
) -> str:
    """Say what happened to an origin call that failed: the last answer, the attempts, why.

    ``read of 'b/k' [0, 1048576) failed: last answer 503 SlowDown, then the 5 s deadline ran
    out (1 attempt; the S3 client sent 4 requests in it)``
    """
    last = attempts.last_failure()
    if last is None:
        answer = answer_of_error(exc)
        last = answer.label if answer is not None and answer.failed else None
    if isinstance(exc, TimeoutError) and not str(exc):
        detail = f"no answer before the deadline ran out after {budget_s:.3g} s"
        if last is not None:
            detail = f"last answer {last}, then the deadline ran out after {budget_s:.3g} s"
    else:
        detail = f"{type(exc).__name__}: {exc}"
        if last is not None:
            detail = f"last answer {last}; {detail}"
    counts = f"{tries} attempt{'' if tries == 1 else 's'}"
    sent = len(attempts.answers)
    if sent > tries:
        counts += f"; the S3 client sent {sent} requests in {'it' if tries == 1 else 'them'}"
    return f"{what} failed: {detail} ({counts})"
