"""The S3-compatible gateway: the tiers for engines that read storage with their own clients.

delta-rs, DataFusion's native reader, DuckDB httpfs, polars and pyarrow's S3 client never go
through fsspec; pointed at the gateway, they read through the same chain (RAM, disk, Redis, the
origin). :func:`start` runs one owned by the calling process (docs/gateway.md);
``tiercache serve`` runs one as a sidecar.
"""

from tiercache.gateway.embedded import Gateway, GatewayError, start

__all__ = ["Gateway", "GatewayError", "start"]
