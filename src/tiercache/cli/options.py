"""``--storage-option KEY=VALUE``: the one way every storage command takes origin options.

The keys are the origin filesystem's own (fsspec / s3fs) keyword arguments, e.g.
``endpoint_url=http://minio:9000``, ``key=...``, ``secret=...``, ``anon=true``. Rules:

- ``KEY=VALUE``, repeatable; the last one of a key wins; a value may be empty. A pair with no
  ``=`` or an empty key is a configuration error (exit 2) naming the pair.
- A dotted key sets a nested option: ``client_kwargs.region_name=eu-west-1`` is
  ``{"client_kwargs": {"region_name": "eu-west-1"}}``.
- Shorthands for s3fs: ``endpoint_url`` and ``region_name`` (or ``region``) go to
  ``client_kwargs``, where every s3fs version reads them. For another origin (gcsfs, adlfs)
  every key is that filesystem's own, as given (gcsfs takes ``endpoint_url`` at the top).
- Values are strings, except ``true`` / ``false`` (any case), which are booleans, and decimal
  integers (``max_concurrency=8``), which are ints. Credentials (``key``, ``secret``, ``token``)
  and the endpoint are always strings.
- deltalake-style keys (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ...: upper
  case, ``AWS_`` prefix), which ``tiercache warm`` took before, are still accepted and translated
  to the s3fs keys, with a deprecation warning on stderr; those with no s3fs counterpart
  (``AWS_ALLOW_HTTP``) are dropped with the warning.

The standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...)
applies as usual underneath: options given here win over it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from tiercache.errors import ConfigError

#: The usage named in every error about a malformed pair.
USAGE = "--storage-option takes KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000"
# s3fs options that belong in client_kwargs (botocore's client arguments).
_CLIENT_KWARGS = {
    "endpoint_url": "endpoint_url",
    "region_name": "region_name",
    "region": "region_name",
}
# Always strings, whatever they look like.
_STRINGS = {"key", "secret", "token", "endpoint_url", "region_name", "profile"}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DELTALAKE_KEY = re.compile(r"AWS_[A-Z0-9_]+")


def parse_storage_options(
    pairs: Sequence[str], *, command: str = "tiercache", protocol: str = "s3"
) -> dict[str, Any]:
    """Return the origin filesystem's options from ``--storage-option`` pairs (see the module).

    Args:
        pairs: The ``KEY=VALUE`` strings, in the order given.
        command: Who is asking (``"tiercache warm"``), for the deprecation warning.
        protocol: The origin's protocol: the s3fs shorthands and deltalake's ``AWS_*`` keys
            apply to ``s3`` only; for another (``gs``, ``abfs``...) every key is the
            filesystem's own, as given.

    Raises:
        ConfigError: A pair has no ``=``, an empty key or an empty part of a dotted key.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{USAGE}, got {pair!r}")
        s3 = protocol in ("s3", "s3a")
        if s3 and _DELTALAKE_KEY.fullmatch(name):
            _deltalake(options, name, text, command)
            continue
        parts = name.split(".")
        if not all(parts):
            raise ConfigError(f"--storage-option {pair!r}: a dotted KEY has an empty part")
        if s3 and len(parts) == 1 and name in _CLIENT_KWARGS:
            parts = ["client_kwargs", _CLIENT_KWARGS[name]]
        _set(options, parts, _value(parts[-1], text), pair)
    return options


def _set(options: dict[str, Any], parts: list[str], value: Any, pair: str) -> None:
    where = options
    for part in parts[:-1]:
        inner = where.setdefault(part, {})
        if not isinstance(inner, dict):
            raise ConfigError(f"--storage-option {pair!r}: {part} is already set to a value")
        where = inner
    where[parts[-1]] = value


def _value(key: str, text: str) -> Any:
    """The documented value rule: booleans, decimal integers, else the string."""
    if key in _STRINGS:
        return text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INTEGER.fullmatch(text):
        return int(text)
    return text


def _deltalake(options: dict[str, Any], name: str, text: str, command: str) -> None:
    """Translate one deltalake-style option to s3fs's, warning that the form is deprecated."""
    from tiercache.integrations.delta import target_for

    translated = target_for("s3://bucket", {name: text})[1]
    if not translated:
        print(
            f"{command}: warning: --storage-option {name} is a deltalake option, deprecated "
            "here and ignored (no s3fs counterpart); use s3fs keys, e.g. endpoint_url=...",
            file=sys.stderr,
        )
        return
    spelled = ", ".join(
        f"{outer}.{inner}=" if isinstance(value, dict) else f"{outer}="
        for outer, value in translated.items()
        for inner in (value if isinstance(value, dict) else [None])
    ).replace("client_kwargs.", "")
    print(
        f"{command}: warning: --storage-option {name}=... is deprecated (a deltalake key); "
        f"use {spelled}...",
        file=sys.stderr,
    )
    for outer, value in translated.items():
        if isinstance(value, dict):
            options.setdefault(outer, {}).update(value)
        else:
            options[outer] = value
