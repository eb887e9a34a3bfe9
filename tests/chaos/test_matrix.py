"""Chaos: the rows of the fault matrix (DESIGN section 6) against real processes, each asserting
the seven invariants:

1. every read returns exactly the origin's bytes (sha256);
2. added latency stays within the row's bound;
3. the degradation bumps its named counter;
4. one WARNING per episode (no floods);
5. after the fault clears, the tier serves hits again within one breaker cooldown;
6. no leaked threads or file descriptors (sockets included) once the pods are closed;
7. a filesystem can be constructed while the tier is down.

The rows (DESIGN section 6), one test each:

- Redis killed (SIGKILL), hung (SIGSTOP), slow (latency proxy), reset and truncated replies
  (proxy), OOM and READONLY (server config: writes refused, reads go on), LOADING (restarted
  with its data and loading it slowly: every command refused at once), wrong values (garbage
  written under the keys);
- disk full and out of inodes (a tmpfs remounted to what it uses), corrupt files, the directory
  deleted, read-only / unwritable (EACCES) / not a directory at start, hung (every call blocks);
- origin 503 burst, truncated body, object overwritten mid-read; everything down at once.

For the origin rows the "tier" is the origin: invariant 5 is that the tiers serve hits again once
the origin answers, invariant 7 that a pod is constructed while it fails, and the overwrite row
logs no WARNING at all (a new version is not a degradation) but counts ``changed``.

Start-up faults (read-only, EACCES, not a directory) are injected before the pods exist: the
kernel refuses to remount a tmpfs read-only while the database is open for writing, and a
directory that cannot be opened is a fault of the start. As root, permission bits do not apply,
so EACCES is injected as the PermissionError an unprivileged process gets, and the test says so
on the terminal. A row that needs a tmpfs mount fails, saying so, where mounting is impossible.

The world of each test: the S3 server behind an HTTP fault proxy (the origin), a redis-server
behind a TCP fault proxy, a disk tier in a directory of its own (a tmpfs for the rows that need
one). Pods share one s3fs client (its connection pool belongs to the world, not to a pod).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import s3fs

from tests.helpers import HMAC_KEY
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.testing import HttpFaultProxy, RedisServer, S3Server, TcpFaultProxy

pytestmark = pytest.mark.chaos

BLOCK = 256 * 1024
COOLDOWN_S = 0.5
BUDGET_S = 0.1  # Redis and disk time budget
SLACK_S = 1.0  # scheduling slack on a shared 2-core machine; a stall would be many seconds
# The tiers' budget in rows that test no tier's timing (the origin rows, refused writes): a disk
# or Redis call over 100 ms on the loaded 2-core CI machine (seen in a row, twice in a row)
# opened the breaker, a second WARNING for a timing these rows do not test (the hung and slow
# tier rows do).
ORIGIN_ROW_BUDGET_S = 1.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    s3: S3Server
    http: HttpFaultProxy
    redis: RedisServer
    tcp: TcpFaultProxy
    disk_dir: Path
    bucket: str
    client: Any
    objects: dict[str, bytes] = field(default_factory=dict)
    pods: list[TieredFileSystem] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "block_size_bytes": BLOCK,
            "memory_bytes": 0,  # every read reaches the tiers under test
            "disk_dir": str(self.disk_dir),
            "disk_timeout_s": BUDGET_S,
            "redis_url": self.tcp.url_for(),
            "redis_hmac_key": HMAC_KEY,
            "redis_timeout_s": BUDGET_S,
            "redis_prefix": f"m{uuid.uuid4().hex[:8]}:",
            "breaker_failures": 2,
            "breaker_cooldown_s": COOLDOWN_S,
            "origin_retries": 4,
            **overrides,
        }
        return Settings(**options)

    def pod(self, settings: Settings) -> TieredFileSystem:
        fs = TieredFileSystem(fs=self.client, settings=settings, tiers=default_tiers(settings))
        self.pods.append(fs)
        return fs

    def read_all(self, fs: TieredFileSystem, bound_s: float) -> None:
        """Invariants 1 and 2: read footers and data ranges, exact bytes, latency bound."""
        for path, data in self.objects.items():
            for start, end in ((-65536, None), (BLOCK // 3, 2 * BLOCK + 5)):
                began = time.monotonic()
                got = fs.read_range(path, start, end)
                took = time.monotonic() - began
                assert sha(got) == sha(data[start:end]), (path, start, end)
                assert took <= bound_s, f"{path} [{start}, {end}) took {took:.3f} s > {bound_s} s"


@pytest.fixture
def world(s3_server: S3Server, redis_fresh: RedisServer, tmp_path: Path) -> Iterator[World]:
    bucket = f"chaos-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    objects = {}
    for i in range(3):
        key = f"t/part-{i:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        data = os.urandom(BLOCK * 3 + 1000 * (i + 1))
        s3_server.put_object(bucket, key, data)
        objects[f"{bucket}/{key}"] = data
    with (
        HttpFaultProxy(s3_server.endpoint_url) as http,
        TcpFaultProxy(redis_fresh.host, redis_fresh.port) as tcp,
    ):
        client = s3fs.S3FileSystem(
            **s3_server.storage_options(http.url),
            config_kwargs={"retries": {"total_max_attempts": 1}},
            skip_instance_cache=True,
        )
        client.retries = 1
        client.cat_file(next(iter(objects)), start=0, end=1)  # the pool exists before the baseline
        world = World(s3_server, http, redis_fresh, tcp, tmp_path / "disk", bucket, client, objects)
        try:
            yield world
        finally:
            for fs in world.pods:
                fs.close()


def _socket_ports() -> dict[str, set[int]]:
    """Socket inode -> the local and remote TCP ports, from /proc/net/tcp{,6}."""
    ports: dict[str, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                ports[inode] = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
    return ports


def tiercache_fds(world: World) -> list[str]:
    """The descriptors tiercache's tiers hold: disk-tier files and sockets to Redis.

    The world's own s3fs client keeps a pool of keep-alive connections that belong to the world
    (and the fault proxies run in this process), so they are not counted.
    """
    ports = _socket_ports()
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with_suppress = os.path.join("/proc/self/fd", fd)
        try:
            target = os.readlink(with_suppress)
        except OSError:
            continue
        if target.startswith(str(world.disk_dir)):
            held.append(target)
        elif target.startswith("socket:["):
            inode = target[len("socket:[") : -1]
            if world.tcp.port in ports.get(inode, set()):
                held.append(target)
    return held


def tiercache_threads() -> list[str]:
    """The names of this process's threads but the HTTP fault proxy's connection handlers.

    The proxy serves each keep-alive connection of the world's own s3fs client (which the pods
    read through) on a thread of its own; that pool belongs to the world and grows when reads
    overlap (more often on a loaded machine), so its threads are not tiercache's.
    """
    return [t.name for t in threading.enumerate() if "process_request_thread" not in t.name]


class Episode:
    """Invariants 3 to 6 around one fault: counters, WARNINGs, recovery, leaks."""

    def __init__(self, caplog: pytest.LogCaptureFixture, world: World) -> None:
        self.caplog = caplog
        self.threads = len(tiercache_threads())
        self.fds = len(tiercache_fds(world))
        caplog.set_level(logging.INFO, logger="tiercache")

    def warnings(self) -> list[str]:
        return [
            r.getMessage()
            for r in self.caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("tiercache")
        ]

    def one_warning(self) -> None:
        """Invariant 4: exactly one WARNING for the episode."""
        records = [
            f"{r.relativeCreated / 1000:.3f}s {r.threadName} {r.name}: {r.getMessage()}"
            for r in self.caplog.records
            if r.name.startswith("tiercache")
        ]
        assert len(self.warnings()) == 1, records

    def no_leaks(self, world: World) -> None:
        """Invariant 6: after the pods are closed, threads and descriptors are back."""
        for fs in world.pods:
            fs.close()
        world.pods.clear()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            threads = len(tiercache_threads())
            fds = tiercache_fds(world)
            if threads <= self.threads and len(fds) <= self.fds:
                return
            time.sleep(0.1)
        names = sorted(tiercache_threads())
        raise AssertionError(
            f"leaked: threads {self.threads} -> {len(names)} ({names}), "
            f"descriptors {self.fds} -> {tiercache_fds(world)}"
        )


def failed_or_bypassed(stats: dict[str, Any]) -> bool:
    """The counter of a tier that refuses or errors: errors, rejections, or disabled at start."""
    return bool(stats["errors"] + stats["rejected"] > 0 or stats["state"] == "disabled")


def timed_out_or_bypassed(stats: dict[str, Any]) -> bool:
    """The counter of a tier that does not answer in time (or could not start)."""
    return bool(stats["timeouts"] > 0 or stats["state"] == "disabled")


def tier(fs: TieredFileSystem, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = fs.stats()["tiers"][name]
    return entry


def recovers(
    world: World, settings: Settings, name: str, running: TieredFileSystem | None = None
) -> None:
    """Invariant 5: within one cooldown of the fault clearing, the tier serves hits again, to a
    new process and to ``running``, the process that lived through the fault."""
    time.sleep(COOLDOWN_S * 1.2)
    filler = world.pod(settings)
    world.read_all(filler, bound_s=30)
    filler.chain.fills.join()
    reader = world.pod(settings)
    world.read_all(reader, bound_s=30)
    assert tier(reader, name)["hits"] > 0, tier(reader, name)
    if running is not None:
        before = tier(running, name)["hits"]
        world.read_all(running, bound_s=30)
        after = tier(running, name)
        assert after["hits"] > before, after
        assert after["state"] == "closed", after


def run_row(
    world: World,
    caplog: pytest.LogCaptureFixture,
    *,
    inject: Callable[[], None],
    clear: Callable[[], None],
    tier_name: str,
    counter: Callable[[dict[str, Any]], bool],
    bound_s: float,
    settings: Settings | None = None,
    warm: bool = True,
    at_start: bool = False,
) -> TieredFileSystem:
    """One row: warm the tiers, inject, read, check the invariants, clear, recover, no leaks.

    ``at_start``: a start-up fault, injected before the running process starts (and nothing is
    warmed: the tier could not be written).
    """
    if settings is None:  # only the tier under test below RAM, so every miss reaches it
        other = {"redis": {"disk_dir": None}, "disk": {"redis_url": None}}[tier_name]
        settings = world.settings(**other)
    if warm and not at_start:
        warmer = world.pod(settings)
        world.read_all(warmer, bound_s=30)
        warmer.chain.fills.join()
        warmer.close()
        world.pods.remove(warmer)
    episode = Episode(caplog, world)
    if at_start:
        inject()
    running = world.pod(settings)  # a process that was running when the fault struck
    if not at_start:
        inject()
    try:
        for _ in range(3):
            world.read_all(running, bound_s=bound_s)
        running.chain.fills.join()
        stats = tier(running, tier_name)
        assert counter(stats), stats  # invariant 3
        episode.one_warning()
        during = world.pod(settings)  # invariant 7: constructed while the tier is down
        world.read_all(during, bound_s=bound_s)
    finally:
        clear()
    recovers(world, settings, tier_name, running)
    episode.no_leaks(world)
    return running


def test_redis_killed(world: World, caplog: pytest.LogCaptureFixture) -> None:
    run_row(
        world,
        caplog,
        inject=world.redis.kill,
        clear=world.redis.restart,
        tier_name="redis",
        counter=failed_or_bypassed,
        bound_s=SLACK_S,
    )


def test_redis_hung(world: World, caplog: pytest.LogCaptureFixture) -> None:
    run_row(
        world,
        caplog,
        inject=world.redis.stop,  # SIGSTOP
        clear=world.redis.cont,  # SIGCONT
        tier_name="redis",
        counter=timed_out_or_bypassed,
        bound_s=BUDGET_S * 2 + SLACK_S,  # info and block lookups: one budget per read
    )


def test_redis_slow(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def inject() -> None:
        world.tcp.latency_s = BUDGET_S * 3

    def clear() -> None:
        world.tcp.latency_s = 0.0

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=timed_out_or_bypassed,
        bound_s=BUDGET_S * 2 + SLACK_S,
    )


def test_redis_reset(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def inject() -> None:
        world.tcp.reset_new = True
        world.tcp.reset()

    def clear() -> None:
        world.tcp.reset_new = False

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=failed_or_bypassed,
        bound_s=SLACK_S,
    )


def test_redis_wrong_value(world: World, caplog: pytest.LogCaptureFixture) -> None:
    settings = world.settings(disk_dir=None)

    def inject() -> None:
        with world.redis.client() as client:
            for name in client.keys(settings.redis_prefix + "*"):
                if b":b:" in name:
                    for f in client.hkeys(name):
                        client.hset(name, f, b"garbage")
                elif name.endswith(b":i"):
                    client.set(name, b"garbage")

    run_row(
        world,
        caplog,
        inject=inject,
        clear=lambda: None,
        tier_name="redis",
        counter=lambda s: s["corrupt"] > 0,
        bound_s=SLACK_S,
        settings=settings,
    )


def test_disk_corrupt(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def inject() -> None:
        for path in (world.disk_dir / "tiercache-v1").rglob("*.val"):
            with open(path, "r+b") as f:
                f.seek(100)
                f.write(b"\xff\x00\xff")

    run_row(
        world,
        caplog,
        inject=inject,
        clear=lambda: None,
        tier_name="disk",
        counter=lambda s: s["corrupt"] > 0,
        bound_s=SLACK_S,
    )


def test_disk_directory_deleted(world: World, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    # Right after the reopen, every guard and fill thread opens its own SQLite connection to
    # the new database on its first call, inside the call's budget. On the loaded 2-core CI
    # machine two disk calls just after the reopen took over 100 ms once, which opened the
    # breaker: a second WARNING, for a timing this row does not test (test_disk_hung does). A
    # budget that such calls fit in under load keeps this row about the deleted directory.
    budget_s = 1.0
    run_row(
        world,
        caplog,
        inject=lambda: shutil.rmtree(world.disk_dir),
        clear=lambda: None,
        tier_name="disk",
        counter=lambda s: s["reopens"] > 0,
        bound_s=SLACK_S + budget_s,
        settings=world.settings(redis_url=None, disk_timeout_s=budget_s),
    )


def test_origin_503_burst(world: World, caplog: pytest.LogCaptureFixture) -> None:
    settings = world.settings(
        disk_timeout_s=ORIGIN_ROW_BUDGET_S, redis_timeout_s=ORIGIN_ROW_BUDGET_S
    )
    episode = Episode(caplog, world)
    world.http.fail_next(3, status=503, methods=("GET", "HEAD"))
    fs = world.pod(settings)
    world.read_all(fs, bound_s=settings.origin_timeout_s)
    origin = fs.stats()["origin"]
    assert origin["retries"] >= 3
    assert world.http.injected() == 3
    episode.one_warning()
    assert_tiers_hold_exact_bytes(world, settings)
    recovers(world, settings, "disk", running=fs)
    episode.no_leaks(world)


def test_origin_truncated_body(world: World, caplog: pytest.LogCaptureFixture) -> None:
    settings = world.settings(
        disk_timeout_s=ORIGIN_ROW_BUDGET_S, redis_timeout_s=ORIGIN_ROW_BUDGET_S
    )
    episode = Episode(caplog, world)
    world.http.truncate_next(2, keep_bytes=1000)
    fs = world.pod(settings)
    world.read_all(fs, bound_s=settings.origin_timeout_s)
    assert fs.stats()["origin"]["retries"] >= 1
    episode.one_warning()
    assert_tiers_hold_exact_bytes(world, settings)
    recovers(world, settings, "disk", running=fs)
    episode.no_leaks(world)


def assert_tiers_hold_exact_bytes(world: World, settings: Settings) -> None:
    """Invariant 3: nothing partial was cached: a new pod reads what the fault left in the tiers
    (disk blocks, Redis footers), and gets exactly the origin's bytes."""
    reader = world.pod(settings)
    world.read_all(reader, bound_s=30)


