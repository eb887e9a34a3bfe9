"""Watching the S3 client's requests, and the error that says what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tiercache.attempts import (
    Answer,
    Attempts,
    answer_of_error,
    answer_of_response,
    failure_message,
    recording,
    retries_among,
    watch,
)


def response(status: int, code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status}}
    if code is not None:
        body["Error"] = {"Code": code, "Message": "..."}
    return body


def test_answers_read_like_http() -> None:
    assert answer_of_response(response(503, "SlowDown")) == Answer(503, "503 SlowDown", True)
    # HEAD answers carry no body: botocore's code is the status itself.
    assert answer_of_response(response(503, "503")).label == "503 Service Unavailable"
    assert answer_of_response(response(206)) == Answer(206, "206 Partial Content", False)


def test_the_answer_behind_a_translated_error() -> None:
    class ClientError(Exception):
        def __init__(self) -> None:
            super().__init__("SlowDown")
            self.response = response(503, "SlowDown")

    try:
        try:
            raise ClientError
        except ClientError as exc:
            raise OSError(16, "Please reduce your request rate.") from exc
    except OSError as translated:
        answer = answer_of_error(translated)
    assert answer is not None
    assert answer.label == "503 SlowDown"
    assert answer_of_error(ConnectionError("reset")) is None


class Emitter:
    """The part of botocore's event system watch() uses."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}

    def register(self, event: str, handler: Callable[..., Any], unique_id: str) -> None:
        self.handlers.setdefault(unique_id, handler)

    def emit(self, **kwargs: Any) -> None:
        for handler in self.handlers.values():
            handler(**kwargs)


class Meta:
    def __init__(self) -> None:
        self.events = Emitter()


class Client:
    def __init__(self) -> None:
        self.meta = Meta()


def test_only_requests_inside_a_recording_are_recorded() -> None:
    client = Client()
    watch(client)
    watch(client)  # idempotent
    assert len(client.meta.events.handlers) == 1
    client.meta.events.emit(parsed_response=response(200), exception=None)  # not ours
    attempts = Attempts()
    with recording(attempts):
        client.meta.events.emit(parsed_response=response(503, "SlowDown"), exception=None)
        client.meta.events.emit(parsed_response=None, exception=ConnectionResetError())
        client.meta.events.emit(parsed_response=response(206), exception=None)
    client.meta.events.emit(parsed_response=response(500, "InternalError"), exception=None)
    assert [a.label for a in attempts.answers] == [
        "503 SlowDown",
        "ConnectionResetError",
        "206 Partial Content",
    ]
    assert attempts.last_failure() == "ConnectionResetError"


def test_the_message_names_the_last_answer_and_the_attempts() -> None:
    attempts = Attempts([Answer(503, "503 SlowDown", True)] * 4)
    timed_out = failure_message("read of 'b/k' [0, 100)", TimeoutError(), 1, attempts, 5.0)
    assert timed_out == (
        "read of 'b/k' [0, 100) failed: last answer 503 SlowDown, then the deadline ran out "
        "after 5 s (1 attempt; the S3 client sent 4 requests in it)"
    )
    refused = failure_message(
        "read of 'b/k' [0, 100)", OSError(16, "Please reduce"), 3, Attempts(attempts.answers[:3]), 5
    )
    assert refused == (
        "read of 'b/k' [0, 100) failed: last answer 503 SlowDown; OSError: [Errno 16] Please "
        "reduce (3 attempts)"
    )
    plain = failure_message("read of 'p' [0, 1)", ConnectionError("reset"), 2, Attempts(), 5)
    assert plain == "read of 'p' [0, 1) failed: ConnectionError: reset (2 attempts)"


def test_retries_are_repeated_requests_not_new_ones() -> None:
    def get(status: int, attempt: int = 1) -> Answer:
        return Answer(status, str(status), status >= 500, "GetObject", attempt)

    assert retries_among([get(503), get(503, 2), get(206, 3)]) == 2  # botocore's retries
    assert retries_among([get(503), get(503), get(206)]) == 2  # s3fs's loop: attempt 1 each
    head = Answer(404, "404 Not Found", False, "HeadObject")
    listing = Answer(200, "200 OK", False, "ListObjectsV2")
    assert retries_among([head, listing]) == 0  # s3fs's info: a HEAD, then a listing
    assert retries_among([]) == 0
