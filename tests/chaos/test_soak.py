"""Chaos: the soak test. Every kind of fault, on a seeded random schedule, under concurrent reads.

An S3 server behind an HTTP fault proxy (the origin), a Redis server behind a TCP fault proxy,
and a disk tier on a small tmpfs; 8 reader threads share one pod in this process and 2 worker
processes (``tests/chaos/soak_worker.py``) each run their own pod on the same disk directory and
Redis. Every read is checked byte for byte against the object's content and timed. Meanwhile a
seeded schedule injects, every 0.5-2 s, one fault of these kinds:

- ``redis_kill``: SIGKILL the redis-server, start it again (empty) 0.5-2 s later;
- ``redis_stop``: SIGSTOP it, SIGCONT 0.3-1.5 s later;
- ``redis_latency``: the TCP proxy delays Redis replies by 20-300 ms (below and above the
  Redis time budget) for 0.5-2 s;
- ``redis_blackhole``: the TCP proxy forwards nothing for 0.3-1.5 s;
- ``redis_reset``: the TCP proxy resets every open connection, and every new one for 0.3-1 s;
- ``disk_full``: the tmpfs is remounted to the size it uses (no free block), then back;
- ``disk_corrupt``: bytes flipped in the payload of up to 3 value files;
- ``disk_removed``: the cache directory deleted (``shutil.rmtree``) under the running pods;
- ``origin_503``: the HTTP proxy answers the next 2-4 GETs with 503 SlowDown.

Faults of different resources (Redis server, TCP proxy, disk space, disk files, origin)
overlap; the kinds come from a seeded deck (every kind once per round, shuffled), so a seed
fixes the sequence of faults. Faults stop 5 s before the end and everything is cleared, so
the system settles while the readers go on.

The origin stays up throughout: a 503 burst is at most 4 GETs, the next one comes at least
2 s later, and a read gets 9 attempts (``TIERCACHE_ORIGIN_RETRIES=8``). So the test demands
what the design promises: no wrong bytes, no failed reads, a bounded latency (see
``docs/reliability.md``, "Soak run"), every fault kind injected; and once the faults are
cleared, every tier of every pod serving hits again and, within a few breaker cooldowns of the
load's end, closed (a tier call that misses its budget on this loaded machine is a timeout like
any other; recovery is what is promised), with no file of a removed cache directory still held
open (DESIGN section 6, invariant 6).

It prints one summary line. The full report (the summary, the first problems, the slowest
reads, the fault log, every pod's ``stats()``) is the failure message, and is also written to
``soak-report.txt`` in the test's ``tmp_path``.

``TIERCACHE_SOAK_SECONDS`` (default 60) sets the duration, ``TIERCACHE_SOAK_SEED`` the seed
(default 1124); the seed fixes the sequence of faults and reads, not their timing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.soak_worker import (
    BREAKER_COOLDOWN_S,
    BUCKET,
    ORIGIN_TIMEOUT_S,
    ObjectSpec,
    PodConfig,
    Reader,
    Tally,
    held_deleted_files,
    make_objects,
    make_pod,
    object_bytes,
    settle,
)
from tiercache.testing import HttpFaultProxy, RedisServer, S3Server, TcpFaultProxy
from tiercache.testing.servers.tmpfs import remount, tmpfs
from tiercache.tiers.diskdir import SUBDIR

SOAK_SECONDS = float(os.environ.get("TIERCACHE_SOAK_SECONDS", "60"))
SEED = int(os.environ.get("TIERCACHE_SOAK_SEED", "1124"))

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(max(120.0, SOAK_SECONDS + 90.0))]

ROOT = Path(__file__).resolve().parents[2]
THREADS = 8
PROCESSES = 2
SETTLE_S = 5.0  # no fault in the last seconds: every tier recovers while the readers go on
TMPFS_BYTES = 64 << 20  # room for the disk tier's 24 MiB budget, its database and its churn
FAULT_GAP_S = (0.5, 2.0)  # a new fault every 0.5-2 s
BURST_MAX = 4  # 503s per burst; a read has ORIGIN_RETRIES + 1 = 9 attempts
BURST_SPACING_S = 2.0  # between two bursts, so that no read meets more than two of them
WORKER_READY_S = 60.0
# The p99 latency bound, and why (docs/reliability.md, "Soak run"): a read pays a tier's time
# budget at most once per tier while its breaker is closed (Redis + disk: 0.2 s), a 503 burst
# costs at most 4 backoffs (0.05 + 0.1 + 0.2 + 0.4 s = 0.75 s), and a block fetch from the origin
# takes tens of ms on this shared 2-core machine. 2 s covers their sum with room for the machine's
# noise. The hard bound of any read is the origin deadline (10 s): no read may come near it.
P99_BOUND_S = 2.0
MAX_BOUND_S = ORIGIN_TIMEOUT_S

FAULT_KINDS = (
    "redis_kill",
    "redis_stop",
    "redis_latency",
    "redis_blackhole",
    "redis_reset",
    "disk_full",
    "disk_corrupt",
    "disk_removed",
    "origin_503",
)
# Faults of one resource never overlap; faults of different resources do.
RESOURCE = {
    "redis_kill": "redis_server",
    "redis_stop": "redis_server",
    "redis_latency": "redis_proxy",
    "redis_blackhole": "redis_proxy",
    "redis_reset": "redis_proxy",
    "disk_full": "disk_space",
    "disk_corrupt": "disk_files",
    "disk_removed": "disk_files",
    "origin_503": "origin",
}


@dataclass
class Rig:
    """The services the faults are injected into."""

    s3: S3Server
    http_proxy: HttpFaultProxy
    redis: RedisServer
    tcp_proxy: TcpFaultProxy
    disk_dir: Path
    on_tmpfs: bool


@dataclass
class Active:
    kind: str
    clear: Callable[[], None]
    clear_at: float


class FaultSchedule:
    """Injects faults from a seeded deck every 0.5-2 s; clears each after its hold time.

    Args:
        rig: The services.
        seed: Seed of the deck, the gaps, the holds and the faults' parameters.
        started: ``time.time()`` at the start of the soak (event times are relative to it).
    """

    def __init__(self, rig: Rig, seed: int, started: float) -> None:
        self.rig = rig
        self.rng = random.Random(f"faults:{seed}")
        self.started = started
        self.kinds = [k for k in FAULT_KINDS if rig.on_tmpfs or k != "disk_full"]
        self.counts: Counter[str] = Counter(dict.fromkeys(self.kinds, 0))
        self.events: list[str] = []
        self.errors: list[str] = []
        self.active: dict[str, Active] = {}
        self._deck: list[str] = []
        self._lock = threading.Lock()

    def log(self, text: str) -> None:
        with self._lock:
            self.events.append(f"t={time.time() - self.started:6.2f}s {text}")

    def run(self, until: float) -> None:
        """Inject and clear faults until ``until`` (``time.time()``), then clear every fault."""
        try:
            next_at = time.time() + self.rng.uniform(*FAULT_GAP_S)
            kind = self._deal()
            while time.time() < until:
                now = time.time()
                self._clear_due(now)
                if now >= next_at and RESOURCE[kind] not in self.active:
                    self._inject(kind)
                    kind = self._deal()
                    next_at = now + self.rng.uniform(*FAULT_GAP_S)
                time.sleep(0.01)
        finally:
            self.clear_all()

    def clear_all(self) -> None:
        for resource in list(self.active):
            self._clear(resource)

    def _deal(self) -> str:
        if not self._deck:
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def _clear_due(self, now: float) -> None:
        for resource, active in list(self.active.items()):
            if now >= active.clear_at:
                self._clear(resource)

    def _clear(self, resource: str) -> None:
        active = self.active.pop(resource)
        try:
            active.clear()
        except Exception as exc:  # the rig failed, not tiercache: the test cannot go on
            self.errors.append(
                f"clearing {active.kind}: {''.join(traceback.format_exception(exc))}"
            )
            raise
        self.log(f"clear  {active.kind}")

    def _inject(self, kind: str) -> None:
        inject: Callable[[], tuple[str, Callable[[], None], float] | None] = getattr(
            self, f"_{kind}"
        )
        try:
            done = inject()
        except Exception as exc:
            self.errors.append(f"injecting {kind}: {''.join(traceback.format_exception(exc))}")
            raise
        if done is None:
            self.log(f"inject {kind}: no effect (nothing to act on)")
            return
        detail, clear, hold_s = done
        self.counts[kind] += 1
        self.log(f"inject {kind}: {detail}")
        self.active[RESOURCE[kind]] = Active(kind, clear, time.time() + hold_s)

    # -- the faults: each returns (what it did, how to clear it, hold time), or None ----------

    def _redis_kill(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.5, 2.0)
        self.rig.redis.kill()
        return f"SIGKILL, restart in {hold:.2f}s", self.rig.redis.start, hold

    def _redis_stop(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.3, 1.5)
        self.rig.redis.stop()
        return f"SIGSTOP, SIGCONT in {hold:.2f}s", self.rig.redis.cont, hold

    def _redis_latency(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.5, 2.0)
        latency = self.rng.uniform(0.02, 0.3)
        proxy = self.rig.tcp_proxy
        proxy.latency_s = latency

        def clear() -> None:
            proxy.latency_s = 0.0

        return f"{latency * 1000:.0f} ms for {hold:.2f}s", clear, hold

    def _redis_blackhole(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.3, 1.5)
        proxy = self.rig.tcp_proxy
        proxy.blackhole = True

        def clear() -> None:
            proxy.blackhole = False

        return f"for {hold:.2f}s", clear, hold

    def _redis_reset(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.3, 1.0)
        proxy = self.rig.tcp_proxy
        proxy.reset_new = True
        proxy.reset()

        def clear() -> None:
            proxy.reset_new = False

        return f"open connections reset, new ones for {hold:.2f}s", clear, hold

    def _disk_full(self) -> tuple[str, Callable[[], None], float]:
        hold = self.rng.uniform(0.5, 2.0)
        mount = self.rig.disk_dir
        # tmpfs cannot shrink below what it holds: remount it to exactly that, leaving no free
        # block. The usage moves under the pods' writes, so try again if it grew meanwhile.
        for attempt in range(20):
            st = os.statvfs(mount)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            try:
                remount(mount, size_bytes=max(used, st.f_frsize) + attempt * 16 * st.f_frsize)
                break
            except OSError:
                continue
        else:
            raise RuntimeError(f"could not remount {mount} to its used size")

        def clear() -> None:
            remount(mount, size_bytes=TMPFS_BYTES)

        return f"tmpfs remounted to its used {used >> 10} KiB for {hold:.2f}s", clear, hold

    def _disk_corrupt(self) -> tuple[str, Callable[[], None], float] | None:
        # os.walk, not rglob: it skips directories that vanish while it walks (eviction).
        files = sorted(
            Path(top) / name
            for top, _, names in os.walk(self.rig.disk_dir / SUBDIR)
            for name in names
            if name.endswith(".val")
        )
        if not files:
            return None
        flipped = []
        for path in self.rng.sample(files, min(3, len(files))):
            offset = 56 + self.rng.randrange(1 << 18)  # in the payload, past the 56-byte header
            with contextlib.suppress(OSError):  # evicted or removed meanwhile
                with open(path, "r+b") as f:
                    size = f.seek(0, os.SEEK_END)
                    if size <= 56:
                        continue
                    offset = min(offset, size - 1)
                    f.seek(offset)
                    byte = f.read(1)
                    f.seek(offset)
                    f.write(bytes([byte[0] ^ 0xFF]))
                flipped.append(f"{path.name}@{offset}")
        if not flipped:
            return None
        return f"flipped a byte in {', '.join(flipped)}", lambda: None, 0.3

    def _disk_removed(self) -> tuple[str, Callable[[], None], float] | None:
        root = self.rig.disk_dir / SUBDIR
        if not root.exists():
            return None
        shutil.rmtree(root, ignore_errors=True)
        return f"rm -rf {root}", lambda: None, 0.3

    def _origin_503(self) -> tuple[str, Callable[[], None], float]:
        count = self.rng.randint(2, BURST_MAX)
        proxy = self.rig.http_proxy
        proxy.fail_next(count)

        def clear() -> None:
            proxy.fail_next(0)  # anything not yet taken: no burst outlives its spacing

        return f"next {count} GETs answer 503 SlowDown", clear, BURST_SPACING_S


class Worker:
    """A reader process with its own pod; its stdout is read by a thread into a queue."""

    def __init__(self, name: str, config: PodConfig, stderr_path: Path) -> None:
        self.name = name
        self.stderr_path = stderr_path
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("TIERCACHE_", "AWS_"))
        }
        environment.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        argument = json.dumps({"name": name, **config.__dict__})
        # A file, not a pipe, so a chatty worker never blocks on a pipe nobody reads; the child
        # holds its own copy of the descriptor.
        stderr = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.soak_worker", argument],
                cwd=ROOT,
                env=environment,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        finally:
            os.close(stderr)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, name=f"soak-{name}-stdout", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, timeout_s: float) -> str:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no output within {timeout_s:.0f} s") from None
        if line is None:
            raise AssertionError(f"{self.name} exited early:\n{self.stderr_tail()}")
        return line

    def go(self, start_at: float, stop_at: float) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(f"{start_at} {stop_at}\n")
        stdin.close()

    def stderr_tail(self) -> str:
        return self.stderr_path.read_bytes()[-4000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """Kill the process (by its id) if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._thread.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def thread_stacks(threads: list[threading.Thread]) -> str:
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        if frame is not None:
            parts.append(f"--- {thread.name}\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


def join_all(threads: list[threading.Thread], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def start_rig(stack: contextlib.ExitStack, base: Path) -> Rig:
    """Mount the disk directory and start the services; each is stopped when ``stack`` closes."""
    point = base / "disk"
    mounted = stack.enter_context(tmpfs(point, size_bytes=TMPFS_BYTES))
    s3 = stack.enter_context(S3Server())
    http_proxy = stack.enter_context(HttpFaultProxy(s3.endpoint_url))
    redis = stack.enter_context(RedisServer())
    tcp_proxy = stack.enter_context(TcpFaultProxy(redis.host, redis.port))
    return Rig(s3, http_proxy, redis, tcp_proxy, point, mounted is not None)


def start_workers(stack: contextlib.ExitStack, base: Path, config: PodConfig) -> list[Worker]:
    """Start the worker processes; each is killed (if still running) when ``stack`` closes."""
    workers = []
    for i in range(PROCESSES):
        worker = Worker(f"process-{i}", config, base / f"worker-{i}.stderr")
        stack.callback(worker.kill)
        workers.append(worker)
    return workers


def start_readers(
    stack: contextlib.ExitStack, readers: list[Reader], stop: threading.Event
) -> list[threading.Thread]:
    """Start one thread per reader; on the way out they are stopped and joined (bounded)."""
    threads = [
        threading.Thread(
            target=reader.run, args=(lambda: not stop.is_set(),), name=reader.name, daemon=True
        )
        for reader in readers
    ]
    for thread in threads:
        thread.start()
    stack.callback(join_all, threads, 5.0)
    stack.callback(stop.set)
    return threads


@dataclass
class Outcome:
    """What the soak measured."""

    elapsed_s: float
    tally: Tally
    schedule: FaultSchedule
    on_tmpfs: bool
    recovering: dict[str, Any]  # the test pod's stats once the faults were cleared
    stats: dict[str, Any]  # ... and at the end
    worker_stats: list[dict[str, Any]]
    disk_used_bytes: int  # what the disk directory's filesystem holds at the end
    held_deleted: dict[str, list[str]]  # per pod: deleted files under the disk directory held open
    settle_s: dict[str, float]  # per pod: time from the end of the load to every tier closed


def soak(base: Path, objects: list[tuple[ObjectSpec, bytes]]) -> Outcome:
    """Run the soak: services, pods, readers, faults; stop everything; return the measurements."""
    with contextlib.ExitStack() as stack:
        rig = start_rig(stack, base)
        rig.s3.create_bucket(BUCKET)
        for spec, data in objects:
            rig.s3.put_object(BUCKET, spec.path.split("/", 1)[1], data)
        config = PodConfig(
            endpoint_url=rig.http_proxy.url,
            redis_url=rig.tcp_proxy.url_for() + "/0",
            redis_prefix=f"soak{uuid.uuid4().hex[:8]}:",
            disk_dir=str(rig.disk_dir),
            seed=SEED,
        )
        workers = start_workers(stack, base, config)
        fs = make_pod(config)
        stack.callback(fs.close)
        for worker in workers:
            assert worker.expect(WORKER_READY_S) == "ready"

        started = time.time()
        stop_at = started + SOAK_SECONDS
        for worker in workers:
            worker.go(started, stop_at)
        readers = [Reader(f"thread-{i}", fs, objects, SEED, started) for i in range(THREADS)]
        stop = threading.Event()
        threads = start_readers(stack, readers, stop)
        schedule = FaultSchedule(rig, SEED, started)
        stack.callback(schedule.clear_all)
        schedule.run(stop_at - min(SETTLE_S, SOAK_SECONDS / 2))
        # Every fault is cleared: from one breaker cooldown on, every tier must serve again.
        time.sleep(2 * BREAKER_COOLDOWN_S)
        recovering = fs.stats()
        time.sleep(max(0.0, stop_at - time.time()))
        stop.set()
        elapsed = time.time() - started

        # A read that never returns is a hang: report where every reader is stuck.
        join_all(threads, MAX_BOUND_S + 10)
        hung = [thread for thread in threads if thread.is_alive()]
        assert not hung, f"reads hung past {MAX_BOUND_S + 10:.0f} s:\n{thread_stacks(hung)}"
        settle_s = {"test process": settle(readers[0])}
        tally = Tally()
        for reader in readers:
            tally.merge(reader.tally)
        worker_stats = []
        held = {"test process": held_deleted_files(str(rig.disk_dir))}
        for worker in workers:
            report = json.loads(worker.expect(MAX_BOUND_S + 30))
            tally.merge(Tally.from_json(report["tally"]))
            worker_stats.append(report["stats"])
            held[worker.name] = report["held_deleted_files"]
            settle_s[worker.name] = float(report["settle_s"])
            assert worker.process.wait(timeout=30) == 0, worker.stderr_tail()
        st = os.statvfs(rig.disk_dir)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return Outcome(
            elapsed,
            tally,
            schedule,
            rig.on_tmpfs,
            recovering,
            fs.stats(),
            worker_stats,
            used,
            held,
            settle_s,
        )


def summary_line(outcome: Outcome) -> str:
    """The one line the soak prints."""
    tally = outcome.tally
    latencies = sorted(tally.latencies_s)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    worst = latencies[-1] if latencies else math.nan
    faults = " ".join(f"{kind}={count}" for kind, count in outcome.schedule.counts.items())
    disk = (
        "disk on tmpfs"
        if outcome.on_tmpfs
        else "disk on a plain directory: tmpfs cannot be mounted here, disk_full not injected"
    )
    return (
        f"soak: {outcome.elapsed_s:.1f} s, reads {tally.reads} "
        f"(threads {THREADS}, processes {PROCESSES}), faults {faults}, "
        f"wrong_bytes {tally.wrong_bytes}, failed_reads {tally.failed_reads}, "
        f"latency p50 {ms(p50)} p99 {ms(p99)} max {ms(worst)} (seed {SEED}, {disk})"
    )


def test_soak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    objects = [(spec, object_bytes(spec)) for spec in make_objects(SEED)]

    outcome = soak(tmp_path, objects)

    summary = summary_line(outcome)
    with capsys.disabled():
        print(f"\n{summary}")
    tally, schedule = outcome.tally, outcome.schedule
    report = (
        f"{summary}\n\nproblems:\n"
        + "\n".join(tally.problems)
        + f"\n\ndisk directory's filesystem: {outcome.disk_used_bytes >> 10} KiB used at the end"
        + "\n\ndeleted files under the disk directory still open at the end:\n"
        + json.dumps(outcome.held_deleted, indent=1)
        + "\n\nseconds from the end of the load to every tier closed, per pod: "
        + json.dumps(outcome.settle_s)
        + "\n\nslowest reads:\n"
        + "\n".join(f"{ms(t)}: {what}" for t, what in reversed(tally.slowest))
        + "\n\nfaults:\n"
        + "\n".join(schedule.events)
        + "\n\nstats of the test process's pod once the faults were cleared:\n"
        + json.dumps(outcome.recovering, indent=1, default=str)
        + "\n\nstats of the test process's pod at the end:\n"
        + json.dumps(outcome.stats, indent=1, default=str)
        + "\n\nstats of the workers' pods:\n"
        + json.dumps(outcome.worker_stats, indent=1, default=str)
    )
    (tmp_path / "soak-report.txt").write_text(report)
    latencies = sorted(tally.latencies_s)
    p99, worst = percentile(latencies, 0.99), latencies[-1]
    assert not schedule.errors, "\n".join(schedule.errors)
    assert tally.wrong_bytes == 0, report
    assert tally.failed_reads == 0, report
    missing = [kind for kind, count in schedule.counts.items() if count == 0]
    assert not missing, f"fault kinds never injected: {missing}\n{report}"
    assert p99 <= P99_BOUND_S, f"p99 latency {ms(p99)} > {ms(P99_BOUND_S)}\n{report}"
    assert worst < MAX_BOUND_S, f"max latency {ms(worst)} >= {ms(MAX_BOUND_S)}\n{report}"
    # Recovery: every tier of every pod ends closed (within a few cooldowns of the load's end:
    # see soak_worker.settle), and the lower tiers served hits again once the faults were
    # cleared.
    for pod, stats in [("test process", outcome.stats)] + [
        (f"process-{i}", s) for i, s in enumerate(outcome.worker_stats)
    ]:
        states = {name: tier["state"] for name, tier in stats["tiers"].items()}
        assert set(states.values()) == {"closed"}, f"{pod}: {states}\n{report}"
    for name in ("disk", "redis"):
        after, before = outcome.stats["tiers"][name], outcome.recovering["tiers"][name]
        assert after["hits"] > before["hits"], f"no {name} hit after the faults\n{report}"
    # No leaked descriptors: a removed cache directory (its database, WAL, value files) is
    # released once the tier reopened, or it keeps its space on the emptyDir for the life of
    # the process (and a long run fills the disk for good).
    held = {pod: files for pod, files in outcome.held_deleted.items() if files}
    assert not held, f"deleted files still held open: {json.dumps(held, indent=1)}\n{report}"
