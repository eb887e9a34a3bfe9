"""The command line."""

from __future__ import annotations

import json
import uuid

import fsspec
import pytest

from tiercache.cli.main import main
from tiercache.config import VARIABLES

PASSWORD = "hunter2-redis-password"
HMAC_KEY = "hmac-key-0123456789abcdef"


def config_rows(out: str) -> dict[str, tuple[str, str]]:
    """``{variable: (value, source)}`` from the table ``tiercache config`` prints."""
    lines = out.splitlines()
    assert lines[0].split() == ["VARIABLE", "VALUE", "SOURCE"]
    rows = {}
    for line in lines[1:]:
        name, value, source = line.split()
        assert line.index(value) == lines[0].index("VALUE"), "columns are aligned"
        assert line.index(source, len(name) + len(value)) == lines[0].index("SOURCE")
        rows[name] = (value, source)
    return rows


def test_config_table_lists_every_variable_with_its_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_ORIGIN_RETRIES", "7")
    monkeypatch.setenv("TIERCACHE_MEMORY_BYTES", "64MiB")
    monkeypatch.setenv("TIERCACHE_INFO_TTL", "")  # empty: unset
    args = ["config", "--set", "TIERCACHE_MEMORY_BYTES=1GiB", "--set", "TIERCACHE_DISK_DIR=/c"]
    assert main(args) == 0
    rows = config_rows(capsys.readouterr().out)
    assert list(rows) == list(VARIABLES)
    assert rows["TIERCACHE_MEMORY_BYTES"] == (str(1 << 30), "argument")  # --set beats env
    assert rows["TIERCACHE_DISK_DIR"] == ("/c", "argument")
    assert rows["TIERCACHE_ORIGIN_RETRIES"] == ("7", "environment")
    assert rows["TIERCACHE_INFO_TTL"] == ("60.0", "default")
    assert rows["TIERCACHE_BLOCK_SIZE"] == (str(1 << 20), "default")
    assert rows["TIERCACHE_REDIS_URL"] == ("-", "default")


