"""``--storage-option KEY=VALUE``: the documented parsing rules, and the error boundary."""

from __future__ import annotations

from typing import Any

import pytest

from tiercache.cli.boundary import user_error
from tiercache.cli.options import parse_storage_options
from tiercache.errors import ConfigError


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {}),
        (["endpoint_url=http://h:9000"], {"client_kwargs": {"endpoint_url": "http://h:9000"}}),
        (["region=eu-west-1"], {"client_kwargs": {"region_name": "eu-west-1"}}),
        (["client_kwargs.region_name=eu"], {"client_kwargs": {"region_name": "eu"}}),
        (
            ["config_kwargs.retries.max_attempts=3"],
            {"config_kwargs": {"retries": {"max_attempts": 3}}},
        ),
        (["anon=true", "use_ssl=False"], {"anon": True, "use_ssl": False}),
        (
            ["max_concurrency=8", "default_block_size=-1"],
            {"max_concurrency": 8, "default_block_size": -1},
        ),
        (["key=12345", "secret=true", "token="], {"key": "12345", "secret": "true", "token": ""}),
        (
            ["requester_pays=yes", "version_aware=1.5"],
            {"requester_pays": "yes", "version_aware": "1.5"},
        ),
        (["key=a", "key=b"], {"key": "b"}),  # the last one wins
        (["secret=a=b"], {"secret": "a=b"}),  # split at the first "="
    ],
)
def test_values_follow_the_documented_rule(pairs: list[str], expected: dict[str, Any]) -> None:
    assert parse_storage_options(pairs) == expected


@pytest.mark.parametrize("pair", ["endpoint_url", "=x", "a..b=1", ".a=1", "a.=1"])
def test_a_malformed_pair_is_a_configuration_error_naming_it(pair: str) -> None:
    with pytest.raises(ConfigError, match="--storage-option") as raised:
        parse_storage_options([pair])
    assert repr(pair) in str(raised.value)


def test_a_dotted_key_under_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="already set"):
        parse_storage_options(["client_kwargs=x", "client_kwargs.region_name=eu"])


def test_deltalake_keys_are_translated_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    options = parse_storage_options(
        [
            "AWS_ENDPOINT_URL=http://h:9000",
            "AWS_ACCESS_KEY_ID=k",
            "AWS_SECRET_ACCESS_KEY=s",
            "AWS_REGION=eu",
            "AWS_ALLOW_HTTP=true",
        ],
        command="tiercache warm",
    )
    assert options == {
        "client_kwargs": {"endpoint_url": "http://h:9000", "region_name": "eu"},
        "key": "k",
        "secret": "s",
    }
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("tiercache warm: warning: --storage-option AWS_") for line in lines)
    assert "use endpoint_url=" in lines[0]
    assert "use key=" in lines[1]
    assert "no s3fs counterpart" in lines[4]


@pytest.mark.parametrize("protocol", ["gs", "abfs", "file"])
def test_other_origins_take_their_own_keys_as_given(
    protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """gcsfs takes endpoint_url at the top, not in s3fs's client_kwargs; AWS_* keys are not
    translated for a store that is not S3."""
    options = parse_storage_options(
        ["endpoint_url=http://127.0.0.1:4443", "project=p", "AWS_REGION=x"], protocol=protocol
    )
    assert options == {"endpoint_url": "http://127.0.0.1:4443", "project": "p", "AWS_REGION": "x"}
    assert capsys.readouterr().err == ""


def test_user_errors_are_recognised_and_bugs_are_not() -> None:
    assert user_error(FileNotFoundError("bucket/key")) == "not found: bucket/key"
    assert user_error(IsADirectoryError("bucket/dir")) == "is a directory: bucket/dir"
    assert user_error(PermissionError(13, "Permission denied", "/x")) == "permission denied: /x"
    assert user_error(KeyError("a bug")) is None
    assert user_error(TypeError("a bug")) is None

    NoCredentialsError = type(
        "NoCredentialsError", (Exception,), {"__module__": "botocore.exceptions"}
    )
    wrapped = OSError("s3fs said so")
    wrapped.__cause__ = NoCredentialsError("Unable to locate credentials")
    message = user_error(wrapped)
    assert message is not None
    assert message.startswith("Unable to locate credentials (set AWS_ACCESS_KEY_ID")
    assert "\n" not in message
