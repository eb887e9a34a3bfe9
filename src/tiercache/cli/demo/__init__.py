"""``tiercache demo``: a Delta table on a local S3 server, read through the tiers."""

from tiercache.cli.demo.run import run_demo

__all__ = ["run_demo"]
