"""The scenarios of ``run.py``: one module each, exporting ``SCENARIO`` (a
:class:`harness.scenario.Scenario`). :func:`harness.registry.discover` finds them all; a module
whose name starts with ``_`` is not a scenario."""