def test_origin_object_overwritten_mid_read(world: World, caplog: pytest.LogCaptureFixture) -> None:
    settings = world.settings(memory_bytes=64 << 20, disk_dir=None, redis_url=None)
    episode = Episode(caplog, world)
    path = next(iter(world.objects))
    old = world.objects[path]
    fs = world.pod(settings)
    assert fs.read_range(path, 0, 1) == old[:1]  # info and block 0 of the old version
    new = os.urandom(len(old))
    world.s3.put_object(world.bucket, path.split("/", 1)[1], new)
    began = time.monotonic()
    got = fs.read_range(path, 0, len(old))
    assert time.monotonic() - began <= settings.origin_timeout_s
    assert sha(got) == sha(new)  # one version only: all new, never old + new
    assert fs.stats()["origin"]["changed"] == 1
    assert episode.warnings() == []  # a new version is not a degradation: nothing to warn of
    world.objects[path] = new
    assert fs.read_range(path, 0, len(new)) == new  # the new version is what is cached now
    assert fs.stats()["origin"]["changed"] == 1
    episode.no_leaks(world)


def test_everything_down_at_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    settings = world.settings()
    world.redis.kill()
    world.disk_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(world.disk_dir)
    world.disk_dir.write_bytes(b"not a directory")  # the disk tier cannot start
    world.http.fail_next(2, status=503, methods=("GET", "HEAD"))
    try:
        fs = world.pod(settings)  # constructing succeeds with every tier down
        assert tier(fs, "redis")["state"] == "disabled"
        assert tier(fs, "disk")["state"] == "disabled"
        world.http.reset_counters()
        world.read_all(fs, bound_s=settings.origin_timeout_s)
        # Bounded origin load: one GET per block per miss (plus the retried ones), one HEAD per
        # object; memory is off, so each of the 2 reads per object misses its blocks once.
        blocks = sum(1 + 3 for _ in world.objects)  # the tail block + blocks 0..2
        # At most: one HEAD per object, one GET per block, and the 2 requests answered 503.
        requests = world.http.requests("GET") + world.http.requests("HEAD")
        assert requests <= blocks + len(world.objects) + 2
    finally:
        world.disk_dir.unlink()
        world.redis.restart()
    recovers(world, world.settings(disk_dir=None), "redis")
    recovers(world, world.settings(redis_url=None), "disk")


