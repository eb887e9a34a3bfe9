"""Settings and the ``TIERCACHE_*`` environment variables that build them.

``Settings.from_env()`` reads the environment; explicit keyword overrides win over it, and it wins
over the defaults. Every variable is documented in ``docs/configuration.md``; ``VARIABLES`` below is
the single list of names, and a test keeps the two in step. Every value is checked in
``Settings.__post_init__``, so a ``Settings(...)`` built in code is held to the same rules as one
built from the environment. Errors are ``ConfigError`` naming the variable and the accepted forms.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Final

from .config_fields import (
    SECRETS,
    boolean,
    check_fields,
    describe_bounds,
    eviction_policy,
    fraction,
    fraction_or_none,
    hmac_key_or_none,
    host_and_port,
    memory_policy,
    optional_text,
    redis_url_or_none,
    required_text,
    setting,
)
from .errors import ConfigError
from .parsing import (
    DOCS,
    GIB,
    KIB,
    MIB,
    Parser,
    parse_bool,
    parse_count,
    parse_duration,
    parse_fraction,
    parse_int,
    parse_secret,
    parse_size,
    parse_text,
    parse_url,
    parse_word,
    redact_url,
    with_hint,
)
from .redis_url import check_redis_url

__all__ = [
    "RANGES", "UNAUTHENTICATED_REDIS", "VARIABLES", "Settings",
    "check_redis_url", "describe_range",
    "parse_bool", "parse_duration", "parse_int", "parse_size", "redact_url",
]  # fmt: skip

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
    return describe_bounds(field, *RANGES[field])


_DAY: Final = 86400.0
_TIB: Final = 1024 * GIB


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

    block_size_bytes: int = setting(
        "TIERCACHE_BLOCK_SIZE", MIB, parse_size, low=4 * KIB, high=256 * MIB
    )
    # 0 turns the RAM block tier off
    memory_bytes: int = setting("TIERCACHE_MEMORY_BYTES", 256 * MIB, parse_size, low=0, high=_TIB)
    memory_policy: str = setting(
        "TIERCACHE_MEMORY_POLICY", "s3fifo", parse_word, check=memory_policy
    )
    disk_dir: str | None = setting("TIERCACHE_DISK_DIR", None, parse_text, check=optional_text)
    disk_bytes: int = setting("TIERCACHE_DISK_BYTES", GIB, parse_size, low=MIB, high=64 * _TIB)
    disk_timeout_s: float = setting(
        "TIERCACHE_DISK_TIMEOUT", 0.05, parse_duration, low=0.001, high=60.0
    )
    disk_clear_on_start: bool = setting(
        "TIERCACHE_DISK_CLEAR_ON_START", False, parse_bool, check=boolean
    )
    disk_eviction: str = setting(
        "TIERCACHE_DISK_EVICTION", "least-recently-stored", parse_word, check=eviction_policy
    )
    redis_url: str | None = setting("TIERCACHE_REDIS_URL", None, parse_url, check=redis_url_or_none)
    redis_timeout_s: float = setting(
        "TIERCACHE_REDIS_TIMEOUT", 0.05, parse_duration, low=0.001, high=60.0
    )
    redis_ttl_s: float = setting(
        "TIERCACHE_REDIS_TTL", 3600.0, parse_duration, low=1.0, high=30 * _DAY
    )
    # Redis's own limit on one value is 512 MiB.
    redis_max_value_bytes: int = setting(
        "TIERCACHE_REDIS_MAX_VALUE_BYTES", 4 * MIB, parse_size, low=1, high=512 * MIB
    )
    redis_prefix: str = setting(
        "TIERCACHE_REDIS_PREFIX", "tiercache:", parse_text, check=required_text
    )
    # A secret: never shown.
    redis_hmac_key: str | None = setting(
        "TIERCACHE_REDIS_HMAC_KEY", None, parse_secret, check=hmac_key_or_none
    )
    # Without a key, the Redis tier starts only with this.
    redis_allow_unauthenticated: bool = setting(
        "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED", False, parse_bool, check=boolean
    )
    # 0: never reuse the info of a mutable path.
    info_ttl_s: float = setting("TIERCACHE_INFO_TTL", 60.0, parse_duration, low=0.0, high=_DAY)
    # 0: list the Delta log on every open.
    delta_log_ttl_s: float = setting(
        "TIERCACHE_DELTA_LOG_TTL", 0.0, parse_duration, low=0.0, high=_DAY
    )
    origin_retries: int = setting("TIERCACHE_ORIGIN_RETRIES", 3, parse_count, low=0, high=100)
    origin_timeout_s: float = setting(
        "TIERCACHE_ORIGIN_TIMEOUT", 30.0, parse_duration, low=0.01, high=3600.0
    )
    origin_concurrency: int = setting(
        "TIERCACHE_ORIGIN_CONCURRENCY", 32, parse_count, low=1, high=4096
    )
    # Readahead of sequential scans of open files (tiercache.readahead); at most a quarter of the
    # RAM tier is used; 0 turns it off.
    readahead_bytes: int = setting(
        "TIERCACHE_READAHEAD_BYTES", 64 * MIB, parse_size, low=0, high=64 * GIB
    )
    # Hedged reads (docs/reliability.md): on by default, bounded by the budget.
    origin_hedge: bool = setting("TIERCACHE_ORIGIN_HEDGE", True, parse_bool, check=boolean)
    # 0 turns hedging off too.
    origin_hedge_budget: float = setting(
        "TIERCACHE_ORIGIN_HEDGE_BUDGET", 0.05, parse_fraction, check=fraction
    )
    breaker_failures: int = setting("TIERCACHE_BREAKER_FAILURES", 5, parse_count, low=1, high=1000)
    breaker_cooldown_s: float = setting(
        "TIERCACHE_BREAKER_COOLDOWN", 5.0, parse_duration, low=0.01, high=3600.0
    )
    fill_queue_size: int = setting("TIERCACHE_FILL_QUEUE", 1024, parse_count, low=1, high=1_000_000)
    # 0 turns background fills off; a fill larger than the budget is dropped (and counted), so a
    # budget below the block size lets only object info and listings through.
    fill_queue_bytes: int = setting(
        "TIERCACHE_FILL_QUEUE_BYTES", 16 * MIB, parse_size, low=0, high=_TIB
    )
    # 0: warm nothing.
    warm_max_files: int = setting(
        "TIERCACHE_WARM_MAX_FILES", 32, parse_count, low=0, high=1_000_000
    )
    warm_max_bytes: int = setting(
        "TIERCACHE_WARM_MAX_BYTES", 64 * MIB, parse_size, low=0, high=_TIB
    )
    warm_concurrency: int = setting("TIERCACHE_WARM_CONCURRENCY", 8, parse_count, low=1, high=256)
    warm_time_limit_s: float = setting(
        "TIERCACHE_WARM_TIME_LIMIT", 10.0, parse_duration, low=0.01, high=3600.0
    )
    # 0: a free port (tests); None: no endpoint.
    metrics_port: int | None = setting(
        "TIERCACHE_METRICS_PORT", None, parse_count, low=0, high=65535
    )
    stats_file: str | None = setting("TIERCACHE_STATS_FILE", None, parse_text, check=optional_text)
    # Shorter would spend a CPU rewriting the file.
    stats_interval_s: float = setting(
        "TIERCACHE_STATS_INTERVAL", 60.0, parse_duration, low=0.1, high=_DAY
    )
    # None: chosen from the RAM size.
    shadow_rate: float | None = setting(
        "TIERCACHE_SHADOW_RATE", None, parse_fraction, check=fraction_or_none
    )
    # Where `tiercache serve` listens (the embedded gateway takes its own, default a free port).
    gateway_listen: str = setting(
        "TIERCACHE_GATEWAY_LISTEN", "127.0.0.1:9000", parse_text, check=host_and_port
    )
    # The credentials the gateway's clients sign with (SigV4); both or neither.
    gateway_access_key_id: str | None = setting(
        "TIERCACHE_GATEWAY_ACCESS_KEY_ID", None, parse_secret, check=optional_text
    )
    # A secret: never shown.
    gateway_secret_access_key: str | None = setting(
        "TIERCACHE_GATEWAY_SECRET_ACCESS_KEY", None, parse_secret, check=optional_text
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if (
            self.redis_url is not None
            and self.redis_hmac_key is None
            and not self.redis_allow_unauthenticated
        ):
            raise ConfigError(_NO_HMAC_KEY)
        if (self.gateway_access_key_id is None) != (self.gateway_secret_access_key is None):
            raise ConfigError(
                "TIERCACHE_GATEWAY_ACCESS_KEY_ID and TIERCACHE_GATEWAY_SECRET_ACCESS_KEY go "
                "together: set both (the gateway then verifies every request's signature) or "
                "neither (it then listens on loopback addresses only)"
            )
        if self.metrics_port is not None and importlib.util.find_spec("prometheus_client") is None:
            raise ConfigError(
                f"TIERCACHE_METRICS_PORT={self.metrics_port} needs prometheus-client, which is not "
                "installed: pip install 'tiercache[metrics]' (or leave the variable unset)"
            )

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
                + ", ".join(with_hint(name, _VARIABLE_OF) for name in unknown_overrides)
                + "; the keywords are the fields of tiercache.Settings"
            )
        # Case-insensitive on purpose: tiercache_memory_bytes is a typo to report, not to skip.
        unknown = sorted(
            name for name in env if name.upper().startswith("TIERCACHE_") and name not in VARIABLES
        )
        if unknown:
            raise ConfigError(
                f"unknown variable{'s' if len(unknown) > 1 else ''}: "
                + ", ".join(with_hint(name, VARIABLES) for name in unknown)
                + f"; every TIERCACHE_* variable must be one documented in {DOCS}: "
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
                + ", ".join(with_hint(name, VARIABLES) for name in unknown)
                + f"; the variables are those documented in {DOCS}: "
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


#: Every variable, mapped to the ``Settings`` field it sets, in the order of the fields: the
#: one list of names, used by ``from_env``; ``docs/configuration.md`` documents exactly these
#: (tested).
VARIABLES: Final[Mapping[str, str]] = MappingProxyType(
    {spec.metadata["variable"]: spec.name for spec in fields(Settings)}
)
_VARIABLE_OF: Final[Mapping[str, str]] = {name: var for var, name in VARIABLES.items()}
# variable -> (Settings field, parser of its text).
_TABLE: Final[Mapping[str, tuple[str, Parser]]] = {
    spec.metadata["variable"]: (spec.name, spec.metadata["parse"]) for spec in fields(Settings)
}
#: The accepted range of every number: ``{field: (lowest, highest)}``, both ends included. Sizes
#: and counts are ints, durations float seconds. A value outside is a ``ConfigError`` stating the
#: range; ``docs/configuration.md`` states the same ranges (tested). The bounds keep values that
#: cannot work out: a 1 ns stats interval that burns a CPU, a budget larger than any machine.
RANGES: Final[Mapping[str, tuple[int | float, int | float]]] = MappingProxyType(
    {spec.name: spec.metadata["range"] for spec in fields(Settings) if "range" in spec.metadata}
)


def _shown(settings: Settings, field: str) -> object:
    value = getattr(settings, field)
    if value is None:
        return None
    if field in SECRETS:
        return "***"
    return redact_url(value) if field == "redis_url" else value
