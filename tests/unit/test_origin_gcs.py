"""Unit: which generation a GCS read is pinned to, and which filesystems get GCS pinned reads."""

from __future__ import annotations

from typing import Any, cast

import pytest
from fsspec.asyn import get_loop
from fsspec.implementations.memory import MemoryFileSystem

from tiercache.documents import info_document, parse_info_document
from tiercache.errors import ObjectChangedError
from tiercache.lateness import Pace
from tiercache.origin_gcs import GcsReads, generation_of, is_gcs
from tiercache.origin_info import info_from_raw
from tiercache.origin_pins import pinned_reads_for
from tiercache.protocol import ObjectInfo


def gcsfs_info(**extra: Any) -> dict[str, Any]:
    """An info dict as gcsfs makes it (the fields the version is taken from)."""
    return {"name": "b/k", "size": 10, "type": "file", "etag": "CAE=", **extra}


def test_the_generation_comes_from_the_version() -> None:
    info = info_from_raw("b/k", gcsfs_info(generation="1796528389349096998"))
    assert info.version == "generation=1796528389349096998"
    assert generation_of(info) == "1796528389349096998"


def test_the_generation_survives_a_shared_tier() -> None:
    info = info_from_raw("b/k", gcsfs_info(generation="42"))
    shared, _ = parse_info_document(info_document(info, 0.0))
    assert generation_of(shared) == "42"
    assert generation_of(ObjectInfo(path="b/k", size=10, version=info.version)) == "42"  # no raw


def test_a_raw_generation_pins_an_info_whose_version_is_something_else() -> None:
    # A seeded info, or one from before versions were generations.
    seeded = ObjectInfo(path="b/k", size=10, version="etag=CAE=", raw={"generation": 42})
    assert generation_of(seeded) == "42"


@pytest.mark.parametrize(
    "info",
    [
        ObjectInfo(path="b/k", size=10, version="etag=CAE="),
        ObjectInfo(path="b/k", size=10, version="10:123.5", raw={"generation": None}),
        ObjectInfo(path="b/k", size=10, version="generation=", raw={}),
        ObjectInfo(path="b/k", size=10, version="generation=12&x=1"),
    ],
)
def test_no_generation_no_pin(info: ObjectInfo) -> None:
    assert generation_of(info) is None
    assert not GcsReads(MemoryFileSystem(), Pace()).can_pin(info)


def test_only_gcsfs_gets_gcs_pinned_reads() -> None:
    memory = MemoryFileSystem()
    assert not is_gcs(memory, "memory")
    assert not is_gcs(memory, "gs")  # the protocol alone is not enough
    assert pinned_reads_for(memory, "memory", Pace()) is None


def test_gcsfs_gets_gcs_pinned_reads() -> None:
    import gcsfs.core

    fs = gcsfs.core.GCSFileSystem(token="anon", skip_instance_cache=True)
    assert is_gcs(fs, "gs")
    assert isinstance(pinned_reads_for(fs, "gs", Pace()), GcsReads)


class FakeAnswer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    async def __aenter__(self) -> FakeAnswer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.body


class FakeGcsfs:
    """The parts of gcsfs a pinned read uses, answering from a script and recording requests."""

    requests_timeout = None

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.loop = get_loop()
        self.session = self
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def split_path(self, path: str) -> tuple[str, str, None]:
        bucket, key = path.split("/", 1)
        return bucket, key, None

    def url(self, path: str, generation: str) -> str:
        return f"http://gcs/download/storage/v1/b/{path}?alt=media&generation={generation}"

    def _format_path(self, path: str, args: tuple[str, ...]) -> str:
        return "http://gcs/storage/v1/" + path.format(*args)

    async def _set_session(self) -> None:
        return None

    def _get_params(self, params: dict[str, str]) -> dict[str, str]:
        return params

    def _get_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers

    def request(self, **request: Any) -> FakeAnswer:
        self.sent.append(request)
        return FakeAnswer(*self.answers.pop(0))


PINNED = ObjectInfo(path="b/k", size=10, version="generation=7")
MEDIA = "http://gcs/download/storage/v1/b/b/k?alt=media&generation=7"
METADATA = "http://gcs/storage/v1/b/b/o/k"


def read(fs: FakeGcsfs) -> bytes:
    return GcsReads(cast(Any, fs), Pace()).read(PINNED, 2, 5, 5.0)


def test_a_read_names_the_generation_twice_and_checks_the_answer() -> None:
    fs = FakeGcsfs((206, {"x-goog-generation": "7"}, b"abc"))
    assert read(fs) == b"abc"
    [sent] = fs.sent
    assert (sent["method"], sent["url"]) == ("GET", MEDIA)
    assert sent["params"] == {"ifGenerationMatch": "7"}
    assert sent["headers"] == {"Range": "bytes=2-4"}


@pytest.mark.parametrize(
    "answers",
    [
        [(206, {"x-goog-generation": "8"}, b"abc")],  # another generation answered
        [(412, {}, b"")],  # the live object is another generation
        [(404, {}, b""), (200, {}, b'{"generation": "8"}')],  # generation 7 gone, object there
        [(206, {}, b"abc"), (200, {}, b'{"generation": "8"}')],  # no header: replaced meanwhile
    ],
)
def test_another_generation_is_a_changed_object(
    answers: list[tuple[int, dict[str, str], bytes]],
) -> None:
    fs = FakeGcsfs(*answers)
    with pytest.raises(ObjectChangedError):
        read(fs)
    assert len(fs.sent) == len(answers)


def test_an_answer_without_a_generation_is_checked_after_the_body() -> None:
    fs = FakeGcsfs((206, {}, b"abc"), (200, {}, b'{"generation": "7"}'))
    assert read(fs) == b"abc"
    assert [sent["url"] for sent in fs.sent] == [MEDIA, METADATA]


def test_a_deleted_object_is_not_found() -> None:
    fs = FakeGcsfs((404, {}, b""), (404, {}, b""))
    with pytest.raises(FileNotFoundError):
        read(fs)
