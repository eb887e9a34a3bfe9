"""Deriving target options from Delta storage options, and back; the pyarrow wrapper."""

from __future__ import annotations

import fsspec
import pytest

from tiercache import ConfigError
from tiercache.integrations.arrow import pyarrow_filesystem, strip_scheme
from tiercache.integrations.delta import storage_options_for, target_for


def test_s3_storage_options_become_s3fs_options() -> None:
    protocol, options = target_for(
        "s3://bucket/table",
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ALLOW_HTTP": "true",
            "aws_access_key_id": "AK",
            "AWS_SECRET_ACCESS_KEY": "SK",
            "AWS_SESSION_TOKEN": "TOK",
            "region": "eu-west-1",
            "AWS_S3_LOCKING_PROVIDER": "dynamodb",
            "SOMETHING_ELSE": "ignored",
        },
    )
    assert protocol == "s3"
    assert options == {
        "key": "AK",
        "secret": "SK",
        "token": "TOK",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
    }


def test_s3a_and_no_options() -> None:
    assert target_for("s3a://bucket/t") == ("s3", {})


def test_local_tables_need_no_options() -> None:
    assert target_for("/data/table") == ("file", {})
    assert target_for("file:///data/table", {"ignored": "x"}) == ("file", {})


def test_an_unmapped_scheme_with_options_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"gs://.*google_service_account.*filesystem="):
        target_for("gs://bucket/t", {"google_service_account": "/key.json"})
    assert target_for("gs://bucket/t") == ("gs", {})


def test_an_empty_mapped_option_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        target_for("s3://b/t", {"AWS_ACCESS_KEY_ID": ""})


def test_storage_options_round_trip() -> None:
    s3fs_options = {
        "key": "AK",
        "secret": "SK",
        "client_kwargs": {"endpoint_url": "http://h:1", "region_name": "us-east-1"},
    }
    delta = storage_options_for(s3fs_options)
    assert delta == {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_ENDPOINT_URL": "http://h:1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
    }
    assert target_for("s3://b/t", delta) == ("s3", s3fs_options)
    assert "AWS_ALLOW_HTTP" not in storage_options_for({"endpoint_url": "https://h"})


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("s3://bucket/table/", "bucket/table"),
        ("bucket/table", "bucket/table"),
        ("file:///tmp/t", "/tmp/t"),
        ("/tmp/t/", "/tmp/t"),
    ],
)
def test_strip_scheme(uri: str, path: str) -> None:
    assert strip_scheme(uri) == path


def test_pyarrow_filesystem_reads_through_fsspec() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/arrowtest/dir/a.bin", b"hello")
    rooted = pyarrow_filesystem(fs, "memory:///arrowtest")
    with rooted.open_input_file("dir/a.bin") as f:
        assert f.read() == b"hello"
    with pytest.raises(TypeError, match="fsspec filesystem"):
        pyarrow_filesystem(object())
