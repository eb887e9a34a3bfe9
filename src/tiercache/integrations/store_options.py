"""Delta storage options (deltalake's, i.e. Rust ``object_store``'s keys) as fsspec target
options, for S3 (s3fs), GCS (gcsfs) and Azure (adlfs), and where a table lives on each store.

deltalake names options the way ``object_store`` does: ``AWS_ACCESS_KEY_ID``,
``GOOGLE_SERVICE_ACCOUNT``, ``AZURE_STORAGE_ACCOUNT_KEY``..., in any case and most with a
shorter alias (``access_key_id``, ``service_account``, ``account_key``). :func:`target_for` turns
them into the options of the fsspec filesystem that reads the same store, so that one set of
options serves both deltalake and tiercache. docs/configuration.md has the table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from tiercache.errors import ConfigError

logger = logging.getLogger(__name__)

S3_SCHEMES = frozenset({"s3", "s3a"})
GCS_SCHEMES = frozenset({"gs", "gcs"})
AZURE_SCHEMES = frozenset({"az", "abfs", "abfss", "azure"})
LOCAL_SCHEMES = frozenset({"", "file"})

# deltalake storage option (lower case, with and without the "aws_" prefix) -> s3fs option.
S3_KEYS: dict[str, tuple[str, ...]] = {
    "access_key_id": ("key",),
    "secret_access_key": ("secret",),
    "session_token": ("token",),
    "token": ("token",),
    "endpoint_url": ("client_kwargs", "endpoint_url"),
    "endpoint": ("client_kwargs", "endpoint_url"),
    "region": ("client_kwargs", "region_name"),
    "default_region": ("client_kwargs", "region_name"),
}
# Options deltalake needs that s3fs has no use for (s3fs follows the endpoint's scheme).
_S3_IGNORED = {
    "allow_http",
    "s3_locking_provider",
    "conditional_put",
    "virtual_hosted_style_request",
}
# GCS (lower case, "google_" prefix removed) -> how gcsfs takes it.
_GCS_FILE = {"service_account", "service_account_path", "application_credentials"}
_GCS_KEY = {"service_account_key"}
_GCS_IGNORED = {"bucket", "bucket_name", "allow_http"}
# Azure (lower case, "azure_storage_" / "azure_" prefix removed) -> adlfs option.
_AZURE_KEYS = {
    "account_name": "account_name",
    "account_key": "account_key",
    "access_key": "account_key",
    "master_key": "account_key",
    "sas_key": "sas_token",
    "sas_token": "sas_token",
    "client_id": "client_id",
    "client_secret": "client_secret",
    "tenant_id": "tenant_id",
    "authority_id": "tenant_id",
    "connection_string": "connection_string",
}
_AZURE_IGNORED = {"allow_http", "container_name", "use_fabric_endpoint", "skip_signature"}
# The account and key every Azurite (Azure's storage emulator) answers to, documented by Azure.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def scheme_of(uri: str) -> str:
    """``gs://b/t`` -> ``gs``; a path without a scheme -> ``""``."""
    return uri.partition("://")[0].lower() if "://" in uri else ""


def bucket_and_path(table_uri: str) -> tuple[str, str]:
    """The bucket (container) and the path in it of an object-store URI.

    ``s3://b/t``, ``gs://b/t``, ``az://c/t`` -> ``("b" or "c", "t")``;
    ``abfss://c@account.dfs.core.windows.net/t`` -> ``("c", "t")``.
    """
    rest = table_uri.partition("://")[2]
    bucket, _, path = rest.partition("/")
    return bucket.partition("@")[0], path.strip("/")


