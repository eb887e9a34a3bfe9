"""Settings and the ``TIERCACHE_*`` environment variables that build them.

``Settings.from_env()`` reads the environment; explicit keyword overrides win over it, and it wins
over the defaults. Every variable is documented in ``docs/configuration.md``; ``VARIABLES`` below is
the single list of names, and a test keeps the two in step. Every value is checked in
``Settings.__post_init__``, so a ``Settings(...)`` built in code is held to the same rules as one
built from the environment. Errors are ``ConfigError`` naming the variable and the accepted forms.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError

__all__ = [
    "RANGES", "UNAUTHENTICATED_REDIS", "VARIABLES", "Settings",
    "check_redis_url", "describe_range",
    "parse_bool", "parse_duration", "parse_int", "parse_size", "redact_url",
]  # fmt: skip

_KIB: Final = 1024
_MIB: Final = 1024 * _KIB
_GIB: Final = 1024 * _MIB

_SIZE_UNITS: Final[Mapping[str, int]] = {
    "": 1, "b": 1,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
}  # fmt: skip
# Seconds per unit, as fractions so that "250ms" is exactly 0.25.
_DURATION_UNITS: Final[Mapping[str, Fraction]] = {
    "": Fraction(1), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600),
    "ms": Fraction(1, 1000),
}  # fmt: skip
_BOOLS: Final[Mapping[str, bool]] = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}  # fmt: skip
# An HMAC key shorter than this is a typo or a placeholder, not a secret.
_MIN_HMAC_KEY: Final = 16
#: diskcache eviction policies the disk tier may use (measured in docs/benchmarks.md).
DISK_EVICTION_POLICIES: Final = (
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
)
_REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

# ASCII only: int() would take other scripts' digits, which no one means in a variable. Digit
# counts are capped so that no value can make int()/float() raise or work for long.
_FLAGS: Final = re.IGNORECASE | re.ASCII
_NUMBER: Final = r"(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})"
_SIZE_RE: Final = re.compile(rf"({_NUMBER})(?: ?([a-z]+))?", _FLAGS)
_DURATION_RE: Final = re.compile(rf"({_NUMBER}(?:e[+-]?\d{{1,2}})?)(?: ?([a-z]+))?", _FLAGS)
_INT_RE: Final = re.compile(r"[+-]?\d{1,30}", _FLAGS)

_SIZE_FORMS: Final = (
    "use a byte count like 123, 64KiB, 512MiB, 2GiB "
    "(KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000)"
)
_DURATION_FORMS: Final = "use 250ms, 2s, 5m, 1h or a bare number of seconds like 0.05"
_BOOL_FORMS: Final = "use true/false, 1/0, yes/no or on/off"
_DOCS: Final = "docs/configuration.md"
# Query parameters whose value may be a secret (redis-py accepts ?password=...).
_SECRET_PARAMS: Final = ("pass", "pwd", "secret", "token", "auth", "credential")


def parse_size(text: str, *, variable: str) -> int:
    """Parse a size such as ``123``, ``64KiB``, ``1.5GiB`` or ``10MB`` into bytes.

    Units are case-insensitive and may follow the number after one space; ``KiB``..``TiB`` are
    powers of 1024, ``KB``..``TB`` powers of 1000, ``B`` or no unit is bytes. A decimal number is
    accepted only when it comes to a whole number of bytes.

    Args:
        text: The value to parse.
        variable: The variable (or setting) it came from, named in the error.

    Raises:
        ConfigError: ``text`` is empty, negative, garbage or a fraction of a byte.
    """
    match = _SIZE_RE.fullmatch(text.strip())
    multiplier = _SIZE_UNITS.get((match[2] or "").lower()) if match else None
    if match is not None and multiplier is not None:
        value = Fraction(match[1]) * multiplier
        if value.denominator == 1:
            return int(value)
    raise ConfigError(f"{variable}={text!r} is not a size; {_SIZE_FORMS}")


def parse_duration(text: str, *, variable: str) -> float:
    """Parse a duration such as ``250ms``, ``2s``, ``5m``, ``1h`` or ``0.05`` into seconds.

    Args:
        text: The value to parse; a bare number (``2``, ``0.05``, ``1e-3``) is seconds.
        variable: The variable (or setting) it came from, named in the error.

    Raises:
        ConfigError: ``text`` is empty, negative, not finite or garbage.
    """
    match = _DURATION_RE.fullmatch(text.strip())
    seconds_per_unit = _DURATION_UNITS.get((match[2] or "").lower()) if match else None
    if match is not None and seconds_per_unit is not None:
        return float(Fraction(match[1]) * seconds_per_unit)  # at most 1e99 h: always finite
    raise ConfigError(f"{variable}={text!r} is not a duration; {_DURATION_FORMS}")


def parse_bool(text: str, *, variable: str) -> bool:
    """Parse true/false, 1/0, yes/no or on/off (case-insensitive).

    Raises:
        ConfigError: ``text`` is none of those.
    """
    try:
        return _BOOLS[text.strip().lower()]
    except KeyError:
        raise ConfigError(f"{variable}={text!r} is not a boolean; {_BOOL_FORMS}") from None


def parse_int(text: str, *, variable: str, minimum: int) -> int:
    """Parse a whole number that must be at least ``minimum``.

    Raises:
        ConfigError: ``text`` is not a whole number, or is below ``minimum``.
    """
    forms = f"use a whole number >= {minimum}, like {max(minimum, 3)}"
    if _INT_RE.fullmatch(text.strip()) is None:
        raise ConfigError(f"{variable}={text!r} is not a whole number; {forms}")
    value = int(text)
    if value < minimum:
        raise ConfigError(f"{variable}={text!r} is too small; {forms}")
    return value


def redact_url(url: str) -> str:
    """Return ``url`` with any password, or a lone secret in the user part, replaced by ``***``.

    ``redis://user:pw@h`` becomes ``redis://user:***@h`` and ``redis://:pw@h`` becomes
    ``redis://:***@h``. A user part without a colon (``redis://token@h``) is replaced whole: Redis
    has no use for a user name without a password, so it is most likely a misplaced secret. Query
    values named like secrets (``?password=...``) are replaced too. A URL without credentials comes
    back unchanged. A password holding an unescaped ``/``, ``?`` or ``#`` is still hidden, at the
    cost of also hiding what stands before an ``@`` in the path or query of odd URLs. Never raises:
    anything that cannot be taken apart comes back as ``***``.
    """
    try:
        text = str(url)
        scheme, sep, rest = text.partition("://")
        head = scheme + sep if sep else ""
        rest = rest if sep else text
        authority_end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, authority_end)
        if at < 0 and ":" in rest[: max(rest.rfind("@"), 0)]:
            at = rest.rfind("@")  # a secret with an unescaped / ? or # in it
        if at > 0:
            user, colon, _ = rest[:at].partition(":")
            rest = (f"{user}:***" if colon else "***") + rest[at:]
        base, qmark, query = rest.partition("?")
        if qmark:
            rest = base + qmark + "&".join(_redact_param(p) for p in query.split("&"))
        return head + rest
    except Exception:  # a redactor that raised would leak the URL in the traceback
        return "***"


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    if eq and any(word in name.lower() for word in _SECRET_PARAMS):
        return f"{name}=***"
    return param


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
    "db": re.compile(r"\d{1,9}", _FLAGS),
    "protocol": re.compile(r"[23]", _FLAGS),
    "socket_keepalive": re.compile(r"true|false|1|0|yes|no|on|off", _FLAGS),
    "ssl_check_hostname": re.compile(r"true|false|1|0|yes|no|on|off", _FLAGS),
    "ssl_cert_reqs": re.compile(r"none|optional|required", _FLAGS),
    "ssl_min_version": re.compile(r"\d{1,3}", _FLAGS),
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
            f"TIERCACHE_REDIS_URL={shown!r} (Settings.redis_url): {problem} (see {_DOCS})"
        )

    scheme = url.partition("://")[0].lower()
    if "://" not in url or scheme not in _REDIS_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in _REDIS_SCHEMES)
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
                f"unknown option {_with_hint(name, _URL_OPTIONS)}; the options are "
                + ", ".join(_URL_OPTIONS)
            )
        if len(values) != 1 or not values[0]:
            raise bad(f"option {name} needs one value, {_URL_OPTIONS[name]}")
        pattern = _URL_VALUES.get(name)
        if pattern is not None and not pattern.fullmatch(values[0]):
            shown_value = "***" if "pass" in name else values[0]
            raise bad(f"option {name}={shown_value!r} is not {_URL_OPTIONS[name]}")
    return options["db"][0] if "db" in options else None


class _Parser(Protocol):
    def __call__(self, text: str, *, variable: str) -> object: ...


def _parse_count(text: str, *, variable: str) -> int:
    # Each count's own minimum is checked in Settings.__post_init__, for code and env alike.
    return parse_int(text, variable=variable, minimum=0)


def _parse_text(text: str, *, variable: str) -> str:
    return text  # a path or a prefix is taken verbatim: its spaces may be meant


def _parse_word(text: str, *, variable: str) -> str:
    return text.strip().lower()  # a choice among fixed words; checked in __post_init__


_FRACTION_RE: Final = re.compile(rf"{_NUMBER}", _FLAGS)


def _parse_fraction(text: str, *, variable: str) -> float:
    forms = "use a fraction between 0 and 1, like 0.25 (0 turns it off)"
    if _FRACTION_RE.fullmatch(text.strip()) is None:
        raise ConfigError(f"{variable}={text!r} is not a fraction; {forms}")
    value = float(text)
    if value > 1:
        raise ConfigError(f"{variable}={text!r} is more than 1; {forms}")
    return value


def _parse_secret(text: str, *, variable: str) -> str:
    return text.strip()  # mounted secret files often end in a newline


def _parse_url(text: str, *, variable: str) -> str:
    return text.strip()  # secrets mounted from files often end in a newline; URLs hold no spaces


# variable -> (Settings field, parser of its text), in the order of the fields.
_TABLE: Final[Mapping[str, tuple[str, _Parser]]] = {
    "TIERCACHE_BLOCK_SIZE": ("block_size_bytes", parse_size),
    "TIERCACHE_MEMORY_BYTES": ("memory_bytes", parse_size),
    "TIERCACHE_DISK_DIR": ("disk_dir", _parse_text),
    "TIERCACHE_DISK_BYTES": ("disk_bytes", parse_size),
    "TIERCACHE_DISK_TIMEOUT": ("disk_timeout_s", parse_duration),
    "TIERCACHE_DISK_CLEAR_ON_START": ("disk_clear_on_start", parse_bool),
    "TIERCACHE_DISK_EVICTION": ("disk_eviction", _parse_word),
    "TIERCACHE_REDIS_URL": ("redis_url", _parse_url),
    "TIERCACHE_REDIS_TIMEOUT": ("redis_timeout_s", parse_duration),
    "TIERCACHE_REDIS_TTL": ("redis_ttl_s", parse_duration),
    "TIERCACHE_REDIS_MAX_VALUE_BYTES": ("redis_max_value_bytes", parse_size),
    "TIERCACHE_REDIS_PREFIX": ("redis_prefix", _parse_text),
    "TIERCACHE_REDIS_HMAC_KEY": ("redis_hmac_key", _parse_secret),
    "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED": ("redis_allow_unauthenticated", parse_bool),
    "TIERCACHE_INFO_TTL": ("info_ttl_s", parse_duration),
    "TIERCACHE_DELTA_LOG_TTL": ("delta_log_ttl_s", parse_duration),
    "TIERCACHE_ORIGIN_RETRIES": ("origin_retries", _parse_count),
    "TIERCACHE_ORIGIN_TIMEOUT": ("origin_timeout_s", parse_duration),
    "TIERCACHE_ORIGIN_CONCURRENCY": ("origin_concurrency", _parse_count),
    "TIERCACHE_BREAKER_FAILURES": ("breaker_failures", _parse_count),
    "TIERCACHE_BREAKER_COOLDOWN": ("breaker_cooldown_s", parse_duration),
    "TIERCACHE_FILL_QUEUE": ("fill_queue_size", _parse_count),
    "TIERCACHE_FILL_QUEUE_BYTES": ("fill_queue_bytes", parse_size),
    "TIERCACHE_WARM_MAX_FILES": ("warm_max_files", _parse_count),
    "TIERCACHE_WARM_MAX_BYTES": ("warm_max_bytes", parse_size),
    "TIERCACHE_WARM_CONCURRENCY": ("warm_concurrency", _parse_count),
    "TIERCACHE_WARM_TIME_LIMIT": ("warm_time_limit_s", parse_duration),
    "TIERCACHE_METRICS_PORT": ("metrics_port", _parse_count),
    "TIERCACHE_STATS_FILE": ("stats_file", _parse_text),
    "TIERCACHE_STATS_INTERVAL": ("stats_interval_s", parse_duration),
    "TIERCACHE_SHADOW_RATE": ("shadow_rate", _parse_fraction),
}
#: Every variable, mapped to the ``Settings`` field it sets: the one list of names, used by
#: ``from_env``; ``docs/configuration.md`` documents exactly these (tested).
VARIABLES: Final[Mapping[str, str]] = MappingProxyType({v: f for v, (f, _) in _TABLE.items()})
_VARIABLE_OF: Final[Mapping[str, str]] = {field: var for var, field in VARIABLES.items()}


_DAY: Final = 86400.0
#: The accepted range of every number: ``{field: (lowest, highest)}``, both ends included. Sizes
#: and counts are ints, durations float seconds. A value outside is a ``ConfigError`` stating the
#: range; ``docs/configuration.md`` states the same ranges (tested). The bounds keep values that
#: cannot work out: a 1 ns stats interval that burns a CPU, a budget larger than any machine.
RANGES: Final[Mapping[str, tuple[int | float, int | float]]] = MappingProxyType({
    "block_size_bytes": (4 * _KIB, 256 * _MIB),
    "memory_bytes": (0, 1024 * _GIB),  # 0 turns the RAM block tier off
    "disk_bytes": (_MIB, 64 * 1024 * _GIB),
    "disk_timeout_s": (0.001, 60.0),
    "redis_timeout_s": (0.001, 60.0),
    "redis_ttl_s": (1.0, 30 * _DAY),
    "redis_max_value_bytes": (1, 512 * _MIB),  # Redis's own limit on one value
    "info_ttl_s": (0.0, _DAY),  # 0: never reuse mutable info
    "delta_log_ttl_s": (0.0, _DAY),  # 0: always a fresh listing
    "origin_retries": (0, 100),
    "origin_timeout_s": (0.01, 3600.0),
    "origin_concurrency": (1, 4096),
    "breaker_failures": (1, 1000),
    "breaker_cooldown_s": (0.01, 3600.0),
    "fill_queue_size": (1, 1_000_000),
    # 0 turns background fills off; a fill larger than the budget is dropped (and counted), so a
    # budget below the block size lets only object info and listings through.
    "fill_queue_bytes": (0, 1024 * _GIB),
    "warm_max_files": (0, 1_000_000),  # 0: warm nothing
    "warm_max_bytes": (0, 1024 * _GIB),
    "warm_concurrency": (1, 256),
    "warm_time_limit_s": (0.01, 3600.0),
    "metrics_port": (0, 65535),  # 0: a free port (tests); None: no endpoint
    "stats_interval_s": (0.1, _DAY),
})  # fmt: skip

_NO_HMAC_KEY: Final = (
    "TIERCACHE_REDIS_URL is set but TIERCACHE_REDIS_HMAC_KEY is not: values shared through Redis "
    "must be authenticated, or anyone who can write to that Redis can make every pod return wrong "
    "bytes. Generate a key once (python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
    "and give every pod that shares the Redis the same one, for example from a Kubernetes Secret; "
    "or, only if no one else can write to this Redis, set "
    "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED=true (see docs/redis-tier.md, 'Threat model')"
)

#: What ``tiercache config``, ``tiercache doctor`` and the log say when the opt-out is in force.
UNAUTHENTICATED_REDIS: Final = (
    "values shared through Redis are NOT authenticated (TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED=true "
    "and no TIERCACHE_REDIS_HMAC_KEY): anyone who can write to this Redis can make every pod "
    "return wrong bytes; set TIERCACHE_REDIS_HMAC_KEY unless no one else can write to it"
)


def describe_range(field: str) -> str:
    """Return the accepted range of a numeric setting as the docs state it, e.g. ``1ms to 60s``."""
    low, high = RANGES[field]
    if field.endswith("_s"):
        return f"{_show_seconds(float(low))} to {_show_seconds(float(high))}"
    if field.endswith("_bytes"):
        return f"{_show_bytes(int(low))} to {_show_bytes(int(high))}"
    return f"{int(low)} to {int(high)}"


def _show_bytes(value: int) -> str:
    for unit, size in (("TiB", 1024 * _GIB), ("GiB", _GIB), ("MiB", _MIB), ("KiB", _KIB)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


def _show_seconds(value: float) -> str:
    for unit, size in (("h", 3600.0), ("s", 1.0)):
        if value >= size and value % size == 0:
            return f"{round(value / size)}{unit}"
    return f"{round(value * 1000)}ms" if value else "0"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tiercache setting, validated on construction.

    Build one from the environment with ``Settings.from_env()``, or directly in code; each field
    names its variable, whose meaning, accepted forms and default are in
    ``docs/configuration.md``. Sizes are ints in bytes, durations float seconds.

    Raises:
        ConfigError: a field has the wrong type or is out of range; the message names the field
            and its variable.
    """

    block_size_bytes: int = _MIB  # TIERCACHE_BLOCK_SIZE
    memory_bytes: int = 256 * _MIB  # TIERCACHE_MEMORY_BYTES
    disk_dir: str | None = None  # TIERCACHE_DISK_DIR
    disk_bytes: int = _GIB  # TIERCACHE_DISK_BYTES
    disk_timeout_s: float = 0.05  # TIERCACHE_DISK_TIMEOUT
    disk_clear_on_start: bool = False  # TIERCACHE_DISK_CLEAR_ON_START
    disk_eviction: str = "least-recently-stored"  # TIERCACHE_DISK_EVICTION
    redis_url: str | None = None  # TIERCACHE_REDIS_URL
    redis_timeout_s: float = 0.05  # TIERCACHE_REDIS_TIMEOUT
    redis_ttl_s: float = 3600.0  # TIERCACHE_REDIS_TTL
    redis_max_value_bytes: int = 4 * _MIB  # TIERCACHE_REDIS_MAX_VALUE_BYTES
    redis_prefix: str = "tiercache:"  # TIERCACHE_REDIS_PREFIX
    redis_hmac_key: str | None = None  # TIERCACHE_REDIS_HMAC_KEY (a secret: never shown)
    # TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED: without a key, the Redis tier starts only with this.
    redis_allow_unauthenticated: bool = False
    info_ttl_s: float = 60.0  # TIERCACHE_INFO_TTL
    delta_log_ttl_s: float = 0.0  # TIERCACHE_DELTA_LOG_TTL (0: list the log on every open)
    origin_retries: int = 3  # TIERCACHE_ORIGIN_RETRIES
    origin_timeout_s: float = 30.0  # TIERCACHE_ORIGIN_TIMEOUT
    origin_concurrency: int = 32  # TIERCACHE_ORIGIN_CONCURRENCY
    breaker_failures: int = 5  # TIERCACHE_BREAKER_FAILURES
    breaker_cooldown_s: float = 5.0  # TIERCACHE_BREAKER_COOLDOWN
    fill_queue_size: int = 1024  # TIERCACHE_FILL_QUEUE
    fill_queue_bytes: int = 16 * _MIB  # TIERCACHE_FILL_QUEUE_BYTES (0: no background fills)
    warm_max_files: int = 32  # TIERCACHE_WARM_MAX_FILES
    warm_max_bytes: int = 64 * _MIB  # TIERCACHE_WARM_MAX_BYTES
    warm_concurrency: int = 8  # TIERCACHE_WARM_CONCURRENCY
    warm_time_limit_s: float = 10.0  # TIERCACHE_WARM_TIME_LIMIT
    metrics_port: int | None = None  # TIERCACHE_METRICS_PORT
    stats_file: str | None = None  # TIERCACHE_STATS_FILE
    stats_interval_s: float = 60.0  # TIERCACHE_STATS_INTERVAL
    shadow_rate: float | None = None  # TIERCACHE_SHADOW_RATE (None: chosen from the RAM size)

    def __post_init__(self) -> None:
        for name, (low, high) in RANGES.items():
            if name.endswith("_s"):
                _check_seconds(self, name, low, high)
            elif name != "metrics_port" or self.metrics_port is not None:
                _check_int(self, name, int(low), int(high))
        _check_text(self, "disk_dir", optional=True)
        if not isinstance(self.disk_clear_on_start, bool):
            raise _invalid("disk_clear_on_start", "True or False", self.disk_clear_on_start)
        if self.disk_eviction not in DISK_EVICTION_POLICIES:
            raise _invalid(
                "disk_eviction", "one of " + ", ".join(DISK_EVICTION_POLICIES), self.disk_eviction
            )
        _check_text(self, "redis_url", optional=True)
        if self.redis_url is not None:
            check_redis_url(self.redis_url)
        _check_text(self, "redis_prefix", optional=False)
        _check_text(self, "redis_hmac_key", optional=True)
        if self.redis_hmac_key is not None and len(self.redis_hmac_key) < _MIN_HMAC_KEY:
            raise _invalid("redis_hmac_key", f"at least {_MIN_HMAC_KEY} characters", "<secret>")
        if not isinstance(self.redis_allow_unauthenticated, bool):
            raise _invalid(
                "redis_allow_unauthenticated", "True or False", self.redis_allow_unauthenticated
            )
        if (
            self.redis_url is not None
            and self.redis_hmac_key is None
            and not self.redis_allow_unauthenticated
        ):
            raise ConfigError(_NO_HMAC_KEY)
        if self.metrics_port is not None and importlib.util.find_spec("prometheus_client") is None:
            raise ConfigError(
                f"TIERCACHE_METRICS_PORT={self.metrics_port} needs prometheus-client, which is not "
                "installed: pip install 'tiercache[metrics]' (or leave the variable unset)"
            )
        _check_text(self, "stats_file", optional=True)
        if self.shadow_rate is not None and (
            isinstance(self.shadow_rate, bool)
            or not isinstance(self.shadow_rate, int | float)
            or not 0 <= self.shadow_rate <= 1
        ):
            raise _invalid("shadow_rate", "a number between 0 and 1, or None", self.shadow_rate)

    @property
    def redis_unauthenticated(self) -> bool:
        """Whether values shared through Redis go unauthenticated (the explicit opt-out)."""
        return self.redis_url is not None and self.redis_hmac_key is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TIERCACHE_*`` variables, with keyword overrides on top.

        Precedence: ``overrides`` > ``environ`` > defaults. A variable set to the empty string
        counts as unset. Every ``TIERCACHE_*`` name must be known, so that a typo fails loudly
        instead of being silently ignored; other variables are ignored.

        Args:
            environ: The environment to read; ``os.environ`` when None.
            **overrides: Field values (``memory_bytes=0``), already typed, not strings to parse.

        Raises:
            ConfigError: an unknown variable or override, or a malformed or out-of-range value.
        """
        env = os.environ if environ is None else environ
        unknown_overrides = sorted(set(overrides) - set(_VARIABLE_OF))
        if unknown_overrides:
            raise ConfigError(
                "Settings.from_env() got unknown keyword arguments: "
                + ", ".join(_with_hint(name, _VARIABLE_OF) for name in unknown_overrides)
                + "; the keywords are the fields of tiercache.Settings"
            )
        # Case-insensitive on purpose: tiercache_memory_bytes is a typo to report, not to skip.
        unknown = sorted(
            name for name in env if name.upper().startswith("TIERCACHE_") and name not in VARIABLES
        )
        if unknown:
            raise ConfigError(
                f"unknown variable{'s' if len(unknown) > 1 else ''}: "
                + ", ".join(_with_hint(name, VARIABLES) for name in unknown)
                + f"; every TIERCACHE_* variable must be one documented in {_DOCS}: "
                + ", ".join(VARIABLES)
            )
        values: dict[str, Any] = {}
        for variable, (field, parse) in _TABLE.items():
            text = env.get(variable, "")
            if text and field not in overrides:  # empty counts as unset; an override wins
                values[field] = parse(text, variable=variable)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_env_with_sources(
        cls,
        environ: Mapping[str, str] | None = None,
        arguments: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> tuple[Settings, dict[str, str]]:
        """Build settings like :meth:`from_env`, and say where each variable's value came from.

        Precedence: ``overrides`` and ``arguments`` > ``environ`` > defaults. ``arguments`` are
        ``TIERCACHE_*`` variables given as text (the command line's ``--set VARIABLE=VALUE``),
        parsed exactly like the environment, with the same errors; an empty value there unsets
        the variable (its default applies, whatever the environment says). A variable set to
        the empty string in ``environ`` counts as unset, as in :meth:`from_env`.

        Args:
            environ: The environment to read; ``os.environ`` when None.
            arguments: ``{variable: text}`` given explicitly; they win over the environment.
            **overrides: Field values, already typed, as for :meth:`from_env`; they win over
                ``arguments`` for the same setting.

        Returns:
            The settings, and ``{variable: source}`` for every variable in :data:`VARIABLES`
            order, the source being ``"argument"``, ``"environment"`` or ``"default"``.

        Raises:
            ConfigError: an unknown variable (in ``environ`` or ``arguments``) or override, or a
                malformed or out-of-range value.
        """
        env = os.environ if environ is None else environ
        given = dict(arguments or {})
        unknown = sorted(name for name in given if name not in VARIABLES)
        if unknown:
            raise ConfigError(
                f"unknown variable{'s' if len(unknown) > 1 else ''} in arguments: "
                + ", ".join(_with_hint(name, VARIABLES) for name in unknown)
                + f"; the variables are those documented in {_DOCS}: "
                + ", ".join(VARIABLES)
            )
        settings = cls.from_env({**env, **given}, **overrides)
        sources: dict[str, str] = {}
        for variable, field in VARIABLES.items():
            if field in overrides or variable in given:
                sources[variable] = "argument"
            elif env.get(variable, ""):
                sources[variable] = "environment"
            else:
                sources[variable] = "default"
        return settings, sources

    def describe(self) -> dict[str, object]:
        """Return ``{variable: value}`` for every setting, the Redis URL redacted (for the CLI)."""
        return {variable: _shown(self, field) for variable, field in VARIABLES.items()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={_shown(self, f.name)!r}" for f in fields(self))
        return f"Settings({shown})"


def _shown(settings: Settings, field: str) -> object:
    value = getattr(settings, field)
    if value is None:
        return None
    if field == "redis_hmac_key":
        return "***"
    return redact_url(value) if field == "redis_url" else value


def _with_hint(name: str, known: Iterable[str]) -> str:
    by_upper = {k.upper(): k for k in known}
    close = difflib.get_close_matches(name.upper(), by_upper, n=1)
    return f"{name} (did you mean {by_upper[close[0]]}?)" if close else name


def _invalid(field: str, requirement: str, value: object) -> ConfigError:
    if field == "redis_url" and value is not None:
        value = redact_url(str(value))  # the message must never carry the password
    return ConfigError(
        f"Settings.{field} ({_VARIABLE_OF[field]}) must be {requirement}, got {value!r}"
    )


def _check_int(settings: Settings, field: str, low: int, high: int) -> None:
    value = getattr(settings, field)
    # bool is an int subclass; True as a byte count or a retry count is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, "an int", value)
    if not low <= value <= high:
        raise _invalid(field, f"from {describe_range(field)} ({low} to {high})", value)


def _check_seconds(settings: Settings, field: str, low: float, high: float) -> None:
    value = getattr(settings, field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(field, "a finite number of seconds", value)
    if not low <= value <= high:
        raise _invalid(field, f"from {describe_range(field)} ({low:g} to {high:g} s)", value)
    object.__setattr__(settings, field, float(value))  # frozen: store 1 as 1.0 once, here


def _check_text(settings: Settings, field: str, *, optional: bool) -> None:
    value = getattr(settings, field)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise _invalid(field, "a non-empty string" + (" or None" if optional else ""), value)
    if "\x00" in value:  # no path, URL or key can hold one; the OS would reject it later
        shown = "<secret>" if field == "redis_hmac_key" else value
        raise _invalid(field, "free of NUL characters", shown)
