"""How one setting is declared and checked: the field that carries its variable, and its checks.

A ``Settings`` field is made by :func:`setting`: its ``TIERCACHE_*`` variable, default and parser,
and either a range (numbers: sizes and counts are ints, durations float seconds) or a check
(everything else). :func:`check_fields` holds a settings object to every field's range or check;
``Settings.__post_init__`` calls it, so values built in code meet the same rules as values read
from the environment. A failure is a ``ConfigError`` naming the field, its variable and what it
accepts, never showing a secret or a URL's password.

Kept apart from :mod:`tiercache.config` so that the class there reads as the list of settings.
The checks see a settings object only through its dataclass fields, so this module does not
import ``Settings`` (which imports it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

from .errors import ConfigError
from .parsing import GIB, KIB, MIB, Parser, redact_url
from .redis_url import check_redis_url

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_MIN_HMAC_KEY: Final = 16
#: diskcache eviction policies the disk tier may use (measured in docs/benchmarks.md).
DISK_EVICTION_POLICIES: Final = (
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
)

#: RAM tier policies (``TIERCACHE_MEMORY_POLICY``; docs/configuration.md says when each pays).
MEMORY_POLICIES: Final = ("s3fifo", "lru")


class Check(Protocol):
    """The check of a setting that has no range: raise ``ConfigError`` if the value is wrong."""

    def __call__(self, settings: DataclassInstance, field: str, /) -> None: ...


#: Fields holding secrets: never shown, in errors, ``repr`` or ``tiercache config``.
SECRETS = frozenset({"redis_hmac_key", "gateway_secret_access_key"})


def setting(
    variable: str,
    default: Any,
    parse: Parser,
    *,
    low: float | None = None,
    high: float | None = None,
    check: Check | None = None,
) -> Any:
    """One setting: its variable, default, parser, and its range (numbers) or check (others).

    Everything about a variable is written once, here, on its field; ``VARIABLES``, ``RANGES``
    and ``Settings.__post_init__`` are derived from the fields.
    """
    metadata: dict[str, object] = {"variable": variable, "parse": parse}
    if low is not None and high is not None:
        metadata["range"] = (low, high)
    if check is not None:
        metadata["check"] = check
    return dataclasses.field(default=default, metadata=MappingProxyType(metadata))


def describe_bounds(field: str, low: float, high: float) -> str:
    """Return a numeric setting's range as the docs state it, e.g. ``1ms to 60s``."""
    if field.endswith("_s"):
        return f"{_show_seconds(float(low))} to {_show_seconds(float(high))}"
    if field.endswith("_bytes"):
        return f"{_show_bytes(int(low))} to {_show_bytes(int(high))}"
    return f"{int(low)} to {int(high)}"


