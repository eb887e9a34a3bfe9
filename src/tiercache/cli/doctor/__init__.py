"""``tiercache doctor``: is every configured tier usable, and how fast is it, right now?

For each tier the settings configure (memory unless ``TIERCACHE_MEMORY_BYTES=0``, disk with
``TIERCACHE_DISK_DIR``, Redis with ``TIERCACHE_REDIS_URL``), :func:`run_doctor` builds the tier
exactly as a reader would (:func:`tiercache.build.default_tiers`), checks that it is ready after
start (a disk directory that is not a directory or not writable, an unreachable Redis: the tier
starts unavailable, with ``last_error``), then probes it through its own ``put`` / ``get`` /
``delete_object`` with a :class:`~tiercache.protocol.BlockKey` of a probe object no reader uses:

1. ``write``: ``put`` a small random block (framed, with the HMAC tag when a key is set),
2. ``read``: ``get`` it back and compare the bytes (the tier checks header, checksum and tag),
3. ``delete``: ``delete_object`` the probe object,
4. ``gone``: ``get`` again, which must miss.

Every step of a tier outside the process runs on a worker thread under the tier's time budget
(``TIERCACHE_DISK_TIMEOUT``, ``TIERCACHE_REDIS_TIMEOUT``: the budget reads get from the guard).
A step that ends after the budget fails as *slow* (reads would count it a timeout); a step that
has not ended ``HANG_GRACE_S`` after the budget is abandoned and fails as *hung*: the doctor never
hangs on a frozen server or disk. Starting a tier has ``START_GRACE_S`` on top of its budget.
Optionally the origin is checked too: ``info()`` of a URL, within ``TIERCACHE_ORIGIN_TIMEOUT``;
and a running gateway (``--gateway URL``): its health, its counters and one signed S3 request.

Nothing here prints a secret: the Redis URL is redacted, and the URL's password and the HMAC
key are masked in every reason.

The report and how it is shown (without secrets) are in :mod:`~tiercache.cli.doctor.report`, the
probe of one tier in :mod:`~tiercache.cli.doctor.probe`, starting the configured tiers and
checking the origin in :mod:`~tiercache.cli.doctor.run`, checking a gateway in
:mod:`~tiercache.cli.doctor.gateway`.
"""

from tiercache.cli.doctor.probe import DEFAULT_TIMEOUT_S, HANG_GRACE_S, PROBE_BYTES, STEPS
from tiercache.cli.doctor.report import DoctorReport, TierCheck, format_report
from tiercache.cli.doctor.run import START_GRACE_S, run_doctor

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HANG_GRACE_S",
    "PROBE_BYTES",
    "START_GRACE_S",
    "STEPS",
    "DoctorReport",
    "TierCheck",
    "format_report",
    "run_doctor",
]
