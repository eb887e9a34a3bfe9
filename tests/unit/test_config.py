"""Settings, the TIERCACHE_* variables, their parsers, and URL redaction."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from tiercache.config import (
    RANGES,
    VARIABLES,
    Settings,
    describe_range,
    parse_bool,
    parse_duration,
    parse_int,
    parse_size,
    redact_url,
)
from tiercache.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB
HMAC_KEY = "a-shared-hmac-key-of-32-characters"
VARIABLE_OF = {field: variable for variable, field in VARIABLES.items()}


# --- defaults ---------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings()
    assert settings.block_size_bytes == MIB
    assert settings.memory_bytes == 256 * MIB
    assert settings.disk_dir is None
    assert settings.disk_bytes == GIB
    assert settings.disk_timeout_s == 0.05
    assert settings.disk_clear_on_start is False
    assert settings.redis_url is None
    assert settings.redis_timeout_s == 0.05
    assert settings.redis_ttl_s == 3600.0
    assert settings.redis_max_value_bytes == 4 * MIB
    assert settings.redis_prefix == "tiercache:"
    assert settings.info_ttl_s == 60.0
    assert settings.origin_retries == 3
    assert settings.origin_timeout_s == 30.0
    assert settings.origin_concurrency == 32
    assert settings.breaker_failures == 5
    assert settings.breaker_cooldown_s == 5.0
    assert settings.fill_queue_size == 1024
    assert settings.fill_queue_bytes == 16 * MIB


def test_from_empty_env_is_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_variables_map_every_field_in_order() -> None:
    assert list(VARIABLES.values()) == [f.name for f in dataclasses.fields(Settings)]
    assert all(name.startswith("TIERCACHE_") for name in VARIABLES)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.memory_bytes = 0  # type: ignore[misc]


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("123B", 123),
        ("123 b", 123),
        ("64KiB", 64 * KIB),
        ("64kib", 64 * KIB),
        ("64 KiB", 64 * KIB),
        ("512MiB", 512 * MIB),
        ("2GiB", 2 * GIB),
        ("2GIB", 2 * GIB),
        ("1TiB", TIB),
        ("1KB", 1000),
        ("10MB", 10_000_000),
        ("3gb", 3_000_000_000),
        ("1TB", 10**12),
        ("1.5GiB", 3 * GIB // 2),
        ("0.5KiB", 512),
        ("2.5KB", 2500),
        (" 64KiB\n", 64 * KIB),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert parse_size(text, variable="TIERCACHE_MEMORY_BYTES") == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "-1", "-64KiB", "12XB", "KiB", "64 K", "64k", "64  KiB", "1.5B", "0.3KiB", "1,5GiB",
     "1e3", "0x10", "nan", "inf", "64KiBs", "١٢٣"],
)  # fmt: skip
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(text, variable="TIERCACHE_MEMORY_BYTES")
    message = str(info.value)
    assert f"TIERCACHE_MEMORY_BYTES={text!r}" in message
    assert "64KiB, 512MiB, 2GiB" in message
    assert "powers of 1024" in message


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", 0.25),
        ("250 ms", 0.25),
        ("250MS", 0.25),
        ("2s", 2.0),
        ("0.5s", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2", 2.0),
        ("0", 0.0),
        ("0.05", 0.05),
        (".5", 0.5),
        ("1e-3", 0.001),
    ],
)
def test_parse_duration_accepts(text: str, expected: float) -> None:
    assert parse_duration(text, variable="TIERCACHE_DISK_TIMEOUT") == expected


@pytest.mark.parametrize(
    "text",
    ["", "-1", "-250ms", "nan", "inf", "-inf", "1e999", "2d", "2 sec", "ms", "1.2.3", "5 m s"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text, variable="TIERCACHE_DISK_TIMEOUT")
    message = str(info.value)
    assert f"TIERCACHE_DISK_TIMEOUT={text!r}" in message
    assert "250ms, 2s, 5m, 1h" in message


# --- booleans and counts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
)  # fmt: skip
def test_parse_bool_accepts(text: str, expected: bool) -> None:
    assert parse_bool(text, variable="TIERCACHE_DISK_CLEAR_ON_START") is expected


@pytest.mark.parametrize("text", ["", "2", "y", "n", "enabled", "truth"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_bool(text, variable="TIERCACHE_DISK_CLEAR_ON_START")
    assert f"TIERCACHE_DISK_CLEAR_ON_START={text!r}" in str(info.value)
    assert "true/false" in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("3", 3), (" 12 ", 12), ("+4", 4)])
def test_parse_int_accepts(text: str, expected: int) -> None:
    assert parse_int(text, variable="TIERCACHE_ORIGIN_RETRIES", minimum=0) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.0", "three", "1e3", "9" * 40])
def test_parse_int_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_int(text, variable="TIERCACHE_ORIGIN_RETRIES", minimum=0)
    assert f"TIERCACHE_ORIGIN_RETRIES={text!r}" in str(info.value)
    assert "whole number >= 0" in str(info.value)


# --- from_env ---------------------------------------------------------------------------------


def test_from_env_reads_every_kind() -> None:
    settings = Settings.from_env(
        {
            "TIERCACHE_BLOCK_SIZE": "4MiB",
            "TIERCACHE_MEMORY_BYTES": "0",
            "TIERCACHE_DISK_DIR": "/cache dir",
            "TIERCACHE_DISK_TIMEOUT": "20ms",
            "TIERCACHE_DISK_CLEAR_ON_START": "yes",
            "TIERCACHE_REDIS_URL": "rediss://:pw@redis:6380/1\n",
            "TIERCACHE_REDIS_HMAC_KEY": "a-shared-hmac-key-of-32-characters\n",
            "TIERCACHE_REDIS_TTL": "2h",
            "TIERCACHE_REDIS_PREFIX": "app:",
            "TIERCACHE_INFO_TTL": "0",
            "TIERCACHE_ORIGIN_RETRIES": "0",
            "TIERCACHE_FILL_QUEUE": "16",
            "TIERCACHE_FILL_QUEUE_BYTES": "64MiB",
        }
    )
    assert settings.block_size_bytes == 4 * MIB
    assert settings.memory_bytes == 0
    assert settings.disk_dir == "/cache dir"
    assert settings.disk_timeout_s == 0.02
    assert settings.disk_clear_on_start is True
    assert settings.redis_url == "rediss://:pw@redis:6380/1"
    assert settings.redis_hmac_key == "a-shared-hmac-key-of-32-characters"
    assert settings.redis_ttl_s == 7200.0
    assert settings.redis_prefix == "app:"
    assert settings.info_ttl_s == 0.0
    assert settings.origin_retries == 0
    assert settings.fill_queue_size == 16
    assert settings.fill_queue_bytes == 64 * MIB


def test_precedence_override_over_env_over_default() -> None:
    env = {"TIERCACHE_MEMORY_BYTES": "64MiB", "TIERCACHE_ORIGIN_RETRIES": "7"}
    settings = Settings.from_env(env, memory_bytes=0)
    assert settings.memory_bytes == 0  # override beats env
    assert settings.origin_retries == 7  # env beats default
    assert settings.origin_concurrency == 32  # default


def test_override_wins_over_malformed_env() -> None:
    settings = Settings.from_env({"TIERCACHE_MEMORY_BYTES": "lots"}, memory_bytes=1)
    assert settings.memory_bytes == 1


def test_empty_variable_is_unset() -> None:
    env = dict.fromkeys(VARIABLES, "")
    assert Settings.from_env(env) == Settings()


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIERCACHE_ORIGIN_CONCURRENCY", "4")
    assert Settings.from_env().origin_concurrency == 4


def test_non_tiercache_variables_are_ignored() -> None:
    env = {"PATH": "/bin", "AWS_REGION": "x", "REDIS_URL": "garbage", "TIERCACHE": "1"}
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("TIERCACHE_BLOCK_SIZE", "big"),
        ("TIERCACHE_MEMORY_BYTES", "-1"),
        ("TIERCACHE_DISK_TIMEOUT", "soon"),
        ("TIERCACHE_DISK_CLEAR_ON_START", "maybe"),
        ("TIERCACHE_REDIS_TTL", "forever"),
        ("TIERCACHE_ORIGIN_RETRIES", "-2"),
    ],
)
def test_malformed_variable_names_itself(variable: str, text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{variable}={text!r}")):
        Settings.from_env({variable: text})


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("TIERCACHE_BLOCK_SIZE", "1KiB"),
        ("TIERCACHE_BLOCK_SIZE", "512MiB"),
        ("TIERCACHE_DISK_BYTES", "0"),
        ("TIERCACHE_DISK_TIMEOUT", "0"),
        ("TIERCACHE_REDIS_TIMEOUT", "0ms"),
        ("TIERCACHE_REDIS_MAX_VALUE_BYTES", "0"),
        ("TIERCACHE_ORIGIN_CONCURRENCY", "0"),
        ("TIERCACHE_BREAKER_FAILURES", "0"),
        ("TIERCACHE_BREAKER_COOLDOWN", "0s"),
        ("TIERCACHE_FILL_QUEUE", "0"),
        ("TIERCACHE_REDIS_URL", "localhost:6379"),
    ],
)
def test_out_of_range_variable_names_itself(variable: str, text: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: text})


def test_unknown_variable_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TIERCACHE_MEMORY_BYTE": "1GiB"})
    message = str(info.value)
    assert "TIERCACHE_MEMORY_BYTE (did you mean TIERCACHE_MEMORY_BYTES?)" in message
    assert "docs/configuration.md" in message


def test_unknown_variable_in_lower_case_is_reported() -> None:
    with pytest.raises(ConfigError, match="did you mean TIERCACHE_DISK_DIR"):
        Settings.from_env({"tiercache_disk_dir": "/tmp"})


def test_unknown_variable_without_a_close_match() -> None:
    with pytest.raises(ConfigError, match="TIERCACHE_ZZZZZZZZZZZZZZZZZZZZZZZZ") as info:
        Settings.from_env({"TIERCACHE_ZZZZZZZZZZZZZZZZZZZZZZZZ": "1"})
    assert "did you mean" not in str(info.value)


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"memory_byte .*did you mean memory_bytes"):
        Settings.from_env({}, memory_byte=1)


# --- direct construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("memory_bytes", -1, "TIERCACHE_MEMORY_BYTES"),
        ("memory_bytes", True, "TIERCACHE_MEMORY_BYTES"),
        ("memory_bytes", 1.0, "TIERCACHE_MEMORY_BYTES"),
        ("memory_bytes", "1GiB", "TIERCACHE_MEMORY_BYTES"),
        ("block_size_bytes", 4 * KIB - 1, "TIERCACHE_BLOCK_SIZE"),
        ("block_size_bytes", 256 * MIB + 1, "TIERCACHE_BLOCK_SIZE"),
        ("disk_dir", "", "TIERCACHE_DISK_DIR"),
        ("disk_dir", 3, "TIERCACHE_DISK_DIR"),
        ("disk_bytes", 0, "TIERCACHE_DISK_BYTES"),
        ("disk_timeout_s", 0, "TIERCACHE_DISK_TIMEOUT"),
        ("disk_timeout_s", float("nan"), "TIERCACHE_DISK_TIMEOUT"),
        ("disk_timeout_s", float("inf"), "TIERCACHE_DISK_TIMEOUT"),
        ("disk_timeout_s", True, "TIERCACHE_DISK_TIMEOUT"),
        ("disk_clear_on_start", 1, "TIERCACHE_DISK_CLEAR_ON_START"),
        ("redis_url", "", "TIERCACHE_REDIS_URL"),
        ("redis_url", "http://h", "TIERCACHE_REDIS_URL"),
        ("redis_timeout_s", -0.1, "TIERCACHE_REDIS_TIMEOUT"),
        ("redis_ttl_s", 0.0, "TIERCACHE_REDIS_TTL"),
        ("redis_max_value_bytes", 0, "TIERCACHE_REDIS_MAX_VALUE_BYTES"),
        ("redis_prefix", "", "TIERCACHE_REDIS_PREFIX"),
        ("redis_prefix", None, "TIERCACHE_REDIS_PREFIX"),
        ("info_ttl_s", -1, "TIERCACHE_INFO_TTL"),
        ("origin_retries", -1, "TIERCACHE_ORIGIN_RETRIES"),
        ("origin_retries", False, "TIERCACHE_ORIGIN_RETRIES"),
        ("origin_timeout_s", 0, "TIERCACHE_ORIGIN_TIMEOUT"),
        ("origin_concurrency", 0, "TIERCACHE_ORIGIN_CONCURRENCY"),
        ("breaker_failures", 0, "TIERCACHE_BREAKER_FAILURES"),
        ("breaker_cooldown_s", 0, "TIERCACHE_BREAKER_COOLDOWN"),
        ("fill_queue_size", 0, "TIERCACHE_FILL_QUEUE"),
        ("fill_queue_bytes", -1, "TIERCACHE_FILL_QUEUE_BYTES"),
        ("fill_queue_bytes", True, "TIERCACHE_FILL_QUEUE_BYTES"),
        ("fill_queue_bytes", "16MiB", "TIERCACHE_FILL_QUEUE_BYTES"),
    ],
)
def test_direct_construction_is_validated(field: str, value: object, variable: str) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ConfigError) as info:
        Settings(**kwargs)
    assert f"Settings.{field}" in str(info.value)
    assert variable in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0",
        "rediss://h",
        "unix:///run/redis.sock",
        "redis+cluster://h:7000",
        "rediss+cluster://h:7000",
        "REDIS://h",
    ],
)
def test_accepted_redis_schemes(url: str) -> None:
    assert Settings(redis_url=url, redis_hmac_key=HMAC_KEY).redis_url == url


def test_edges_are_accepted() -> None:
    settings = Settings(
        block_size_bytes=4 * KIB, memory_bytes=0, info_ttl_s=0, origin_retries=0, disk_timeout_s=1
    )
    assert settings.block_size_bytes == 4 * KIB
    assert Settings(block_size_bytes=256 * MIB).block_size_bytes == 256 * MIB
    assert isinstance(settings.disk_timeout_s, float)  # an int duration is stored as a float
    assert settings.info_ttl_s == 0.0
    assert Settings(fill_queue_bytes=0).fill_queue_bytes == 0  # no background fills


def test_fill_queue_bytes_range_is_stated() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(fill_queue_bytes=-1)
    assert "from 0 to 1TiB" in str(info.value)
    with pytest.raises(ConfigError, match="TIERCACHE_FILL_QUEUE_BYTES"):
        Settings.from_env({"TIERCACHE_FILL_QUEUE_BYTES": "-1MiB"})


def test_replace_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="TIERCACHE_ORIGIN_CONCURRENCY"):
        dataclasses.replace(Settings(), origin_concurrency=0)


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://user:secret@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://:secret@h", "redis://:***@h"),
        ("rediss://secret@h", "rediss://***@h"),
        ("unix://:secret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://:sec/ret@h/0", "redis://:***@h/0"),
        ("redis://u:sec@ret@h", "redis://u:***@h"),
        ("redis://h/0?password=secret&db=1", "redis://h/0?password=***&db=1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/a@b.sock", "unix:///tmp/a@b.sock"),
        ("", ""),
        ("not a url", "not a url"),
        ("redis://[::1", "redis://[::1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_raises_on_weird_input() -> None:
    for weird in ["://", "@", ":@", "a://b@", "\x00://\udcff:\x00@", None, 12]:
        assert isinstance(redact_url(weird), str)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["redis://user:s3kr1t@h:6379/0", "redis://:s3kr1t@h"])
def test_secret_never_shown(url: str) -> None:
    env = {"TIERCACHE_REDIS_URL": url, "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY}
    settings = Settings.from_env(env)
    assert settings.redis_url == url  # kept intact for the client that needs it
    assert "s3kr1t" not in repr(settings)
    assert "s3kr1t" not in str(settings)
    assert "***" in repr(settings)
    described = settings.describe()
    assert "s3kr1t" not in str(described)
    assert described["TIERCACHE_REDIS_URL"] == redact_url(url)


@pytest.mark.parametrize("url", ["http://:s3kr1t@h", "http://user:s3kr1t@h/0", "s3kr1t@h"])
def test_bad_scheme_error_hides_the_secret(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TIERCACHE_REDIS_URL": url})
    message = str(info.value)
    assert "TIERCACHE_REDIS_URL" in message
    assert "rediss://" in message
    assert "secret" not in message
    assert "secret" not in repr(info.value.args)


def test_describe_lists_every_variable() -> None:
    described = Settings(memory_bytes=0).describe()
    assert list(described) == list(VARIABLES)
    assert described["TIERCACHE_MEMORY_BYTES"] == 0
    assert described["TIERCACHE_REDIS_URL"] is None


# --- documentation ----------------------------------------------------------------------------


def test_docs_document_exactly_the_variables() -> None:
    documented = re.findall(r"^### `(TIERCACHE_[A-Z0-9_]+)`\s*$", DOCS.read_text(), re.MULTILINE)
    assert len(documented) == len(set(documented)), "a variable is documented twice"
    assert set(documented) == set(VARIABLES)


def test_wrong_type_redis_url_error_hides_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(redis_url=b"redis://:secret@h")  # type: ignore[arg-type]
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("least-recently-used", "least-recently-used"),
        (" Least-Frequently-Used ", "least-frequently-used"),
        ("least-recently-stored", "least-recently-stored"),
    ],
)
def test_disk_eviction_accepts_the_diskcache_policies(text: str, policy: str) -> None:
    assert Settings.from_env({"TIERCACHE_DISK_EVICTION": text}).disk_eviction == policy


def test_disk_eviction_rejects_other_words() -> None:
    with pytest.raises(ConfigError, match=r"TIERCACHE_DISK_EVICTION.*least-recently-stored"):
        Settings.from_env({"TIERCACHE_DISK_EVICTION": "none"})
    assert Settings().disk_eviction == "least-recently-stored"


def test_hmac_key_is_never_shown() -> None:
    secret = "s3cr3t-hmac-key-value-42"
    settings = Settings.from_env({"TIERCACHE_REDIS_HMAC_KEY": secret + "\n"})
    assert settings.redis_hmac_key == secret
    assert secret not in repr(settings)
    assert settings.describe()["TIERCACHE_REDIS_HMAC_KEY"] == "***"
    assert Settings().describe()["TIERCACHE_REDIS_HMAC_KEY"] is None
    with pytest.raises(ConfigError, match="at least 16") as exc:
        Settings.from_env({"TIERCACHE_REDIS_HMAC_KEY": "short"})
    assert "short" not in str(exc.value)


# --- sources ----------------------------------------------------------------------------------


def test_sources_argument_over_environment_over_default() -> None:
    env = {"TIERCACHE_MEMORY_BYTES": "64MiB", "TIERCACHE_ORIGIN_RETRIES": "7"}
    arguments = {"TIERCACHE_MEMORY_BYTES": "1GiB", "TIERCACHE_INFO_TTL": "5s"}
    settings, sources = Settings.from_env_with_sources(env, arguments)
    assert settings.memory_bytes == GIB  # the argument beats the environment
    assert settings.info_ttl_s == 5.0
    assert settings.origin_retries == 7  # the environment beats the default
    assert settings.origin_concurrency == 32
    assert list(sources) == list(VARIABLES)
    assert sources["TIERCACHE_MEMORY_BYTES"] == "argument"
    assert sources["TIERCACHE_INFO_TTL"] == "argument"
    assert sources["TIERCACHE_ORIGIN_RETRIES"] == "environment"
    assert sources["TIERCACHE_ORIGIN_CONCURRENCY"] == "default"
    assert set(sources.values()) == {"argument", "environment", "default"}


def test_sources_agree_with_from_env() -> None:
    env = {"TIERCACHE_DISK_DIR": "/cache", "TIERCACHE_REDIS_TTL": "2h", "PATH": "/bin"}
    settings, sources = Settings.from_env_with_sources(env)
    assert settings == Settings.from_env(env)
    assert {v for v, s in sources.items() if s != "default"} == {
        "TIERCACHE_DISK_DIR",
        "TIERCACHE_REDIS_TTL",
    }


def test_sources_empty_environment_value_is_default() -> None:
    settings, sources = Settings.from_env_with_sources({"TIERCACHE_MEMORY_BYTES": ""})
    assert settings.memory_bytes == 256 * MIB
    assert sources["TIERCACHE_MEMORY_BYTES"] == "default"


def test_sources_empty_argument_unsets_the_environment() -> None:
    env = {"TIERCACHE_REDIS_URL": "redis://cache:6379/0", "TIERCACHE_MEMORY_BYTES": "lots"}
    arguments = {"TIERCACHE_REDIS_URL": "", "TIERCACHE_MEMORY_BYTES": ""}
    settings, sources = Settings.from_env_with_sources(env, arguments)
    assert settings.redis_url is None
    assert settings.memory_bytes == 256 * MIB  # the malformed environment value is not read
    assert sources["TIERCACHE_REDIS_URL"] == "argument"


def test_sources_keyword_overrides_are_arguments() -> None:
    settings, sources = Settings.from_env_with_sources(
        {"TIERCACHE_MEMORY_BYTES": "1MiB"}, {"TIERCACHE_MEMORY_BYTES": "2MiB"}, memory_bytes=0
    )
    assert settings.memory_bytes == 0  # a typed override beats a text argument
    assert sources["TIERCACHE_MEMORY_BYTES"] == "argument"


def test_sources_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_ORIGIN_CONCURRENCY", "4")
    settings, sources = Settings.from_env_with_sources()
    assert settings.origin_concurrency == 4
    assert sources["TIERCACHE_ORIGIN_CONCURRENCY"] == "environment"


def test_sources_argument_parsed_like_the_environment() -> None:
    arguments = {"TIERCACHE_MEMORY_BYTES": "lots"}
    with pytest.raises(ConfigError) as from_argument:
        Settings.from_env_with_sources({}, arguments)
    with pytest.raises(ConfigError) as from_environment:
        Settings.from_env(arguments)
    assert str(from_argument.value) == str(from_environment.value)
    assert "TIERCACHE_MEMORY_BYTES='lots'" in str(from_argument.value)


@pytest.mark.parametrize("name", ["TIERCACHE_MEMORY_BYTE", "tiercache_memory_bytes", "MEMORY"])
def test_sources_unknown_argument_is_reported(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown variable in arguments") as info:
        Settings.from_env_with_sources({}, {name: "1"})
    assert name in str(info.value)
    if name.upper().startswith("TIERCACHE_"):
        assert "did you mean TIERCACHE_MEMORY_BYTES?" in str(info.value)


def test_sources_unknown_environment_variable_is_still_reported() -> None:
    with pytest.raises(ConfigError, match="TIERCACHE_BLOK_SIZE"):
        Settings.from_env_with_sources({"TIERCACHE_BLOK_SIZE": "1MiB"})


# --- the Redis tier needs an HMAC key -----------------------------------------------------------


def test_redis_without_an_hmac_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TIERCACHE_REDIS_URL": "redis://:secret@cache:6379/0"})
    message = str(info.value)
    assert "TIERCACHE_REDIS_HMAC_KEY" in message
    assert "secrets.token_urlsafe" in message  # how to make one
    assert "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED" in message  # and the way out
    assert "secret@" not in message


def test_the_explicit_opt_out_starts_redis_unauthenticated() -> None:
    env = {"TIERCACHE_REDIS_URL": "redis://cache:6379/0"}
    settings = Settings.from_env({**env, "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED": "true"})
    assert settings.redis_unauthenticated
    keyed = Settings.from_env({**env, "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY})
    assert not keyed.redis_unauthenticated
    assert not Settings().redis_unauthenticated  # no Redis at all


# --- every URL option is checked in Settings ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:secret@[::1", "cannot be parsed"),
        ("redis://:secret@h:6379/0?socket_timeout=abc", "socket_timeout is set by"),
        ("redis://:secret@h:6379/0?socket_timeout=1", "TIERCACHE_REDIS_TIMEOUT"),
        ("redis://:secret@h:6379/0?max_connections=1000", "max_connections"),
        ("redis://:secret@h:99999/0", "Port out of range"),
        ("redis://:secret@h:port/0", "cannot be parsed"),
        ("redis://:secret@h/abc", "the path names the database"),
        ("redis://:secret@h/0?db=x", "option db='x'"),
        ("redis://:secret@h/0?ssl_ca_cert=/ca.pem", "did you mean ssl_ca_certs?"),
        ("redis://:secret@h/0?protocol=4", "option protocol='4' is not 2 or 3"),
        ("redis://:secret@h/0?client_name=", "needs one value"),
        ("redis+cluster://:secret@h:7000/3", "only database 0"),
        ("unix://", "names the socket's path"),
        ("redis://:secret@h:0", "port 0"),
        ("redis://:sec ret@h", "no spaces"),
    ],
)
def test_a_redis_url_that_cannot_work_fails_in_settings(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TIERCACHE_REDIS_URL": url, "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY})
    message = str(info.value)
    assert "TIERCACHE_REDIS_URL" in message
    assert problem in message
    assert "secret" not in message  # the password is redacted


@pytest.mark.parametrize(
    "url",
    [
        "rediss://:pw@redis:6380/1?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required",
        "redis://user:pw@h:6379/0?client_name=svc&protocol=3&socket_keepalive=true",
        "redis://h?db=2",
        "redis://h",
        "redis://[::1]:6379/0",
        "unix:///run/redis.sock?db=1",
        "redis+cluster://h:7000/0",
    ],
)
def test_good_redis_urls_pass(url: str) -> None:
    assert Settings(redis_url=url, redis_hmac_key=HMAC_KEY).redis_url == url


# --- every number has a range -----------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(RANGES))
def test_every_range_is_enforced_at_both_ends(field: str) -> None:
    low, high = RANGES[field]
    at_low: dict[str, Any] = {field: low}
    at_high: dict[str, Any] = {field: high}
    assert getattr(Settings(**at_low), field) == low
    assert getattr(Settings(**at_high), field) == high
    if field.endswith("_s"):
        outside: list[float] = [low - 0.0005, high * 1.001]
    else:
        outside = [int(low) - 1, int(high) + 1]
    for value in outside:
        wrong: dict[str, Any] = {field: value}
        with pytest.raises(ConfigError) as info:
            Settings(**wrong)
        assert describe_range(field) in str(info.value)
        assert VARIABLE_OF[field] in str(info.value)


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("TIERCACHE_STATS_INTERVAL", "1e-9"),
        ("TIERCACHE_DISK_TIMEOUT", "1e-9"),
        ("TIERCACHE_REDIS_TIMEOUT", "0.0000001"),
        ("TIERCACHE_MEMORY_BYTES", "100000000000000000000000000000"),
        ("TIERCACHE_ORIGIN_TIMEOUT", "2h"),
        ("TIERCACHE_ORIGIN_CONCURRENCY", "100000"),
    ],
)
def test_values_that_cannot_work_are_config_errors(variable: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: text})
    assert variable in str(info.value)
    assert describe_range(VARIABLES[variable]) in str(info.value)


def test_docs_state_every_range() -> None:
    sections = re.split(r"^### ", DOCS.read_text(), flags=re.MULTILINE)
    by_variable = {section.split("`")[1]: section for section in sections[1:]}
    for variable, field in VARIABLES.items():
        if field in RANGES:
            accepted = re.search(r"- Accepted values: (.*(?:\n  .*)*)", by_variable[variable])
            assert accepted is not None, variable
            text = accepted[1].replace("`", "").replace("\n  ", " ")
            assert describe_range(field) in text, (variable, describe_range(field), text)


def test_a_metrics_port_without_prometheus_client_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(metrics_port=9464).metrics_port == 9464  # installed with the test extra
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"TIERCACHE_METRICS_PORT=9464 needs prometheus-client"):
        Settings.from_env({"TIERCACHE_METRICS_PORT": "9464"})
    assert Settings().metrics_port is None  # unset: nothing needed


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIERCACHE_DISK_DIR", "/cache\x00dir"),
        ("TIERCACHE_STATS_FILE", "/run/stats\x00.json"),
        ("TIERCACHE_REDIS_PREFIX", "app\x00:"),
    ],
)
def test_a_nul_character_is_a_config_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}.*free of NUL characters"):
        Settings.from_env({variable: value})


@pytest.mark.parametrize("name", sorted(RANGES))
def test_none_is_accepted_only_where_none_is_the_default(name: str) -> None:
    unset: dict[str, Any] = {name: None}
    if getattr(Settings(), name) is None:  # optional: None means off
        assert getattr(Settings(**unset), name) is None
    else:
        with pytest.raises(ConfigError, match=VARIABLE_OF[name]):
            Settings(**unset)


def test_every_field_names_its_variable_once() -> None:
    assert list(VARIABLES.values()) == [f.name for f in dataclasses.fields(Settings)]
    assert len(set(VARIABLES)) == len(VARIABLES)
