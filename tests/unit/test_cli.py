"""The command line."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from tiercache.cli import main


def test_config_prints_settings_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_REDIS_URL", "redis://:hunter2@cache:6379/0")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "TIERCACHE_BLOCK_SIZE=" in out
    assert "hunter2" not in out
    assert "TIERCACHE_REDIS_URL=redis://" in out


def test_config_error_is_a_clean_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERCACHE_MEMORY_BYTES", "lots")
    assert main(["config"]) == 2
    assert "TIERCACHE_MEMORY_BYTES" in capsys.readouterr().err


def test_read_prints_bytes_and_stats(capsys: pytest.CaptureFixture[str]) -> None:
    path = f"/cli/{uuid.uuid4().hex}"
    fsspec.filesystem("memory").pipe_file(path, b"0123456789")
    assert main(["read", f"tiercache::memory://{path}", "--start", "2", "--end", "5"]) == 0
    out = capsys.readouterr().out
    assert '"bytes": 3' in out
    assert '"origin"' in out
    assert main(["read", "tiercache::memory:///cli/missing"]) == 1
