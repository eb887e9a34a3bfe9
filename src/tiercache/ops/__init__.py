"""Operating tiercache: Prometheus metrics, the stats file, reports and advice.

Built on the core; the core never imports from here. Nothing here starts by itself: see
:mod:`tiercache.ops.observe` and docs/operations.md.
"""
