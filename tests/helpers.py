"""Test helpers: a deterministic, instrumented origin filesystem."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fsspec.implementations.memory import MemoryFileSystem

from tiercache.protocol import BlockKey, BlockKind

#: The HMAC key of every test that shares values through Redis (a Redis tier needs one).
HMAC_KEY = "tiercache-tests-hmac-key-0123456789"


def letters(size: int) -> bytes:
    """Return ``size`` deterministic bytes (fsspec's letters_fetcher idea, with more variety)."""
    pattern = bytes(range(251))  # a prime length: block borders never line up with the pattern
    return (pattern * (size // len(pattern) + 1))[:size]


class CountingFS(MemoryFileSystem):  # type: ignore[misc]
    """An in-memory filesystem that counts data reads and can be slowed down or made to fail."""

    protocol = "countingmem"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.reads: list[tuple[str, int | None, int | None]] = []
        self.info_calls = 0
        self.delay_s = 0.0
        self.bytes_per_s: float | None = None  # each read also takes its length / this
        # Reads of at least this many bytes wait until ``release`` is set (at most 30 s): a slow
        # block that arrives exactly when a test says so, whatever the machine's load.
        self.hold_from_bytes: int | None = None
        self.release = threading.Event()
        self.on_read: Callable[[int, int], None] | None = None  # called with each read's range
        # Raised, in order, by the next reads (None: that read does not fail).
        self.failures: list[BaseException | None] = []
        self.short_by = 0  # bytes cut from the next read's answer

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        with self.lock:
            self.reads.append((path, start, end))
            failure = self.failures.pop(0) if self.failures else None
            short_by, self.short_by = self.short_by, 0
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.on_read or self.bytes_per_s is not None or self.hold_from_bytes is not None:
            size = MemoryFileSystem.info(self, path)["size"]  # not counted in info_calls
            lo, hi, _ = slice(start, end).indices(size)
            if self.on_read is not None:
                self.on_read(lo, hi)
            if self.bytes_per_s is not None:
                time.sleep(max(0, hi - lo) / self.bytes_per_s)
            if self.hold_from_bytes is not None and hi - lo >= self.hold_from_bytes:
                self.release.wait(30)
        if failure is not None:
            raise failure
        data: bytes = super().cat_file(path, start=start, end=end, **kwargs)
        return data[: len(data) - short_by] if short_by else data

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.info_calls += 1
        result: dict[str, Any] = super().info(path, **kwargs)
        return result


class DictTier:
    """A guarded (not in-process) tier backed by a dict; can be made to fail or hang."""

    def __init__(self, name: str = "slow", kinds: tuple[BlockKind, ...] = ("data", "metadata")):
        self.name = name
        self.kinds = kinds
        self.data: dict[BlockKey, bytes] = {}
        self.fail = False
        self.hang = threading.Event()  # cleared: get() blocks
        self.hang.set()
        self.hang_put = threading.Event()  # cleared: put() blocks
        self.hang_put.set()

    def accepts(self, kind: BlockKind, /) -> bool:
        return kind in self.kinds

    def get(self, key: BlockKey, /) -> bytes | None:
        self.hang.wait()
        if self.fail:
            raise OSError("tier broken")
        return self.data.get(key)

    def put(self, key: BlockKey, data: bytes, /) -> None:
        self.hang_put.wait()
        if self.fail:
            raise OSError("tier broken")
        self.data[key] = data

    def delete_object(self, target: str, path: str, /) -> None:
        if self.fail:
            raise OSError("tier broken")
        for k in [k for k in self.data if k.path == path]:
            del self.data[k]

    def close(self) -> None:
        self.hang.set()
        self.hang_put.set()


ROOT = Path(__file__).resolve().parents[1]


def run_program(*args: str, timeout_s: float = 300) -> str:
    """Run ``python ARGS`` from the repository root; assert it exits 0; return its stdout."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def storage_option_args(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``--storage-option KEY=VALUE`` arguments for s3fs ``options`` (nested dicts as dotted
    keys, e.g. ``client_kwargs.endpoint_url=...``), as every storage command takes them."""
    arguments: list[str] = []
    for name, value in options.items():
        if isinstance(value, Mapping):
            arguments += storage_option_args(value, f"{prefix}{name}.")
        else:
            arguments += ["--storage-option", f"{prefix}{name}={value}"]
    return arguments


def first_only_seed(p: float = 0.5, spared: int = 1) -> int:
    """A seed of :meth:`HttpFaultProxy.delay_probability` (probability ``p``) that delays the
    first request it draws for and spares the ``spared`` next ones (a hedge and its followers)."""
    for seed in range(100_000):
        draws = random.Random(seed)
        if draws.random() < p and all(draws.random() >= p for _ in range(spared)):
            return seed
    raise AssertionError("no such seed")
