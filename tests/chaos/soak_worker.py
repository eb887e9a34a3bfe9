"""The readers of the soak test, and a worker process that runs one of them in its own pod.

Usage: ``python -m tests.chaos.soak_worker CONFIG_JSON`` (started by ``tests/chaos/test_soak.py``).

The worker builds its own pod (a :class:`~tiercache.TieredFileSystem` with its own RAM tier, the
same disk directory and the same Redis URL and prefix as the test process, reading through the
same fault proxies), regenerates the expected content of every object from the seed, and prints
``ready``. It then reads one line from stdin, the wall-clock times (``time.time()``) at which the
soak started and at which to stop, reads random ranges of random objects until then, and prints
one JSON line: its tally (reads, wrong bytes, failed reads, latencies, the first problems) and
its pod's ``stats()``.

A worker that hangs dumps every thread's stack to stderr and exits (``faulthandler``), so a
hang shows up as a traceback, not as a silent timeout.

The reading logic (:class:`Reader`), the objects (:func:`make_objects`) and the pod
(:func:`make_pod`) live here so that the test process and the workers read the same way.
"""

from __future__ import annotations

import bisect
import contextlib
import faulthandler
import heapq
import json
import os
import random
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import s3fs

from tests.helpers import HMAC_KEY
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.parsing import KIB, MIB

BUCKET = "soak"
OBJECT_COUNT = 20
FOOTER_BYTES = 64 * KIB  # what pyarrow reads to open a Parquet file
MAX_RANGE_BYTES = 1 * MIB
MAX_PROBLEMS = 5  # problems kept in full per reader (all are counted)

# The pod's settings (see docs/reliability.md, "Soak run", for why each has its value).
BLOCK_BYTES = 256 * KIB
MEMORY_BYTES = 8 * MIB  # small: most reads reach the disk tier, the Redis tier or the origin
DISK_BYTES = 24 * MIB  # less than the ~50 MiB of objects: the disk evicts, footers miss it
DISK_TIMEOUT_S = 0.1
REDIS_TIMEOUT_S = 0.1
BREAKER_FAILURES = 3
BREAKER_COOLDOWN_S = 0.5
ORIGIN_RETRIES = 8  # 9 attempts: more than two 503 bursts of at most 4 can take from one read
ORIGIN_TIMEOUT_S = 10.0  # the origin deadline: the hard bound of one origin request
INFO_TTL_S = 2.0  # object info of mutable paths is re-checked often: the Redis info path works

# Read patterns and their weights.
PATTERNS = ("footer", "tail", "range", "small", "file", "ranges")
WEIGHTS = (25, 5, 40, 15, 10, 5)
CUMULATIVE = [sum(WEIGHTS[: i + 1]) for i in range(len(WEIGHTS))]


@dataclass(frozen=True)
class ObjectSpec:
    """One object of the soak: its path (``bucket/key``), its size and its content seed."""

    path: str
    size: int
    seed: str


def make_objects(seed: int, count: int = OBJECT_COUNT) -> list[ObjectSpec]:
    """Return ``count`` objects of 1-4 MiB, the same for every process given the same seed.

    A third are Spark/Delta-style Parquet names with a UUID (immutable: info cached for good),
    a third plain Parquet names (mutable: info re-checked after INFO_TTL), the rest blobs.
    """
    rng = random.Random(f"objects:{seed}")
    specs = []
    for i in range(count):
        size = rng.randint(1 * MIB, 4 * MIB)
        if i % 3 == 0:
            name = uuid.UUID(int=rng.getrandbits(128), version=4)
            key = f"table/part-{i:05d}-{name}-c000.snappy.parquet"
        elif i % 3 == 1:
            key = f"plain/part-{i:05d}.parquet"
        else:
            key = f"blobs/object-{i:05d}.bin"
        specs.append(ObjectSpec(f"{BUCKET}/{key}", size, f"{seed}:{key}"))
    return specs


def object_bytes(spec: ObjectSpec) -> bytes:
    """The content of one object, regenerated from its seed (Parquet-like: PAR1 at both ends)."""
    body = random.Random(spec.seed).randbytes(spec.size - 8)
    return b"PAR1" + body + b"PAR1" if spec.path.endswith(".parquet") else body + b"PAR1PAR1"


@dataclass(frozen=True)
class PodConfig:
    """Everything a process needs to build a pod of the soak."""

    endpoint_url: str  # the HTTP fault proxy in front of the S3 server
    redis_url: str  # the TCP fault proxy in front of the Redis server
    redis_prefix: str
    disk_dir: str
    seed: int
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"

    def settings(self) -> Settings:
        """The pod's settings."""
        return Settings(
            block_size_bytes=BLOCK_BYTES,
            memory_bytes=MEMORY_BYTES,
            disk_dir=self.disk_dir,
            disk_bytes=DISK_BYTES,
            disk_timeout_s=DISK_TIMEOUT_S,
            redis_url=self.redis_url,
            redis_hmac_key=HMAC_KEY,
            redis_timeout_s=REDIS_TIMEOUT_S,
            redis_prefix=self.redis_prefix,
            info_ttl_s=INFO_TTL_S,
            origin_retries=ORIGIN_RETRIES,
            origin_timeout_s=ORIGIN_TIMEOUT_S,
            breaker_failures=BREAKER_FAILURES,
            breaker_cooldown_s=BREAKER_COOLDOWN_S,
        )


