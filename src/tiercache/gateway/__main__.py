"""The embedded gateway's process: ``python -m tiercache.gateway`` (see gateway.embedded).

Reads one JSON line from stdin (the target options, the settings, where to listen), binds, writes
``{"host": ..., "port": ...}`` to stdout once it serves, and serves until stdin closes (the parent
closed the handle or exited) or a SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

#: Seconds the process waits, once it stopped serving, for its fills of the shared tiers.
DRAIN_S = 5.0


def _watch_stdin() -> None:
    """Shut down gracefully when the parent's pipe closes."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    from tiercache.gateway.server import die_with_parent

    die_with_parent()
    spec: dict[str, Any] = json.loads(sys.stdin.buffer.readline())
    try:
        from tiercache.config import Settings
        from tiercache.fs import TieredFileSystem
        from tiercache.gateway.server import bind, build_app, check_listen, parse_listen, serve

        settings = Settings(**spec["settings"])
        host, port = parse_listen(spec["listen"])
        credentials = _credentials(settings)
        check_listen(host, credentials)
        fs = TieredFileSystem(
            target_protocol=spec.get("target_protocol", "s3"),
            target_options=spec["target_options"],
            settings=settings,
        )
        app = build_app(fs, credentials)
        _connect(fs.target)  # the origin's client now, not in the first request's time
        sock = bind(host, port)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 2
    bound_host, bound_port = sock.getsockname()[:2]

    def started() -> None:
        print(json.dumps({"host": bound_host, "port": bound_port}), flush=True)
        threading.Thread(target=_watch_stdin, name="tiercache-parent", daemon=True).start()

    serve(app, sock, on_started=started)
    # What the last requests fetched is still being written to the shared tiers (disk, Redis):
    # let it finish, briefly, so that the next process finds it.
    fs.chain.fills.join(timeout_s=DRAIN_S)
    fs.close()
    return 0


def _connect(target: Any) -> None:
    """Build the origin's S3 client (credentials resolved, session made) before serving."""
    connect = getattr(target, "connect", None)
    if connect is not None:
        connect()


def _credentials(settings: Any) -> list[Any]:
    from tiercache.gateway.sigv4 import Credentials

    key, secret = settings.gateway_access_key_id, settings.gateway_secret_access_key
    return [Credentials(key, secret)] if key and secret else []


if __name__ == "__main__":
    sys.exit(main())
