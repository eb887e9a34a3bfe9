"""Prometheus metrics, read from the chains' own counters at scrape time.

Nothing is counted twice: :class:`TierCacheCollector` turns each live chain's
:meth:`~tiercache.chain.TierChain.stats` into metric families when Prometheus scrapes, so the read
path pays nothing for the exporter. Two ways in:

- ``TIERCACHE_METRICS_PORT``: ``tiercache.observe()`` (:mod:`tiercache.ops.observe`) serves
  ``/metrics`` on that port (all interfaces) from its own registry;
- :func:`register`: add the collector to the application's registry (its own ``/metrics``).

Every series carries ``target`` (the protocol and a digest of the endpoint, never credentials) and
``chain`` (a number telling the process's chains apart). Needs ``prometheus-client`` (the
``metrics`` extra).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from tiercache.chain import LIVE_CHAINS, TierChain
from tiercache.gateway.metrics import LIVE_GATEWAYS
from tiercache.stats import KINDS, PURPOSES

logger = logging.getLogger(__name__)

_TIER_COUNTERS = {
    "hits": "blocks served by the tier",
    "misses": "lookups that found nothing (timeouts, errors and rejections included)",
    "errors": "tier calls that raised",
    "timeouts": "tier calls over the time budget",
    "rejected": "tier calls refused at once (breaker open or bulkhead full)",
    "corrupt": "values that failed their checks and were dropped",
}
_ORIGIN_COUNTERS = {
    "requests": "requests sent to the origin, retries included",
    "retries": "origin requests repeated after a transient error (the S3 client's included)",
    "errors": "failed origin requests",
    "changed": "reads restarted because the object changed under them",
    "narrowed_requests": "late block fetches after which the reader asked for its own range",
    "narrowed": "reads served by a narrowed request (their block fetch was late)",
    "hedges": "reads late to their first byte that were sent again (one extra request each)",
    "hedges_won": "hedged reads where the extra request answered first",
}
_STATES = ("closed", "open", "half_open", "disabled")

_lock = threading.Lock()
_served: dict[str, Any] = {}  # "port" and "server" of the /metrics endpoint, once started


def _labels(chain: TierChain) -> list[str]:
    return [f"{chain.origin.protocol}:{chain.target}", str(chain.serial)]


def _buckets(histogram: Mapping[str, Any]) -> list[tuple[str, float]]:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(histogram["bounds"], histogram["counts"], strict=False):
        cumulative += count
        buckets.append((repr(float(bound)), float(cumulative)))
    buckets.append(("+Inf", float(histogram["count"])))
    return buckets


class _Families:
    """The metric families of one scrape, filled chain by chain."""

    def __init__(self) -> None:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        base = ["target", "chain"]
        per_class = [*base, "tier", "class", "purpose"]
        origin = [*base, "class", "purpose"]
        self.tier_counters = {
            name: CounterMetricFamily(f"tiercache_tier_{name}", doc, labels=per_class)
            for name, doc in _TIER_COUNTERS.items()
        }
        self.tier_bytes = CounterMetricFamily(
            "tiercache_tier_bytes", "bytes read from / written to a tier", labels=[*per_class, "op"]
        )
        self.state = GaugeMetricFamily(
            "tiercache_tier_state",
            "1 for the tier's breaker state",
            labels=[*base, "tier", "state"],
        )
        self.transitions = CounterMetricFamily(
            "tiercache_breaker_transitions",
            "breaker state changes",
            labels=[*base, "tier", "transition"],
        )
        self.tier_latency = HistogramMetricFamily(
            "tiercache_tier_latency_seconds",
            "latency of tier read calls as the reader saw them",
            labels=[*base, "tier"],
        )
        self.origin_counters = {
            name: CounterMetricFamily(f"tiercache_origin_{name}", doc, labels=origin)
            for name, doc in _ORIGIN_COUNTERS.items()
        }
        self.origin_bytes = CounterMetricFamily(
            "tiercache_origin_bytes", "bytes received from the origin", labels=origin
        )
        self.origin_latency = HistogramMetricFamily(
            "tiercache_origin_latency_seconds", "latency of origin requests", labels=origin
        )
        self.read_latency = HistogramMetricFamily(
            "tiercache_read_latency_seconds",
            "latency of reads that left the RAM hot path",
            labels=base,
        )
        self.ram_reads = CounterMetricFamily(
            "tiercache_ram_hit_reads", "reads served from RAM by the hot path", labels=base
        )
        self.waits = CounterMetricFamily(
            "tiercache_flight_waits",
            "readers that waited on another's fetch",
            labels=[*base, "what"],
        )
        self.fills = CounterMetricFamily(
            "tiercache_fills", "background fills of slower tiers", labels=[*base, "outcome"]
        )
        self.fills_dropped_bytes = CounterMetricFamily(
            "tiercache_fills_dropped_bytes", "bytes of the background fills dropped", labels=base
        )
        self.info = CounterMetricFamily(
            "tiercache_info_lookups", "object-info lookups", labels=[*base, "result"]
        )
        self.shadow = GaugeMetricFamily(
            "tiercache_shadow_hit_ratio",
            "hit ratio the shadow cache estimates for a tier at a multiple of its size",
            labels=[*base, "tier", "scale"],
        )

    def all(self) -> list[Any]:
        return [
            *self.tier_counters.values(),
            self.tier_bytes,
            self.state,
            self.transitions,
            self.tier_latency,
            *self.origin_counters.values(),
            self.origin_bytes,
            self.origin_latency,
            self.read_latency,
            self.ram_reads,
            self.waits,
            self.fills,
            self.fills_dropped_bytes,
            self.info,
            self.shadow,
        ]

    def add(self, labels: list[str], stats: Mapping[str, Any]) -> None:
        """Add one chain's stats under ``labels`` (target, chain)."""
        for purpose in PURPOSES:
            for kind in KINDS:
                self._add_class(labels, purpose, kind, stats["classes"][purpose][kind])
        for tier, entry in stats["tiers"].items():
            for name in _STATES:
                self.state.add_metric([*labels, tier, name], float(entry["state"] == name))
            for name, count in entry.get("transitions", {}).items():
                self.transitions.add_metric([*labels, tier, name], count)
            if "latency" in entry:
                latency = entry["latency"]
                self.tier_latency.add_metric([*labels, tier], _buckets(latency), latency["sum"])
        reads = stats["reads"]
        self.read_latency.add_metric(labels, _buckets(reads["latency"]), reads["latency"]["sum"])
        self.ram_reads.add_metric(labels, reads["ram_hits"])
        self.waits.add_metric([*labels, "block"], stats["flight"]["block_waits"])
        self.waits.add_metric([*labels, "info"], stats["flight"]["info_waits"])
        for outcome, count in stats["fills"].items():
            if outcome == "dropped_bytes":  # an amount, not an outcome: a family of its own
                self.fills_dropped_bytes.add_metric(labels, count)
            else:
                self.fills.add_metric([*labels, outcome], count)
        for result, count in stats["info"].items():
            self.info.add_metric([*labels, result], count)
        for tier, curve in (stats.get("shadow") or {}).get("tiers", {}).items():
            for point in curve["curve"]:
                self.shadow.add_metric([*labels, tier, str(point["scale"])], point["hit_ratio"])

    def _add_class(
        self, labels: list[str], purpose: str, kind: str, part: Mapping[str, Any]
    ) -> None:
        for tier, counts in part["tiers"].items():
            key = [*labels, tier, kind, purpose]
            for name, family in self.tier_counters.items():
                family.add_metric(key, counts[name])
            self.tier_bytes.add_metric([*key, "read"], counts["bytes_read"])
            self.tier_bytes.add_metric([*key, "write"], counts["bytes_written"])
        origin = part["origin"]
        key = [*labels, kind, purpose]
        for name, family in self.origin_counters.items():
            family.add_metric(key, origin[name])
        self.origin_bytes.add_metric(key, origin["bytes"])
        latency = origin["latency"]
        self.origin_latency.add_metric(key, _buckets(latency), latency["sum"])


