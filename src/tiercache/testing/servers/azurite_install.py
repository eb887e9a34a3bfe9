"""Where the ``azurite-blob`` binary of the harness comes from, installing it when it is missing.

From ``PATH`` when it is there, else from a cache directory
(``$XDG_CACHE_HOME/tiercache/azurite-<version>``, default ``~/.cache``), installed there with
``npm install`` on first use, so the Azure tests run on a machine with nothing but Node.js and
npm. The install is made once per machine: a file lock keeps parallel test processes from
installing twice, and it goes into a temporary directory renamed into place, so a process that
dies mid-install leaves nothing half-installed behind the final name.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

AZURITE_VERSION = "3.35.0"
"""The Azurite release installed when ``azurite-blob`` is not on ``PATH``."""

#: How long ``npm install`` may take (a fresh install takes about 30 s).
NPM_TIMEOUT_S = 600.0
#: How much of npm's output an error quotes.
_OUTPUT_TAIL_CHARS = 3000


def azurite_cache_dir(version: str = AZURITE_VERSION) -> Path:
    """Return the directory the pinned Azurite is installed into (it may not exist yet)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tiercache" / f"azurite-{version}"


def installed_binary(prefix: Path) -> Path:
    """Return where ``npm install --prefix <prefix>`` puts the ``azurite-blob`` command."""
    return prefix / "node_modules" / ".bin" / "azurite-blob"


def npm_command(prefix: Path, version: str = AZURITE_VERSION) -> list[str]:
    """Return the npm command that installs Azurite ``version`` into ``prefix``."""
    return [
        "npm",
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        f"azurite@{version}",
    ]


def find_azurite(*, install: bool = True) -> str:
    """Return the path of ``azurite-blob``: on ``PATH``, else in the cache, else installed there.

    Args:
        install: Install the pinned version into the cache directory when neither has it.

    Raises:
        RuntimeError: Azurite is nowhere and ``install`` is false, or npm is missing or failed
            (the message names the command and quotes npm's output).
    """
    on_path = shutil.which("azurite-blob")
    if on_path is not None:
        return on_path
    prefix = azurite_cache_dir()
    binary = installed_binary(prefix)
    if binary.is_file():
        return str(binary)
    if not install:
        raise RuntimeError(f"azurite-blob is neither on PATH nor in {prefix}")
    return str(_install(prefix))


def _install(prefix: Path) -> Path:
    """Install the pinned Azurite into ``prefix`` under a file lock; return its binary."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    lock_path = prefix.parent / f"{prefix.name}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        binary = installed_binary(prefix)
        if binary.is_file():  # another process installed it while this one waited
            return binary
        staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}-", dir=prefix.parent))
        try:
            _run_npm(staging)
            if not installed_binary(staging).is_file():
                raise RuntimeError(
                    f"`{' '.join(npm_command(staging))}` succeeded but left no "
                    f"{installed_binary(staging)}"
                )
            if prefix.exists():  # a broken earlier install (no binary): replaced
                shutil.rmtree(prefix)
            # npm's .bin links are relative, so the tree works under its final name.
            staging.rename(prefix)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return binary


def _run_npm(prefix: Path) -> None:
    """Run ``npm install`` into ``prefix``; a clear error if npm is missing or fails."""
    command = npm_command(prefix)
    shown = " ".join(command)
    if shutil.which("npm") is None:
        raise RuntimeError(
            "azurite-blob is not on PATH and npm is not installed to install it: install "
            f"Node.js and npm, or Azurite itself (`npm install -g azurite@{AZURITE_VERSION}`); "
            f"the harness would run `{shown}`"
        )
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{shown}` did not finish within {NPM_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-_OUTPUT_TAIL_CHARS:]
        raise RuntimeError(f"`{shown}` failed with exit code {done.returncode}:\n{output}")
