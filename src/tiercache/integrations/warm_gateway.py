"""Warming the embedded gateway (``tiercache.warm(..., gateway=...)``): ``register_delta``'s
native route reads through it, and its RAM tier is its own, so warming the caller's filesystem
would not warm what the queries read."""

from __future__ import annotations

from typing import Any

from fsspec import AbstractFileSystem

from tiercache.errors import ConfigError


class ThroughGateway:
    """What ``_warm_file`` reads with when it warms the embedded gateway: its prefetch reads."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def prefetch_range(self, path: str, start: int, end: int) -> bytes:
        data: bytes = self.gateway.prefetch_range(path, start, end)
        return data

    def size(self, path: str) -> int:
        raise ValueError(f"{path}: no size known (the gateway is warmed from a Delta log only)")

    def seed(self, files: list[tuple[str, int, float]]) -> str | None:
        """Hand the gateway the Delta log's info of ``files`` (``(bucket/key, size, mtime)``):
        their blocks are then keyed by the log's version, ``delta:<modificationTime>:<size>``,
        as ``register_delta`` keys them; return what went wrong, if anything."""
        seeds = [
            (path, size, f"delta:{round(mtime * 1000)}:{size}", mtime)
            for path, size, mtime in files
        ]
        try:
            self.gateway.seed(seeds)
        except OSError as exc:
            return f"gateway: {type(exc).__name__}: {exc}"
        return None

    def settle(self) -> str | None:
        """Let the gateway's fills of the disk and Redis tiers land (a warmup run as an init
        step then leaves them filled); return what went wrong, if anything."""
        try:
            self.gateway.stats(settle=True)
        except OSError as exc:
            return f"gateway: {type(exc).__name__}: {exc}"
        return None


def reader_for(
    filesystem: AbstractFileSystem, target: str, *, gateway: bool | None, delta: bool
) -> Any:
    """What to warm: ``filesystem``, or the embedded gateway over it (see :func:`warm`)."""
    if gateway is False or (gateway is None and not delta):
        return filesystem
    from tiercache.integrations.delta import gateway_for

    running = gateway_for(target, filesystem) if delta else None
    if running is None:
        if gateway:
            raise ConfigError(
                f"no gateway reaches {target}: warming one needs a Delta table on S3, GCS or "
                "Azure and a TieredFileSystem over that store"
            )
        return filesystem
    return ThroughGateway(running)