def make_pod(config: PodConfig) -> TieredFileSystem:
    """A pod: its own RAM tier and S3 client, the shared disk directory and Redis.

    s3fs and botocore retry nothing (one attempt each), so tiercache's own retries, under its
    deadline, are what rides out the 503 bursts.
    """
    client = s3fs.S3FileSystem(
        key=config.key,
        secret=config.secret,
        client_kwargs={"endpoint_url": config.endpoint_url, "region_name": config.region},
        config_kwargs={"retries": {"total_max_attempts": 1}},
        skip_instance_cache=True,
    )
    client.retries = 1
    settings = config.settings()
    return TieredFileSystem(fs=client, settings=settings, tiers=default_tiers(settings))


@dataclass
class Tally:
    """What one reader (or several, merged) saw."""

    reads: int = 0
    wrong_bytes: int = 0  # reads that returned bytes other than the origin's
    failed_reads: int = 0  # reads that raised
    latencies_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # a min-heap of the slowest

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def timed(self, latency_s: float, what: Callable[[], str]) -> None:
        """Record one read's latency (and what it was, if it is among the slowest)."""
        self.latencies_s.append(latency_s)
        if len(self.slowest) < MAX_PROBLEMS:
            heapq.heappush(self.slowest, (latency_s, what()))
        elif latency_s > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, (latency_s, what()))

    def merge(self, other: Tally) -> None:
        self.reads += other.reads
        self.wrong_bytes += other.wrong_bytes
        self.failed_reads += other.failed_reads
        self.latencies_s.extend(other.latencies_s)
        self.problems.extend(other.problems)
        self.slowest = sorted(self.slowest + other.slowest)[-MAX_PROBLEMS:]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        return cls(
            reads=int(data["reads"]),
            wrong_bytes=int(data["wrong_bytes"]),
            failed_reads=int(data["failed_reads"]),
            latencies_s=[float(x) for x in data["latencies_s"]],
            problems=[str(x) for x in data["problems"]],
            slowest=[(float(t), str(w)) for t, w in data["slowest"]],
        )


