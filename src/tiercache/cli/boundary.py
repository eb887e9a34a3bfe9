"""Where a command's errors meet the user: one line on stderr and an exit status, or a traceback.

Errors a user can fix are one line, ``tiercache <command>: error: <what>``, never a traceback:

- a configuration error (a ``TIERCACHE_*`` value, ``--set``, ``--storage-option``, an
  argument): exit 2 (``tiercache <command>: configuration error: <what>``);
- a missing object, a directory where an object was expected, a permission denied, no AWS
  credentials (botocore's ``NoCredentialsError`` and its kin), an endpoint that cannot be
  reached: exit 1.

Anything else is a bug (ours or a library's): it is not swallowed, Python prints its traceback.

``stdout`` closed early by its reader (``tiercache config --json | head``) ends the command
quietly with exit status 141 (128 + SIGPIPE, what a shell reports for a process killed by it):
the rest of the output goes to ``/dev/null`` so that the interpreter's last flush cannot fail
again (the recipe of the Python documentation's "Note on SIGPIPE").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from tiercache.errors import ConfigError

#: The exit status when the reader of stdout went away (128 + SIGPIPE).
BROKEN_PIPE_STATUS = 141
#: The exit status on Ctrl-C (128 + SIGINT).
INTERRUPTED_STATUS = 130
# botocore's exceptions a user fixes (by class name: botocore is imported only where it is
# needed, not by the command line). Each with the hint printed after it.
_BOTOCORE = {
    "NoCredentialsError": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
    "or pass --storage-option key=... --storage-option secret=... (anon=true for a public "
    "bucket)",
    "PartialCredentialsError": "set both the access key id and the secret access key",
    "ProfileNotFound": "check AWS_PROFILE and the AWS config file",
    "NoRegionError": "set AWS_REGION or --storage-option region_name=...",
    "EndpointConnectionError": "check the endpoint (--storage-option endpoint_url=... or "
    "AWS_ENDPOINT_URL) and that it is up",
}
_OS_ERRORS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "not found"),
    (IsADirectoryError, "is a directory"),
    (NotADirectoryError, "not a directory"),
    (PermissionError, "permission denied"),
)


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``command(args)`` and return its exit status, turning user-fixable errors into one
    line on stderr (see the module)."""
    name = f"tiercache {args.command}"
    try:
        status = command(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is seen while it can be handled
        return status
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except ConfigError as exc:
        print(f"{name}: configuration error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print(f"{name}: error: {message}", file=sys.stderr)
        return 1


def user_error(exc: BaseException) -> str | None:
    """The one line for an error a user can fix, or None for anything else (a bug)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # s3fs may wrap botocore's error
        seen.add(id(current))
        kind = type(current)
        if kind.__module__.startswith("botocore") and kind.__name__ in _BOTOCORE:
            return f"{one_line(current)} ({_BOTOCORE[kind.__name__]})"
        current = current.__cause__ or current.__context__
    for os_error, what in _OS_ERRORS:
        if isinstance(exc, os_error):
            return f"{what}: {_os_detail(exc)}"
    return None


def one_line(exc: BaseException) -> str:
    """``str(exc)`` on one line (or the class name when it says nothing)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _os_detail(exc: OSError) -> str:
    if exc.filename is not None:
        return str(exc.filename)
    text = one_line(exc)
    return text.strip("'\"") if len(exc.args) == 1 else text


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null: the interpreter's final flush then succeeds."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