def target_for(
    table_uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Return the fsspec protocol and target options that reach ``table_uri``.

    The options are derived from deltalake's ``storage_options`` (``object_store``'s keys, any
    case, with or without their ``AWS_`` / ``GOOGLE_`` / ``AZURE_STORAGE_`` prefix):

    - S3: ``ACCESS_KEY_ID``, ``SECRET_ACCESS_KEY``, ``SESSION_TOKEN``, ``ENDPOINT_URL``,
      ``REGION`` -> s3fs's ``key``, ``secret``, ``token``, ``client_kwargs``.
    - GCS: ``SERVICE_ACCOUNT`` / ``SERVICE_ACCOUNT_PATH`` / ``APPLICATION_CREDENTIALS`` (a key
      file) and ``SERVICE_ACCOUNT_KEY`` (the key itself, JSON) -> gcsfs's ``token``.
    - Azure: ``ACCOUNT_NAME``, ``ACCOUNT_KEY`` (``ACCESS_KEY``), ``SAS_KEY``, ``CLIENT_ID``,
      ``CLIENT_SECRET``, ``TENANT_ID`` -> adlfs's options of the same meaning; ``USE_EMULATOR``
      and ``ENDPOINT`` -> a connection string for that endpoint (Azurite's well-known account
      unless another is named). The account of an ``abfs[s]://container@account...`` URI is
      taken when no option names one.

    ``allow_http`` needs no counterpart (the clients follow the endpoint's scheme). Other keys
    are ignored with a DEBUG line.

    Raises:
        ConfigError: The scheme has no mapping and storage options were given (pass a ready
            ``filesystem=`` instead), or a mapped option is empty or malformed.
    """
    scheme = scheme_of(table_uri)
    options = dict(storage_options or {})
    if scheme in LOCAL_SCHEMES:
        return "file", {}
    if scheme in S3_SCHEMES:
        return "s3", _s3_options(options)
    if scheme in GCS_SCHEMES:
        return "gs", _gcs_options(options)
    if scheme in AZURE_SCHEMES:
        return "abfs", _azure_options(table_uri, options)
    if options:
        raise ConfigError(
            f"cannot derive {scheme}:// filesystem options from Delta storage_options "
            f"({sorted(options)}); build the target filesystem yourself and pass "
            "filesystem=TieredFileSystem(fs=...)"
        )
    return scheme, {}


def _s3_options(options: Mapping[str, str]) -> dict[str, Any]:
    target: dict[str, Any] = {}
    for name, value in options.items():
        key = name.lower().removeprefix("aws_")
        if key in _S3_IGNORED:
            continue
        where = S3_KEYS.get(key)
        if where is None:
            logger.debug("Delta storage option %r has no s3fs counterpart; ignored", name)
            continue
        _check_value(name, value)
        if len(where) == 1:
            target[where[0]] = value
        else:
            target.setdefault(where[0], {})[where[1]] = value
    return target


def _gcs_options(options: Mapping[str, str]) -> dict[str, Any]:
    target: dict[str, Any] = {}
    for name, value in options.items():
        key = name.lower().removeprefix("google_")
        if key in _GCS_IGNORED:
            continue
        if key in _GCS_FILE:
            _check_value(name, value)
            target["token"] = value  # gcsfs reads a service-account file from its path
        elif key in _GCS_KEY:
            _check_value(name, value)
            try:
                target["token"] = json.loads(value)
            except ValueError as exc:
                raise ConfigError(
                    f"Delta storage option {name!r} is not a JSON service-account key: {exc}"
                ) from exc
        else:
            logger.debug("Delta storage option %r has no gcsfs counterpart; ignored", name)
    return target


def _azure_options(table_uri: str, options: Mapping[str, str]) -> dict[str, Any]:
    target: dict[str, Any] = {}
    emulator = False
    endpoint = ""
    for name, value in options.items():
        key = name.lower().removeprefix("azure_storage_").removeprefix("azure_")
        if key in _AZURE_IGNORED:
            continue
        if key == "use_emulator":
            emulator = value.strip().lower() in ("true", "1", "yes")
        elif key == "endpoint":
            _check_value(name, value)
            endpoint = value.rstrip("/")
        elif key in _AZURE_KEYS:
            _check_value(name, value)
            target[_AZURE_KEYS[key]] = value
        else:
            logger.debug("Delta storage option %r has no adlfs counterpart; ignored", name)
    host = table_uri.partition("://")[2].partition("/")[0]
    if "@" in host and "account_name" not in target:
        target["account_name"] = host.partition("@")[2].partition(".")[0]
    if (emulator or endpoint) and "connection_string" not in target:
        account = target.pop("account_name", AZURITE_ACCOUNT)
        key = target.pop("account_key", AZURITE_KEY if account == AZURITE_ACCOUNT else "")
        if not endpoint:
            endpoint = f"http://127.0.0.1:10000/{account}"
        target["connection_string"] = connection_string(account, key, endpoint)
        target["account_name"] = account
    return target


def connection_string(account: str, key: str, blob_endpoint: str) -> str:
    """An Azure storage connection string for ``account`` at ``blob_endpoint``."""
    protocol = "http" if blob_endpoint.startswith("http://") else "https"
    parts = [f"DefaultEndpointsProtocol={protocol}", f"AccountName={account}"]
    if key:
        parts.append(f"AccountKey={key}")
    parts.append(f"BlobEndpoint={blob_endpoint}")
    return ";".join(parts) + ";"


def _check_value(name: str, value: str) -> None:
    if not value:
        raise ConfigError(f"Delta storage option {name!r} is empty")


def storage_options_for(s3fs_options: Mapping[str, Any]) -> dict[str, str]:
    """Return deltalake storage options equivalent to s3fs options (the inverse of
    :func:`target_for` for S3): ``key``, ``secret``, ``token`` and ``client_kwargs`` endpoint
    and region.

    ``AWS_ALLOW_HTTP`` is set when the endpoint is ``http://``. Other options are not carried.
    """
    options: dict[str, str] = {}
    for name, variable in (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ):
        if s3fs_options.get(name):
            options[variable] = str(s3fs_options[name])
    client = s3fs_options.get("client_kwargs") or {}
    endpoint = client.get("endpoint_url") or s3fs_options.get("endpoint_url")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = str(endpoint)
        if str(endpoint).startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    region = client.get("region_name")
    if region:
        options["AWS_REGION"] = str(region)
    return options