class Reader:
    """Reads random ranges of random objects through one pod and checks every byte.

    Args:
        name: Names the reader in problem reports (``thread-3``, ``process-1``).
        fs: The pod.
        objects: The objects and their expected content.
        seed: Seed of this reader's choices.
        started: ``time.time()`` at the start of the soak, for relative times in reports.
    """

    def __init__(
        self,
        name: str,
        fs: TieredFileSystem,
        objects: list[tuple[ObjectSpec, bytes]],
        seed: int,
        started: float,
    ) -> None:
        self.name = name
        self.fs = fs
        self.objects = objects
        self.rng = random.Random(f"reader:{seed}:{name}")
        self.started = started
        self.tally = Tally()

    def run(self, keep_going: Callable[[], bool]) -> Tally:
        """Read until ``keep_going()`` is false; return the tally. Never raises for a read."""
        while keep_going():
            self.read_once()
        return self.tally

    def read_once(self) -> None:
        spec, data = self.objects[self.rng.randrange(len(self.objects))]
        pattern = PATTERNS[bisect.bisect_right(CUMULATIVE, self.rng.randrange(CUMULATIVE[-1]))]
        what = f"{pattern} of {spec.path}"
        begun = time.perf_counter()
        try:
            read: Callable[[ObjectSpec, bytes], str | None] = getattr(self, f"_{pattern}")
            wrong = read(spec, data)
        except Exception as exc:
            elapsed = time.perf_counter() - begun
            self.tally.failed_reads += 1
            self.tally.problem(
                f"{self.name} at t={self._now():.2f}s: {what} failed after "
                f"{elapsed * 1000:.0f} ms: " + "".join(traceback.format_exception(exc))
            )
        else:
            elapsed = time.perf_counter() - begun
            if wrong is not None:
                self.tally.wrong_bytes += 1
                self.tally.problem(f"{self.name} at t={self._now():.2f}s: {what}: {wrong}")
        self.tally.reads += 1
        self.tally.timed(elapsed, lambda: f"{self.name} at t={self._now():.2f}s: {what}")

    def _now(self) -> float:
        return time.time() - self.started

    # -- the read patterns: each does one read and returns what was wrong, or None -----------

    def _footer(self, spec: ObjectSpec, data: bytes) -> str | None:
        """What pyarrow does to open a Parquet file: info, then the 64 KiB tail."""
        info_size = self.fs.info(spec.path)["size"]
        if info_size != spec.size:
            return f"info says {info_size} bytes, the object has {spec.size}"
        start = spec.size - FOOTER_BYTES
        return _compare(self.fs.read_range(spec.path, start, spec.size), data, start, spec.size)

    def _tail(self, spec: ObjectSpec, data: bytes) -> str | None:
        """The same tail with a negative offset (slice semantics)."""
        got = self.fs.read_range(spec.path, -FOOTER_BYTES, None)
        return _compare(got, data, spec.size - FOOTER_BYTES, spec.size)

    def _range(self, spec: ObjectSpec, data: bytes) -> str | None:
        """Up to 1 MiB (up to 5 blocks) anywhere."""
        start = self.rng.randrange(spec.size)
        end = min(spec.size, start + self.rng.randint(1, MAX_RANGE_BYTES))
        return _compare(self.fs.read_range(spec.path, start, end), data, start, end)

    def _small(self, spec: ObjectSpec, data: bytes) -> str | None:
        """Up to 4 KiB through ``cat_file``."""
        start = self.rng.randrange(spec.size)
        end = min(spec.size, start + self.rng.randint(1, 4 * KIB))
        return _compare(self.fs.cat_file(spec.path, start=start, end=end), data, start, end)

    def _file(self, spec: ObjectSpec, data: bytes) -> str | None:
        """A file object: seek and read, version-pinned (``read_pinned``)."""
        start = self.rng.randrange(spec.size)
        length = self.rng.randint(1, MAX_RANGE_BYTES)
        with self.fs.open(spec.path, "rb") as f:
            f.seek(start)
            got = f.read(length)
        return _compare(got, data, start, min(spec.size, start + length))

    def _ranges(self, spec: ObjectSpec, data: bytes) -> str | None:
        """Three ranges at once, read concurrently by ``cat_ranges``."""
        starts = [self.rng.randrange(spec.size) for _ in range(3)]
        ends = [min(spec.size, s + self.rng.randint(1, MAX_RANGE_BYTES // 4)) for s in starts]
        results = self.fs.cat_ranges([spec.path] * 3, list(starts), list(ends), on_error="raise")
        for got, start, end in zip(results, starts, ends, strict=True):
            if isinstance(got, BaseException):
                raise got
            wrong = _compare(got, data, start, end)
            if wrong is not None:
                return wrong
        return None


def settle(reader: Reader, within_s: float = 4 * BREAKER_COOLDOWN_S) -> float:
    """Once the load is gone, read alone until every tier of the pod is closed; return the time.

    A breaker may open in the soak's last moments with no fault injected: on a 2-core machine
    running 11 readers, 3 pods' guards, moto and Redis, a tier call can miss its 100 ms budget,
    and a timeout is a timeout. What the design promises is recovery: one cooldown after the
    load is gone, the next read probes the tier and closes its breaker. These reads are checked
    byte for byte like the others; the caller asserts the states that result.
    """
    begun = time.monotonic()
    while time.monotonic() - begun < within_s:
        if all(tier["state"] == "closed" for tier in reader.fs.stats()["tiers"].values()):
            break
        reader.read_once()
        time.sleep(BREAKER_COOLDOWN_S / 5)
    return time.monotonic() - begun


def held_deleted_files(directory: str) -> list[str]:
    """Files under ``directory`` that are deleted but still open in this process (Linux).

    Every descriptor counts: ``["<path> (deleted) x3", ...]``. A removed cache directory must
    not stay allocated (and hold descriptors) for the life of the process.
    """
    counts: Counter[str] = Counter()
    with contextlib.suppress(FileNotFoundError):  # no /proc: nothing to report
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith(directory.rstrip("/") + "/") and target.endswith("(deleted)"):
                    counts[target] += 1
    return [f"{target} x{count}" for target, count in sorted(counts.items())]


def _compare(got: bytes, data: bytes, start: int, end: int) -> str | None:
    """Return ``None`` if ``got`` is exactly ``data[start:end]``, else what differs."""
    expected = data[start:end]
    if got == expected:
        return None
    if len(got) != len(expected):
        return f"[{start}, {end}): got {len(got)} bytes, expected {len(expected)}"
    first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    return f"[{start}, {end}): {len(got)} bytes, first difference at offset {start + first}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.chaos.soak_worker CONFIG_JSON", file=sys.stderr)
        return 2
    config_data = json.loads(argv[0])
    name = str(config_data.pop("name"))
    config = PodConfig(**config_data)
    objects = [(spec, object_bytes(spec)) for spec in make_objects(config.seed)]
    fs = make_pod(config)
    try:
        print("ready", flush=True)
        line = sys.stdin.readline()
        if not line:  # the test went away
            return 1
        start_at, stop_at = (float(word) for word in line.split())
        # A read hung beyond every budget: dump all stacks to stderr and exit, never linger.
        faulthandler.dump_traceback_later(max(1.0, stop_at - time.time()) + 60.0, exit=True)
        reader = Reader(name, fs, objects, config.seed, start_at)
        tally = reader.run(lambda: time.time() < stop_at)
        settle_s = settle(reader)
        faulthandler.cancel_dump_traceback_later()
        report = {
            "tally": tally.to_json(),
            "settle_s": settle_s,
            "stats": fs.stats(),
            "held_deleted_files": held_deleted_files(config.disk_dir),
        }
        print(json.dumps(report), flush=True)
    finally:
        fs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