class TierCacheCollector:
    """A ``prometheus_client`` collector of every live chain's stats."""

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by ``prometheus_client`` at each scrape)."""
        families = _Families()
        for chain in list(LIVE_CHAINS):
            try:
                stats = chain.stats()
            except Exception:  # a chain closing meanwhile: skip it this scrape
                logger.debug("stats of chain %s failed", chain.serial, exc_info=True)
                continue
            families.add(_labels(chain), stats)
        yield from families.all()
        yield from _gateway_families()


def _gateway_families() -> list[Any]:
    """The gateways' families: requests by operation and status, bytes sent, latency."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    requests = CounterMetricFamily(
        "tiercache_gateway_requests",
        "S3 requests the gateway answered, by operation and HTTP status",
        labels=["gateway", "operation", "status"],
    )
    sent = CounterMetricFamily(
        "tiercache_gateway_bytes_out", "bytes of response bodies sent", labels=["gateway"]
    )
    latency = HistogramMetricFamily(
        "tiercache_gateway_request_seconds",
        "time from a request's arrival to its last byte sent",
        labels=["gateway"],
    )
    for number, gateway in enumerate(list(LIVE_GATEWAYS)):
        snapshot = gateway.snapshot()
        label = str(number)
        for operation, statuses in snapshot["requests"].items():
            for status, count in statuses.items():
                requests.add_metric([label, operation, status], count)
        sent.add_metric([label], snapshot["bytes_out"])
        histogram = snapshot["latency"]
        latency.add_metric([label], _buckets(histogram), histogram["sum"])
    return [requests, sent, latency]


def register(registry: Any = None) -> TierCacheCollector:
    """Add tiercache's collector to ``registry`` (default: prometheus_client's global one).

    Raises:
        ImportError: prometheus-client is not installed (``pip install 'tiercache[metrics]'``).
    """
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:
        raise ImportError(
            "tiercache metrics need prometheus-client: pip install 'tiercache[metrics]'"
        ) from exc
    collector = TierCacheCollector()
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def serve(port: int, addr: str = "0.0.0.0") -> int:  # scraped from other pods
    """Serve ``/metrics`` on ``port`` (once per process); return the port actually bound.

    Port 0 binds a free port (tests). Further calls return the first port and log if a different
    one was asked for.
    """
    with _lock:
        served: int | None = _served.get("port")
        if served is not None:
            if port not in (0, served):
                logger.warning("metrics already served on port %d; port %d ignored", served, port)
            return served
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        register(registry)
        server, _thread = start_http_server(port, addr=addr, registry=registry)
        bound = _served["port"] = int(server.server_address[1])
        _served["server"] = server
        logger.info("serving tiercache metrics on %s:%d/metrics", addr, bound)
        return bound


def stop_serving() -> None:
    """Stop the ``/metrics`` endpoint started by :func:`serve`, if any (tests, shutdown)."""
    with _lock:
        server = _served.pop("server", None)
        _served.pop("port", None)
    if server is not None:
        server.shutdown()
        server.server_close()