def _redis_config(world: World, *args: str) -> None:
    with world.redis.client() as client:
        client.execute_command(*args)


def test_redis_oom_refuses_writes_reads_go_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    settings = world.settings(disk_dir=None, redis_timeout_s=ORIGIN_ROW_BUDGET_S)

    def inject() -> None:
        _redis_config(world, "CONFIG", "SET", "maxmemory-policy", "noeviction")
        _redis_config(world, "CONFIG", "SET", "maxmemory", "1")
        # New entries: what the running pod reads next must be written, and is refused.
        world.objects.update(_more_objects(world))

    def clear() -> None:
        _redis_config(world, "CONFIG", "SET", "maxmemory", "0")

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=lambda s: s["refused_writes"] > 0,
        bound_s=SLACK_S,
        settings=settings,
    )


def test_redis_readonly_replica_refuses_writes_reads_go_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    settings = world.settings(disk_dir=None, redis_timeout_s=ORIGIN_ROW_BUDGET_S)

    def inject() -> None:
        _redis_config(world, "REPLICAOF", "127.0.0.1", "1")  # a master that never answers
        world.objects.update(_more_objects(world))

    def clear() -> None:
        _redis_config(world, "REPLICAOF", "NO", "ONE")

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=lambda s: s["refused_writes"] > 0,
        bound_s=SLACK_S,
        settings=settings,
    )


