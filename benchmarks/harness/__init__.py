"""The benchmarks' shared machinery: the :class:`~harness.scenario.Scenario` contract and the
registry that finds the scenarios (:mod:`harness.registry`), the run context (S3 server, proxy
processes, Redis: :mod:`harness.context`, :mod:`harness.proxy`), timing (:mod:`harness.timing`),
formatting (:mod:`harness.fmt`), the report (:mod:`harness.report`) and plotting helpers
(:mod:`harness.plots`).

Imports nothing itself: the proxy processes and the memory scenario's child processes import
parts of it, and stay light.
"""