def _show_bytes(value: int) -> str:
    for unit, size in (("TiB", 1024 * GIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


def _show_seconds(value: float) -> str:
    for unit, size in (("h", 3600.0), ("s", 1.0)):
        if value >= size and value % size == 0:
            return f"{round(value / size)}{unit}"
    return f"{round(value * 1000)}ms" if value else "0"


def check_fields(settings: DataclassInstance) -> None:
    """Check every field made by :func:`setting` against its range or its check.

    A duration is stored as a float once checked (``1`` becomes ``1.0``). A field whose default
    is ``None`` may be ``None`` whatever its range.

    Raises:
        ConfigError: A field has the wrong type or is out of range.
    """
    for spec in fields(settings):
        bounds = spec.metadata.get("range")
        if bounds is not None and not (
            spec.default is None and getattr(settings, spec.name) is None
        ):
            low, high = bounds
            if spec.name.endswith("_s"):
                _check_seconds(settings, spec.name, low, high)
            else:
                _check_int(settings, spec.name, int(low), int(high))
        elif bounds is None:
            spec.metadata["check"](settings, spec.name)


# -- the checks of the settings that have no range ----------------------------------------------


def optional_text(settings: DataclassInstance, name: str, /) -> None:
    """A non-empty string without NUL, or ``None``."""
    _check_text(settings, name, optional=True)


def required_text(settings: DataclassInstance, name: str, /) -> None:
    """A non-empty string without NUL."""
    _check_text(settings, name, optional=False)


def boolean(settings: DataclassInstance, name: str, /) -> None:
    """``True`` or ``False``, not merely truthy."""
    value = getattr(settings, name)
    if not isinstance(value, bool):
        raise _invalid(settings, name, "True or False", value)


def eviction_policy(settings: DataclassInstance, name: str, /) -> None:
    """One of :data:`DISK_EVICTION_POLICIES`."""
    value = getattr(settings, name)
    if value not in DISK_EVICTION_POLICIES:
        raise _invalid(settings, name, "one of " + ", ".join(DISK_EVICTION_POLICIES), value)


def memory_policy(settings: DataclassInstance, name: str, /) -> None:
    """One of :data:`MEMORY_POLICIES`."""
    value = getattr(settings, name)
    if value not in MEMORY_POLICIES:
        raise _invalid(settings, name, "one of " + ", ".join(MEMORY_POLICIES), value)


def redis_url_or_none(settings: DataclassInstance, name: str, /) -> None:
    """``None``, or a Redis URL the client library accepts and uses as meant."""
    _check_text(settings, name, optional=True)
    value = getattr(settings, name)
    if value is not None:
        check_redis_url(value)


def hmac_key_or_none(settings: DataclassInstance, name: str, /) -> None:
    """``None``, or a key long enough to authenticate values (never shown in the error)."""
    _check_text(settings, name, optional=True)
    value = getattr(settings, name)
    if value is not None and len(value) < _MIN_HMAC_KEY:
        raise _invalid(settings, name, f"at least {_MIN_HMAC_KEY} characters", "<secret>")


def host_and_port(settings: DataclassInstance, name: str, /) -> None:
    """``HOST:PORT`` (``[v6]:PORT``), the port 0 to 65535."""
    _check_text(settings, name, optional=False)
    value = getattr(settings, name)
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or int(port) > 65535:
        raise _invalid(settings, name, "HOST:PORT, e.g. 127.0.0.1:9000", value)


def fraction(settings: DataclassInstance, name: str, /) -> None:
    """A number from 0 to 1."""
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _invalid(settings, name, "a number between 0 and 1", value)


def fraction_or_none(settings: DataclassInstance, name: str, /) -> None:
    """``None``, or a number from 0 to 1."""
    value = getattr(settings, name)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
    ):
        raise _invalid(settings, name, "a number between 0 and 1, or None", value)


# -- the checks every field shares ----------------------------------------------------------------


def _invalid(
    settings: DataclassInstance, field: str, requirement: str, value: object
) -> ConfigError:
    if field == "redis_url" and value is not None:
        value = redact_url(str(value))  # the message must never carry the password
    variable = next(spec.metadata["variable"] for spec in fields(settings) if spec.name == field)
    return ConfigError(f"Settings.{field} ({variable}) must be {requirement}, got {value!r}")


def _check_int(settings: DataclassInstance, field: str, low: int, high: int) -> None:
    value = getattr(settings, field)
    # bool is an int subclass; True as a byte count or a retry count is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(settings, field, "an int", value)
    if not low <= value <= high:
        described = describe_bounds(field, low, high)
        raise _invalid(settings, field, f"from {described} ({low} to {high})", value)


def _check_seconds(settings: DataclassInstance, field: str, low: float, high: float) -> None:
    value = getattr(settings, field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(settings, field, "a finite number of seconds", value)
    if not low <= value <= high:
        described = describe_bounds(field, low, high)
        raise _invalid(settings, field, f"from {described} ({low:g} to {high:g} s)", value)
    object.__setattr__(settings, field, float(value))  # frozen: store 1 as 1.0 once, here


def _check_text(settings: DataclassInstance, field: str, *, optional: bool) -> None:
    value = getattr(settings, field)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise _invalid(
            settings, field, "a non-empty string" + (" or None" if optional else ""), value
        )
    if "\x00" in value:  # no path, URL or key can hold one; the OS would reject it later
        shown = "<secret>" if field in SECRETS else value
        raise _invalid(settings, field, "free of NUL characters", shown)
