"""Text to values: the forms every ``TIERCACHE_*`` variable is written in, and URL redaction.

Sizes (``64KiB``), durations (``250ms``), booleans, counts and fractions, each parser raising a
``ConfigError`` that names the variable and the accepted forms; :func:`redact_url` hides the
secrets of a URL wherever one is shown. :mod:`tiercache.config` builds ``Settings`` from these.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Final, Protocol

from .errors import ConfigError

__all__ = [
    "DOCS", "FLAGS", "GIB", "KIB", "MIB", "Parser",
    "parse_bool", "parse_count", "parse_duration", "parse_fraction", "parse_int", "parse_secret",
    "parse_size", "parse_text", "parse_url", "parse_word", "redact_url", "with_hint",
]  # fmt: skip

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB

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

# ASCII only: int() would take other scripts' digits, which no one means in a variable. Digit
# counts are capped so that no value can make int()/float() raise or work for long.
FLAGS: Final = re.IGNORECASE | re.ASCII
_NUMBER: Final = r"(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})"
_SIZE_RE: Final = re.compile(rf"({_NUMBER})(?: ?([a-z]+))?", FLAGS)
_DURATION_RE: Final = re.compile(rf"({_NUMBER}(?:e[+-]?\d{{1,2}})?)(?: ?([a-z]+))?", FLAGS)
_INT_RE: Final = re.compile(r"[+-]?\d{1,30}", FLAGS)

_SIZE_FORMS: Final = (
    "use a byte count like 123, 64KiB, 512MiB, 2GiB "
    "(KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000)"
)
_DURATION_FORMS: Final = "use 250ms, 2s, 5m, 1h or a bare number of seconds like 0.05"
_BOOL_FORMS: Final = "use true/false, 1/0, yes/no or on/off"
DOCS: Final = "docs/configuration.md"
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


class Parser(Protocol):
    def __call__(self, text: str, *, variable: str) -> object: ...


def parse_count(text: str, *, variable: str) -> int:
    # Each count's own minimum is checked in Settings.__post_init__, for code and env alike.
    return parse_int(text, variable=variable, minimum=0)


def parse_text(text: str, *, variable: str) -> str:
    return text  # a path or a prefix is taken verbatim: its spaces may be meant


def parse_word(text: str, *, variable: str) -> str:
    return text.strip().lower()  # a choice among fixed words; checked in __post_init__


_FRACTION_RE: Final = re.compile(rf"{_NUMBER}", FLAGS)


def parse_fraction(text: str, *, variable: str) -> float:
    forms = "use a fraction between 0 and 1, like 0.25 (0 turns it off)"
    if _FRACTION_RE.fullmatch(text.strip()) is None:
        raise ConfigError(f"{variable}={text!r} is not a fraction; {forms}")
    value = float(text)
    if value > 1:
        raise ConfigError(f"{variable}={text!r} is more than 1; {forms}")
    return value


def parse_secret(text: str, *, variable: str) -> str:
    return text.strip()  # mounted secret files often end in a newline


def parse_url(text: str, *, variable: str) -> str:
    return text.strip()  # secrets mounted from files often end in a newline; URLs hold no spaces


def with_hint(name: str, known: Iterable[str]) -> str:
    by_upper = {k.upper(): k for k in known}
    close = difflib.get_close_matches(name.upper(), by_upper, n=1)
    return f"{name} (did you mean {by_upper[close[0]]}?)" if close else name
