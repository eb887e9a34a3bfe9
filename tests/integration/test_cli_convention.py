"""Integration: one command-line convention, ``tiercache`` run as a real process against the S3
server (issue 15, part 4).

Every command that reaches storage takes ``--storage-option KEY=VALUE`` with s3fs's keys; errors
a user can fix are one line on stderr and a non-zero exit, never a traceback; every subcommand's
``--help`` says what it does; ``warm`` exits 1 when it could not list; the default output fits a
terminal (``--json`` for the document); a reader closing the pipe early is no traceback.

Every child runs with no ``AWS_*`` variable but those a test sets, no AWS config file and no
instance metadata lookup: nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from tests.helpers import storage_option_args
from tiercache.cli.main import build_parser
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration

#: The commands that reach storage, each with ``--storage-option``.
STORAGE_COMMANDS = ("doctor", "read", "serve", "warm")
#: "Fits a terminal": the default output of ``read`` is at most this many lines.
TERMINAL_LINES = 40


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without AWS_* or TIERCACHE_*, no AWS files, no IMDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIERCACHE_"))}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def tiercache(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tiercache.cli", *args],
        env=child_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    """Assert stderr is exactly one ``tiercache COMMAND: ...error...`` line; return it."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tiercache {command}: "), lines[0]
    assert "error: " in lines[0]
    return lines[0]


@pytest.fixture
def objects(s3_server: S3Server, s3_bucket: str) -> str:
    """A bucket holding ``data/part-0.parquet`` (3 rows) and ``data/blob`` (100 bytes)."""
    fs = s3fs.S3FileSystem(**s3_server.storage_options(), skip_instance_cache=True)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buffer)
    fs.pipe(f"{s3_bucket}/data/part-0.parquet", buffer.getvalue())
    fs.pipe(f"{s3_bucket}/data/blob", b"b" * 100)
    return s3_bucket


def flat_options(server: S3Server) -> list[str]:
    """The server's s3fs options as the documented shorthands (endpoint_url, region_name)."""
    options = server.storage_options()
    client: dict[str, Any] = options.pop("client_kwargs")
    return [
        *storage_option_args(options),
        "--storage-option",
        f"endpoint_url={client['endpoint_url']}",
        "--storage-option",
        f"region_name={client['region_name']}",
    ]


# --- every storage command takes --storage-option -----------------------------------------------


def test_every_storage_command_has_the_same_storage_option() -> None:
    commands = subcommands()
    for name in STORAGE_COMMANDS:
        (action,) = [a for a in commands[name]._actions if "--storage-option" in a.option_strings]
        assert action.metavar == "KEY=VALUE"
        assert isinstance(action.default, list)  # repeatable (append)


def test_read_takes_storage_options(s3_server: S3Server, objects: str) -> None:
    url = f"tiercache::s3://{objects}/data/blob"
    result = tiercache("read", url, "--start", "10", "--end", "60", *flat_options(s3_server))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"read 50 bytes of {objects}/data/blob"
    assert len(lines) <= TERMINAL_LINES
    nested = storage_option_args(s3_server.storage_options())  # client_kwargs.endpoint_url=...
    document = tiercache("read", url, "--json", *nested)
    assert document.returncode == 0, document.stderr
    parsed = json.loads(document.stdout)
    assert parsed["bytes"] == 100
    assert parsed["stats"]["origin"]["requests"] >= 1


def test_warm_takes_storage_options(s3_server: S3Server, objects: str) -> None:
    result = tiercache("warm", f"s3://{objects}/data", "--json", *flat_options(s3_server))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["files_found"], report["files_warmed"]) == (1, 1)
    assert report["listing_error"] is None


def test_doctor_takes_storage_options(s3_server: S3Server, objects: str) -> None:
    url = f"tiercache::s3://{objects}/data/blob"
    result = tiercache("doctor", "--json", "--url", url, *flat_options(s3_server))
    assert result.returncode == 0, result.stdout + result.stderr
    (origin,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "origin"]
    assert origin["status"] == "OK"
    assert origin["detail"]["size"] == 100