def test_config_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIERCACHE_ORIGIN_RETRIES", "7")
    assert main(["config", "--json", "--set", "TIERCACHE_DISK_TIMEOUT=250ms"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == list(VARIABLES)
    assert table["TIERCACHE_DISK_TIMEOUT"] == {"value": 0.25, "source": "argument"}
    assert table["TIERCACHE_ORIGIN_RETRIES"] == {"value": 7, "source": "environment"}
    assert table["TIERCACHE_REDIS_URL"] == {"value": None, "source": "default"}
    assert table["TIERCACHE_DISK_CLEAR_ON_START"] == {"value": False, "source": "default"}


@pytest.mark.parametrize("how", ["environment", "argument"])
@pytest.mark.parametrize("json_output", [False, True])
def test_config_never_prints_secrets(
    how: str,
    json_output: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secrets = {
        "TIERCACHE_REDIS_URL": f"redis://app:{PASSWORD}@cache:6379/0",
        "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
    }
    args = ["config"] + (["--json"] if json_output else [])
    for name, value in secrets.items():
        if how == "environment":
            monkeypatch.setenv(name, value)
        else:
            args += ["--set", f"{name}={value}"]
    assert main(args) == 0
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert PASSWORD not in text
        assert HMAC_KEY not in text
    if json_output:
        table = json.loads(captured.out)
        assert table["TIERCACHE_REDIS_URL"] == {
            "value": "redis://app:***@cache:6379/0",
            "source": how,
        }
        assert table["TIERCACHE_REDIS_HMAC_KEY"] == {"value": "***", "source": how}
    else:
        rows = config_rows(captured.out)
        assert rows["TIERCACHE_REDIS_URL"] == ("redis://app:***@cache:6379/0", how)
        assert rows["TIERCACHE_REDIS_HMAC_KEY"] == ("***", how)


def test_config_error_is_a_clean_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_MEMORY_BYTES", "lots")
    assert main(["config"]) == 2
    assert "TIERCACHE_MEMORY_BYTES" in capsys.readouterr().err


def test_config_bad_set_value_is_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_DISK_TIMEOUT", "2s")  # a good environment value loses
    assert main(["config", "--set", "TIERCACHE_DISK_TIMEOUT=soon"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "TIERCACHE_DISK_TIMEOUT='soon' is not a duration" in captured.err


def test_config_set_wins_over_a_bad_environment_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_MEMORY_BYTES", "lots")
    assert main(["config", "--set", "TIERCACHE_MEMORY_BYTES=1MiB"]) == 0
    assert config_rows(capsys.readouterr().out)["TIERCACHE_MEMORY_BYTES"] == (
        str(1 << 20),
        "argument",
    )


def test_config_empty_set_unsets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_REDIS_URL", "redis://cache:6379/0")
    assert main(["config", "--set", "TIERCACHE_REDIS_URL="]) == 0
    assert config_rows(capsys.readouterr().out)["TIERCACHE_REDIS_URL"] == ("-", "argument")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("TIERCACHE_MEMORY_BYTE=1", "did you mean TIERCACHE_MEMORY_BYTES?"),
        ("PATH=/bin", "unknown variable in arguments: PATH"),
        ("TIERCACHE_MEMORY_BYTES", "--set takes VARIABLE=VALUE"),
        ("=1", "--set takes VARIABLE=VALUE"),
    ],
)
def test_config_bad_set_is_exit_2(
    pair: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--set", pair]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIERCACHE_REDIS_URL": "redis://cache:6379/0"}, "TIERCACHE_REDIS_HMAC_KEY is not"),
        (
            {
                "TIERCACHE_REDIS_URL": f"redis://:{PASSWORD}@[::1",
                "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
            },
            "Invalid IPv6 URL",
        ),
        (
            {
                "TIERCACHE_REDIS_URL": f"redis://:{PASSWORD}@h/0?socket_timeout=abc",
                "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
            },
            "socket_timeout is set by TIERCACHE_REDIS_TIMEOUT",
        ),
        ({"TIERCACHE_STATS_INTERVAL": "1e-9"}, "from 100ms to 24h"),
    ],
)
def test_config_that_cannot_work_is_exit_2(
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for command in ("config", "doctor"):
        assert main([command]) == 2
        err = capsys.readouterr().err
        assert message in err
        assert PASSWORD not in err


def test_config_warns_loudly_when_redis_is_unauthenticated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED", "true")
    assert main(["config"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err
    assert "NOT authenticated" in captured.err
    assert config_rows(captured.out)["TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED"] == (
        "True",
        "environment",
    )
    monkeypatch.setenv("TIERCACHE_REDIS_HMAC_KEY", HMAC_KEY)  # a key: authenticated after all
    assert main(["config"]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_doctor_memory_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["memory", "OK"]
    for step in ("write", "read", "delete", "gone"):
        assert f"{step} " in lines[0]
    assert lines[-1].startswith("1 of 1 usable")


def test_doctor_bad_set_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--set", "TIERCACHE_REDIS_TIMEOUT=-1"]) == 2
    assert "TIERCACHE_REDIS_TIMEOUT" in capsys.readouterr().err


def test_read_prints_bytes_and_stats(capsys: pytest.CaptureFixture[str]) -> None:
    path = f"/cli/{uuid.uuid4().hex}"
    fsspec.filesystem("memory").pipe_file(path, b"0123456789")
    assert main(["read", f"tiercache::memory://{path}", "--start", "2", "--end", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"read 3 bytes of {path}\n")
    assert "\norigin: " in out
    assert len(out.splitlines()) < 40
    args = ["read", f"tiercache::memory://{path}", "--start", "2", "--end", "5", "--json"]
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["bytes"] == 3
    assert "origin" in document["stats"]
    assert main(["read", "tiercache::memory:///cli/missing"]) == 1
    assert capsys.readouterr().err == "tiercache read: error: not found: /cli/missing\n"


@pytest.mark.parametrize(
    ("args", "environment", "named"),
    [
        (["--listen", "0.0.0.0:9000"], {}, "TIERCACHE_GATEWAY_ACCESS_KEY_ID"),
        ([], {"TIERCACHE_GATEWAY_LISTEN": "[::]:9000"}, "TIERCACHE_GATEWAY_SECRET_ACCESS_KEY"),
        (["--listen", "127.0.0.1"], {}, "--listen"),
        ([], {"TIERCACHE_GATEWAY_LISTEN": "nowhere"}, "TIERCACHE_GATEWAY_LISTEN"),
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "2"], {"TIERCACHE_STATS_FILE": "/tmp/s.json"}, "TIERCACHE_STATS_FILE"),
        (["--storage-option", "endpoint_url"], {}, "--storage-option"),
    ],
)
def test_serve_refuses_what_cannot_work_before_listening(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    environment: dict[str, str],
    named: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if "TIERCACHE_GATEWAY_LISTEN" not in environment and "--listen" not in args:
        args = ["--listen", "127.0.0.1:0", *args]  # so that no case can take a real port
    assert main(["serve", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # never said it listens
    assert "configuration error" in captured.err
    assert named in captured.err
