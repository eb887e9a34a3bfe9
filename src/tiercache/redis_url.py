"""``TIERCACHE_REDIS_URL``: everything in it that the client library would reject, or misuse.

Checked when ``Settings`` are built, so a URL that cannot work fails at configuration (``tiercache
config`` exits 2), never when a filesystem is created. redis-py lets URL options win over the
client's arguments, so the options tiercache sets itself (its time budget, its bounded pool) are
refused in the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError
from .parsing import DOCS, FLAGS, redact_url, with_hint

__all__ = ["REDIS_SCHEMES", "check_redis_url"]

REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

# Query options of TIERCACHE_REDIS_URL that reach the connection, with the form of their value.
# redis-py passes unknown names on to the connection class, which rejects them only when it first
# connects: here every option is known, checked and named in the error.
_URL_BOOL: Final = "a boolean (true/false)"
_URL_OPTIONS: Final[Mapping[str, str]] = {
    "db": "a database number, 0 or more",
    "client_name": "a name",
    "username": "a user name",
    "password": "a password",
    "protocol": "2 or 3",
    "socket_keepalive": _URL_BOOL,
    "ssl_ca_certs": "a file path",
    "ssl_ca_path": "a directory path",
    "ssl_ca_data": "PEM text",
    "ssl_certfile": "a file path",
    "ssl_keyfile": "a file path",
    "ssl_password": "a password",
    "ssl_cert_reqs": "none, optional or required",
    "ssl_check_hostname": _URL_BOOL,
    "ssl_min_version": "a TLS version number",
}
# Options tiercache sets itself: in the URL they would override the time budget or the pool that
# bounds a hung Redis (redis-py lets URL options win over the client's arguments).
_URL_OWNED: Final[Mapping[str, str]] = {
    "socket_timeout": "TIERCACHE_REDIS_TIMEOUT",
    "socket_connect_timeout": "TIERCACHE_REDIS_TIMEOUT",
    "timeout": "TIERCACHE_REDIS_TIMEOUT",
    "retry_on_timeout": "tiercache (no retries: the guard bounds each call)",
    "retry_on_error": "tiercache (no retries: the guard bounds each call)",
    "max_connections": "tiercache (a bounded pool)",
    "health_check_interval": "tiercache",
    "single_connection_client": "tiercache",
}
_URL_VALUES: Final[Mapping[str, re.Pattern[str]]] = {
    "db": re.compile(r"\d{1,9}", FLAGS),
    "protocol": re.compile(r"[23]", FLAGS),
    "socket_keepalive": re.compile(r"true|false|1|0|yes|no|on|off", FLAGS),
    "ssl_check_hostname": re.compile(r"true|false|1|0|yes|no|on|off", FLAGS),
    "ssl_cert_reqs": re.compile(r"none|optional|required", FLAGS),
    "ssl_min_version": re.compile(r"\d{1,3}", FLAGS),
}


def check_redis_url(url: str) -> None:
    """Check everything in a Redis URL that the client library would reject, or misuse, later.

    The scheme, the host and port, the database (the path, or ``?db=``; a cluster has only
    database 0), a ``unix://`` socket path, and every query option: known, of the right form, and
    not one of those tiercache sets itself (``socket_timeout``, ``max_connections``, ...).

    Raises:
        ConfigError: names ``TIERCACHE_REDIS_URL``, the problem and the URL with its password
            redacted.
    """
    shown = redact_url(url)

    def bad(problem: str) -> ConfigError:
        return ConfigError(
            f"TIERCACHE_REDIS_URL={shown!r} (Settings.redis_url): {problem} (see {DOCS})"
        )

    scheme = url.partition("://")[0].lower()
    if "://" not in url or scheme not in REDIS_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in REDIS_SCHEMES)
        raise bad(f"the URL must start with one of {schemes}")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range", a port that is no number
        raise bad(f"it cannot be parsed: {exc}") from None
    if any(c.isspace() for c in url):
        raise bad("a URL holds no spaces (percent-encode them in a password: %20)")
    if parts.fragment:
        raise bad("a URL for Redis has no #fragment")
    if scheme == "unix":
        if not parts.path:
            raise bad("a unix:// URL names the socket's path, like unix:///run/redis.sock")
    elif port is not None and port == 0:
        raise bad("port 0 is no server's port")
    elif host is None and parts.netloc.rpartition("@")[2]:
        raise bad("the host cannot be read")
    path_db = parts.path.strip("/") if scheme != "unix" else ""
    if path_db and not _URL_VALUES["db"].fullmatch(path_db):
        raise bad(f"the path names the database, a number like /0, got /{path_db}")
    db = _check_redis_options(parse_qs(parts.query, keep_blank_values=True), bad) or path_db
    if scheme.endswith("+cluster") and db not in ("", "0"):
        raise bad(f"Redis Cluster has only database 0, got {db}")


def _check_redis_options(
    options: Mapping[str, list[str]], bad: Callable[[str], ConfigError]
) -> str | None:
    """Check the query options of a Redis URL; return the ``db`` option's value, if any."""
    for name, values in options.items():
        if name in _URL_OWNED:
            raise bad(f"option {name} is set by {_URL_OWNED[name]}; remove it from the URL")
        if name not in _URL_OPTIONS:
            raise bad(
                f"unknown option {with_hint(name, _URL_OPTIONS)}; the options are "
                + ", ".join(_URL_OPTIONS)
            )
        if len(values) != 1 or not values[0]:
            raise bad(f"option {name} needs one value, {_URL_OPTIONS[name]}")
        pattern = _URL_VALUES.get(name)
        if pattern is not None and not pattern.fullmatch(values[0]):
            shown_value = "***" if "pass" in name else values[0]
            raise bad(f"option {name}={shown_value!r} is not {_URL_OPTIONS[name]}")
    return options["db"][0] if "db" in options else None
