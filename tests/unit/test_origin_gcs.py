"""Unit: which generation a GCS read is pinned to, and which filesystems get GCS pinned reads."""

from __future__ import annotations

from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tiercache.documents import info_document, parse_info_document
from tiercache.lateness import Pace
from tiercache.origin import info_from_raw
from tiercache.origin_gcs import GcsReads, generation_of, is_gcs
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
