"""Ending a server that runs in its own process group, and everything it started there.

The harness starts ``redis-server`` and the object-store servers (moto, GCS, Azurite) with
``start_new_session=True``, so that each leads a process group of its own: signalling the group
reaches the server and whatever it forked (redis forks for BGSAVE and replication), and nothing
else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

#: How long a server may take to exit after its first signal before it gets SIGKILL.
STOP_TIMEOUT_S = 5.0


def signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Send ``signum`` to the process group that ``process`` leads; a group gone is no error."""
    # Until the leader is reaped the group id cannot name another process, so this is safe.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def stop_process_group(
    process: subprocess.Popen[bytes], first_signal: signal.Signals = signal.SIGTERM
) -> None:
    """End a process started with ``start_new_session=True`` and everything in its group.

    The group gets ``first_signal`` (after SIGCONT, so that a stopped process acts on it), then
    SIGKILL if the leader has not exited within :data:`STOP_TIMEOUT_S`; once the leader is
    reaped, whatever is left in the group gets SIGKILL.
    """
    if process.poll() is None:
        if first_signal != signal.SIGKILL:
            # A stopped process would keep SIGTERM pending forever; SIGCONT lets it act on it.
            signal_group(process, signal.SIGCONT)
        signal_group(process, first_signal)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait()
    # Reap, then sweep up anything left in the group.
    process.wait()
    signal_group(process, signal.SIGKILL)