LOADING_S = 2.0  # the load (3-4 s in all) outlasts the row's reads (0.2 s here) many times over


def test_redis_loading(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Redis restarted with its data and loading it: every command is answered -LOADING at once.

    The tier fails fast (no time budget spent), counts the replies in ``loading`` and lets its
    breaker open; after the load, a probe finds the same data and the tier serves hits again.
    """
    episode: dict[str, float] = {}

    def inject() -> None:
        world.redis.load_slowly(LOADING_S)
        episode["loading_since"] = time.monotonic()

    def clear() -> None:
        # The fault lasted the whole episode: the reads above all met a loading server.
        assert world.redis.is_loading(), (
            f"the load ended {time.monotonic() - episode['loading_since']:.1f} s in, before the "
            "reads were done: raise LOADING_S"
        )
        world.redis.wait_loaded()

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=lambda s: s["loading"] > 0 and s["state"] == "open",
        bound_s=SLACK_S,
    )


def test_redis_truncated_reply(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def inject() -> None:
        world.tcp.limit_data = 1000  # replies are cut after 1000 bytes: footers are larger
        world.tcp.reset()

    def clear() -> None:
        world.tcp.limit_data = None

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="redis",
        counter=failed_or_bypassed,
        bound_s=SLACK_S,
    )


def _more_objects(world: World) -> dict[str, bytes]:
    objects = {}
    for i in range(2):
        key = f"t/more-{i:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        data = os.urandom(BLOCK * 3 + 777)
        world.s3.put_object(world.bucket, key, data)
        objects[f"{world.bucket}/{key}"] = data
    return objects


def test_disk_full(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiercache.testing.servers.tmpfs import remount, tmpfs

    with tmpfs(world.disk_dir, size_bytes=64 << 20) as mounted:
        if mounted is None:
            with capsys.disabled():
                print("\n[chaos] cannot mount tmpfs here: the disk-full row needs root")
            pytest.fail("the disk-full row needs a tmpfs mount (run as root)")

        def inject() -> None:
            used = os.statvfs(world.disk_dir)
            used_bytes = (used.f_blocks - used.f_bfree) * used.f_frsize
            remount(world.disk_dir, size_bytes=used_bytes + 64 * 1024)
            world.objects.update(_more_objects(world))

        def clear() -> None:
            remount(world.disk_dir, size_bytes=64 << 20)

        run_row(
            world,
            caplog,
            inject=inject,
            clear=clear,
            tier_name="disk",
            counter=lambda s: s["full_skips"] > 0,
            bound_s=SLACK_S,
        )


def say(capsys: pytest.CaptureFixture[str], message: str) -> None:
    """Tell the terminal how a fault is injected when it cannot be the real thing."""
    with capsys.disabled():
        print(f"\n[chaos] {message}")


def needs_mount(mounted: Path | None, capsys: pytest.CaptureFixture[str], row: str) -> None:
    """A tmpfs row cannot run without a mount: fail, saying so (never a silent skip)."""
    if mounted is None:
        say(capsys, f"cannot mount tmpfs here: the {row} row needs root")
        pytest.fail(f"the {row} row needs a tmpfs mount (run as root)")


def open_failure(reason: str) -> Callable[[dict[str, Any]], bool]:
    """The counter of a disk tier that cannot open its directory, and why."""

    def counted(stats: dict[str, Any]) -> bool:
        return bool(
            stats["open_failures"] > 0
            and stats["state"] == "disabled"
            and reason in str(stats["last_error"])
        )

    return counted


def test_disk_no_inodes(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiercache.testing.servers.tmpfs import remount, tmpfs

    with tmpfs(world.disk_dir, size_bytes=64 << 20, inodes=100_000) as mounted:
        needs_mount(mounted, capsys, "no-inodes")

        def inject() -> None:
            fs = os.statvfs(world.disk_dir)
            # tmpfs refuses fewer inodes than are used: leave one free, the next fills take it.
            remount(world.disk_dir, inodes=fs.f_files - fs.f_ffree + 1)
            world.objects.update(_more_objects(world))

        def clear() -> None:
            remount(world.disk_dir, inodes=100_000)

        run_row(
            world,
            caplog,
            inject=inject,
            clear=clear,
            tier_name="disk",
            counter=lambda s: s["full_skips"] > 0 and "full" in str(s["last_error"]),
            bound_s=SLACK_S,
        )


def test_disk_read_only_at_start(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only directory at start. A start-up fault: the kernel refuses to remount a tmpfs
    read-only while the tier's database is open for writing, so the mount is read-only before
    any pod exists, and made writable again to clear the fault."""
    from tiercache.testing.servers.tmpfs import remount, tmpfs

    with tmpfs(world.disk_dir, size_bytes=16 << 20, read_only=True) as mounted:
        needs_mount(mounted, capsys, "read-only")
        run_row(
            world,
            caplog,
            inject=lambda: None,  # mounted read-only above, before any pod
            clear=lambda: remount(world.disk_dir, read_only=False),
            tier_name="disk",
            counter=open_failure("Read-only file system"),
            bound_s=SLACK_S,
            at_start=True,
        )


def test_disk_unwritable_at_start(
    world: World,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory the process may not write to (EACCES) at start."""
    denied = {"on": False}
    if os.geteuid() == 0:
        # Root ignores permission bits: inject the EACCES an unprivileged process gets.
        say(capsys, "running as root: injecting PermissionError(EACCES) instead of chmod 0555")
        import diskcache

        real_init = diskcache.Cache.__init__

        def init(self: Any, directory: str, *args: Any, **kwargs: Any) -> None:
            if denied["on"]:
                raise PermissionError(errno.EACCES, "Permission denied (injected)", directory)
            real_init(self, directory, *args, **kwargs)

        monkeypatch.setattr(diskcache.Cache, "__init__", init)

        def inject() -> None:
            denied["on"] = True

        def clear() -> None:
            denied["on"] = False

    else:

        def inject() -> None:
            world.disk_dir.mkdir(parents=True, exist_ok=True)
            world.disk_dir.chmod(0o555)

        def clear() -> None:
            world.disk_dir.chmod(0o755)

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="disk",
        counter=open_failure("Permission denied"),
        bound_s=SLACK_S,
        at_start=True,
    )


def test_disk_not_a_directory_at_start(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def inject() -> None:
        world.disk_dir.write_bytes(b"not a directory")

    def clear() -> None:
        world.disk_dir.unlink()  # the operator fixes it: the tier opens at its next probe

    run_row(
        world,
        caplog,
        inject=inject,
        clear=clear,
        tier_name="disk",
        counter=open_failure("NotADirectoryError"),
        bound_s=SLACK_S,
        at_start=True,
    )


def test_disk_hung(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung or very slow device: every disk-tier call blocks (up to 5 s) until it clears."""
    from tiercache import DiskTier

    hung = threading.Event()
    release = threading.Event()
    real_get, real_put = DiskTier.get, DiskTier.put

    def slow_get(self: DiskTier, key: Any, /) -> bytes | None:
        if hung.is_set():
            release.wait(5)
        return real_get(self, key)

    def slow_put(self: DiskTier, key: Any, data: bytes, /) -> None:
        if hung.is_set():
            release.wait(5)
        real_put(self, key, data)

    monkeypatch.setattr(DiskTier, "get", slow_get)
    monkeypatch.setattr(DiskTier, "put", slow_put)

    def clear() -> None:
        hung.clear()
        release.set()  # the calls still blocked return, and their threads end

    run_row(
        world,
        caplog,
        inject=hung.set,
        clear=clear,
        tier_name="disk",
        # one budget per read until the breaker opens, then refused at once
        counter=lambda s: s["timeouts"] > 0 and s["rejected"] > 0,
        bound_s=BUDGET_S * 2 + SLACK_S,
    )