def test_the_standard_aws_environment_applies(s3_server: S3Server, objects: str) -> None:
    env = child_env(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_REGION="us-east-1",
    )
    result = tiercache("read", f"tiercache::s3://{objects}/data/blob", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"read 100 bytes of {objects}/data/blob\n")


# --- errors a user can fix: one line, non-zero -------------------------------------------------


@pytest.mark.parametrize("command", ["read", "warm"])
def test_no_credentials_is_one_line(command: str, s3_server: S3Server, objects: str) -> None:
    endpoint = ["--storage-option", f"endpoint_url={s3_server.endpoint_url}"]
    target = f"tiercache::s3://{objects}/data/blob" if command == "read" else f"s3://{objects}"
    result = tiercache(command, target, *endpoint)
    assert result.returncode == 1
    line = one_error_line(result, command)
    assert "Unable to locate credentials" in line or "NoCredentialsError" in line


def test_a_directory_is_one_line(s3_server: S3Server, objects: str) -> None:
    result = tiercache("read", f"tiercache::s3://{objects}/data", *flat_options(s3_server))
    assert result.returncode == 1
    assert "is a directory" in one_error_line(result, "read")
    assert result.stdout == ""


def test_a_missing_object_is_one_line(s3_server: S3Server, objects: str) -> None:
    url = f"tiercache::s3://{objects}/data/nope-{uuid.uuid4().hex}"
    result = tiercache("read", url, *flat_options(s3_server))
    assert result.returncode == 1
    assert "not found" in one_error_line(result, "read")


@pytest.mark.parametrize("command", STORAGE_COMMANDS)
@pytest.mark.parametrize("pair", ["endpoint_url", "=x", "client_kwargs..region_name=x"])
def test_a_bad_storage_option_is_exit_2_and_names_it(command: str, pair: str) -> None:
    arguments = {
        "doctor": ["doctor", "--url", "tiercache::s3://bucket/key"],
        "read": ["read", "tiercache::s3://bucket/key"],
        "serve": ["serve", "--listen", "127.0.0.1:0"],
        "warm": ["warm", "s3://bucket/table"],
    }[command]
    result = tiercache(*arguments, "--storage-option", pair)
    assert result.returncode == 2
    line = one_error_line(result, command)
    assert repr(pair) in line
    assert result.stdout == ""


def test_warm_exits_1_when_it_cannot_list(s3_server: S3Server, s3_bucket: str) -> None:
    target = f"s3://{s3_bucket}/no-such-table-{uuid.uuid4().hex}"
    result = tiercache("warm", target, *flat_options(s3_server))
    assert result.returncode == 1
    line = one_error_line(result, "warm")
    assert f"could not list {target}, nothing warmed" in line
    unreachable = tiercache("warm", "s3://no-such-bucket-at-all/t", *flat_options(s3_server))
    assert unreachable.returncode == 1
    one_error_line(unreachable, "warm")


# --- --help, output size, pipes ------------------------------------------------------------------


def test_every_subcommand_help_says_what_it_does() -> None:
    commands = subcommands()
    assert set(STORAGE_COMMANDS) <= set(commands)
    for name, parser in commands.items():
        assert parser.description, f"tiercache {name} --help has no description"
        result = tiercache(name, "--help")
        assert result.returncode == 0, result.stderr
        first_words = " ".join(parser.description.split()[:4])
        assert first_words in " ".join(result.stdout.split()), name


@pytest.mark.parametrize("arguments", [["config", "--json"], ["config"], ["doctor", "--json"]])
def test_a_pipe_closed_early_is_quiet(arguments: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (as `| head -c0` would be)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tiercache.cli", *arguments],
            env=child_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert stderr == ""
    assert process.returncode == 141


def test_a_reader_that_stops_after_a_few_bytes_is_quiet() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tiercache.cli", "config", "--json"],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(10).startswith(b"{")
    process.stdout.close()  # as `| head -c10` does
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) in (0, 141)  # 0: it had written everything already
    assert "Traceback" not in stderr
