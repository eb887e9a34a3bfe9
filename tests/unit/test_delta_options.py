"""Deriving target options from Delta storage options, and back; the pyarrow wrapper."""

from __future__ import annotations

import json

import fsspec
import pytest

from tiercache import ConfigError
from tiercache.integrations.arrow import pyarrow_filesystem, strip_scheme
from tiercache.integrations.delta import gateway_uri, storage_options_for, target_for
from tiercache.integrations.store_options import AZURITE_ACCOUNT, AZURITE_KEY, bucket_and_path


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
    with pytest.raises(ConfigError, match=r"hdfs://.*user.*filesystem="):
        target_for("hdfs://namenode/t", {"user": "me"})
    assert target_for("hdfs://namenode/t") == ("hdfs", {})


def test_gcs_storage_options_become_gcsfs_options() -> None:
    assert target_for("gs://bucket/t", {"GOOGLE_SERVICE_ACCOUNT": "/key.json"}) == (
        "gs",
        {"token": "/key.json"},
    )
    assert target_for("gcs://b/t", {"service_account_path": "/k.json", "bucket": "b"}) == (
        "gs",
        {"token": "/k.json"},
    )
    key = {"type": "service_account", "client_email": "a@b"}
    assert target_for("gs://b/t", {"google_service_account_key": json.dumps(key)}) == (
        "gs",
        {"token": key},
    )
    with pytest.raises(ConfigError, match=r"'service_account_key' is not a JSON"):
        target_for("gs://b/t", {"service_account_key": "{not json"})
    assert target_for("gs://bucket/t") == ("gs", {})


def test_azure_storage_options_become_adlfs_options() -> None:
    protocol, options = target_for(
        "az://container/t",
        {
            "AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "azure_storage_account_key": "KEY",
            "sas_key": "SAS",
            "AZURE_CLIENT_ID": "cid",
            "client_secret": "cs",
            "tenant_id": "tid",
            "allow_http": "true",
        },
    )
    assert protocol == "abfs"
    assert options == {
        "account_name": "acct",
        "account_key": "KEY",
        "sas_token": "SAS",
        "client_id": "cid",
        "client_secret": "cs",
        "tenant_id": "tid",
    }
    # the account of an abfss:// URI, when no option names one
    assert target_for("abfss://c@myacct.dfs.core.windows.net/t", {})[1] == {
        "account_name": "myacct"
    }


def test_azure_emulator_options_become_a_connection_string() -> None:
    _, options = target_for("az://c/t", {"azure_storage_use_emulator": "true"})
    assert options["account_name"] == AZURITE_ACCOUNT
    assert options["connection_string"] == (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    )
    _, options = target_for(
        "az://c/t",
        {"AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:4242/acct/", "account_name": "acct"},
    )
    assert options == {
        "connection_string": (
            "DefaultEndpointsProtocol=http;AccountName=acct;BlobEndpoint=http://127.0.0.1:4242/acct;"
        ),
        "account_name": "acct",
    }


@pytest.mark.parametrize(
    ("uri", "where"),
    [
        ("s3://b/path/t/", ("b", "path/t")),
        ("gs://b/t", ("b", "t")),
        ("az://c/t", ("c", "t")),
        ("abfss://c@acct.dfs.core.windows.net/x/t", ("c", "x/t")),
        ("gs://b", ("b", "")),
    ],
)
def test_bucket_and_path(uri: str, where: tuple[str, str]) -> None:
    assert bucket_and_path(uri) == where


@pytest.mark.parametrize(
    ("uri", "through_gateway"),
    [
        ("s3://b/t", "s3://b/t"),
        ("gs://b/t", "s3://b/t"),
        ("abfss://c@acct.dfs.core.windows.net/x/t", "s3://c/x/t"),
        ("az://c", "s3://c"),
    ],
)
def test_tables_on_every_store_are_opened_by_an_s3_uri_through_a_gateway(
    uri: str, through_gateway: str
) -> None:
    assert gateway_uri(uri) == through_gateway


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
