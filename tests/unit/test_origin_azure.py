"""Unit: the Azure origin's parsing (ETags, connection strings, error statuses) and the harness's
Azurite install (with a fake npm)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tiercache.errors import ObjectChangedError
from tiercache.lateness import Pace
from tiercache.origin_azure import (
    AzureReads,
    _one_request,
    connection_string_endpoint,
    etag_of,
    quoted_etag,
    translate_error,
)
from tiercache.origin_info import target_identity
from tiercache.origin_pins import pinned_reads_for
from tiercache.origin_s3 import RangeNotSatisfiableError
from tiercache.protocol import ObjectInfo
from tiercache.testing.servers import azurite_install
from tiercache.testing.servers.azurite_install import find_azurite, installed_binary


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"0x8DCB"', '"0x8DCB"'),
        ("0x8DCB", '"0x8DCB"'),
        (' "0x8DCB" ', '"0x8DCB"'),
        ("", None),
        ('""', None),
        (None, None),
        (17, None),
    ],
)
def test_etags_are_quoted_one_way(value: object, expected: str | None) -> None:
    assert quoted_etag(value) == expected


def test_the_etag_comes_from_the_info_else_from_its_raw_dict() -> None:
    assert etag_of(ObjectInfo("c/k", 1, "v", etag="0xA")) == '"0xA"'
    assert etag_of(ObjectInfo("c/k", 1, "v", raw={"etag": '"0xB"'})) == '"0xB"'
    assert etag_of(ObjectInfo("c/k", 1, "v", raw={"last_modified": "t"})) is None
    reads = AzureReads(MemoryFileSystem(), Pace())
    assert reads.can_pin(ObjectInfo("c/k", 1, "v", etag='"0xA"'))
    assert not reads.can_pin(ObjectInfo("c/k", 1, "1:t"))


KEY = "a2V5"
SAS = "sv=2021-08-06&ss=b&sig=abc%3D"


def test_a_connection_string_names_its_endpoint_not_its_secrets() -> None:
    text = (
        f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:10000/dev/;SharedAccessSignature={SAS};junk;"
    )
    assert connection_string_endpoint(text) == {
        "defaultendpointsprotocol": "http",
        "accountname": "dev",
        "blobendpoint": "http://127.0.0.1:10000/dev",
    }
    assert connection_string_endpoint("accountname=a;EndpointSuffix=core.windows.net") == {
        "accountname": "a",
        "endpointsuffix": "core.windows.net",
    }


def test_the_endpoint_in_a_connection_string_is_part_of_the_target_identity() -> None:
    def options(endpoint: str, key: str) -> dict[str, Any]:
        text = f"AccountName=dev;AccountKey={key};BlobEndpoint={endpoint}"
        return {"connection_string": text, "account_name": "dev"}

    one = target_identity("abfs", options("http://127.0.0.1:1/dev", KEY))
    assert one == target_identity("abfs", options("http://127.0.0.1:1/dev", "b3RoZXI="))
    assert one != target_identity("abfs", options("http://127.0.0.1:2/dev", KEY))
    # Options without a connection string keep the identity they had.
    assert target_identity("s3", {"endpoint_url": "http://x"}) == target_identity(
        "s3", {"endpoint_url": "http://x", "connection_string": None}
    )


class _StatusError(Exception):
    def __init__(self, status: int | None, *, on_response: bool = False) -> None:
        super().__init__(f"HTTP {status}")
        if on_response:
            self.response = SimpleNamespace(status_code=status)
        else:
            self.status_code = status


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (412, ObjectChangedError),
        (404, FileNotFoundError),
        (416, RangeNotSatisfiableError),
        (403, PermissionError),
    ],
)
@pytest.mark.parametrize("on_response", [False, True])
def test_azure_statuses_become_the_origin_errors(
    status: int, kind: type[Exception], on_response: bool
) -> None:
    error = translate_error(_StatusError(status, on_response=on_response), "c/k", '"0xA"')
    assert isinstance(error, kind)


@pytest.mark.parametrize("status", [500, 503, None])
def test_other_azure_errors_stay_themselves_transient(status: int | None) -> None:
    error = _StatusError(status)
    assert translate_error(error, "c/k", '"0xA"') is error


def test_adlfs_gets_pinned_reads_and_other_targets_do_not() -> None:
    azure_like = SimpleNamespace(service_client=object(), split_path=lambda p: p, loop=None)
    assert isinstance(pinned_reads_for(azure_like, "abfs", Pace()), AzureReads)
    assert isinstance(pinned_reads_for(azure_like, "az", Pace()), AzureReads)
    assert pinned_reads_for(MemoryFileSystem(), "memory", Pace()) is None


def test_one_request_raises_the_limit_on_a_copy_of_the_shared_config() -> None:
    shared = SimpleNamespace(max_single_get_size=32, max_chunk_get_size=4)
    client = SimpleNamespace(_config=shared)
    _one_request(client, 100)
    assert client._config.max_single_get_size == 100
    assert shared.max_single_get_size == 32  # the service client's own config is untouched
    small = SimpleNamespace(_config=shared)
    _one_request(small, 10)
    assert small._config is shared


def _fake_npm(bin_dir: Path, script: str) -> None:
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + script)
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def no_azurite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing but what the test puts in ``bin``, and an empty cache directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return bin_dir


def test_without_npm_the_error_names_npm_and_the_command(no_azurite: Path) -> None:
    with pytest.raises(RuntimeError, match=r"npm is not installed.*npm install --prefix"):
        find_azurite()
    with pytest.raises(RuntimeError, match="neither on PATH nor in"):
        find_azurite(install=False)


def test_a_failing_npm_is_quoted(no_azurite: Path) -> None:
    _fake_npm(no_azurite, "echo 'E404 no such package' >&2\nexit 3\n")
    with pytest.raises(RuntimeError, match=r"exit code 3:\nE404 no such package"):
        find_azurite()
    prefix = azurite_install.azurite_cache_dir()
    assert not prefix.exists()  # nothing half-installed under the final name
    assert [p.name for p in prefix.parent.iterdir()] == [f"{prefix.name}.lock"]


def test_npm_installs_once_into_the_cache(no_azurite: Path) -> None:
    # The fake npm makes the binary npm would, under --prefix ($3), and counts its runs.
    count = no_azurite.parent / "runs"
    _fake_npm(
        no_azurite,
        f'echo run >> {count}\nmkdir -p "$3/node_modules/.bin"\n'
        'printf "#!/bin/sh\\n" > "$3/node_modules/.bin/azurite-blob"\n',
    )
    binary = find_azurite()
    prefix = azurite_install.azurite_cache_dir()
    assert binary == str(installed_binary(prefix))
    assert prefix.name == f"azurite-{azurite_install.AZURITE_VERSION}"
    assert find_azurite() == binary
    assert count.read_text().count("run") == 1
    (no_azurite / "azurite-blob").write_text("")
    (no_azurite / "azurite-blob").chmod(0o755)
    assert find_azurite() == os.path.join(no_azurite, "azurite-blob")  # PATH comes first


def test_an_adlfs_info_shared_through_a_document_still_pins() -> None:
    # What adlfs's info() returns (datetimes, a bytearray MD5, a quoted ETag), as shared
    # between processes through the Redis tier's info documents.
    import datetime

    from tiercache.documents import info_document, parse_info_document
    from tiercache.origin_info import info_from_raw

    raw = {
        "name": "c/k.bin",
        "size": 10,
        "type": "file",
        "etag": '"0x1E160E8F6D086D0"',
        "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "content_settings": {"content_md5": bytearray(b"\x15\x98")},
        "metadata": {},
    }
    info = info_from_raw("c/k.bin", raw)
    assert info.version == 'etag="0x1E160E8F6D086D0"'
    shared, _ = parse_info_document(info_document(info, 0.0))
    assert shared.version == info.version
    assert etag_of(shared) == '"0x1E160E8F6D086D0"'
