"""What the origin knows of a target and its objects: the target's identity (which stores share
cache entries) and an object's :class:`~tiercache.protocol.ObjectInfo` from a target's ``info``
dict (its version: docs/architecture.md, "What an object's version is made of")."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .origin_azure import endpoint_options
from .protocol import ObjectInfo

# Options that name the endpoint a filesystem talks to: part of the target identity.
_ENDPOINT_OPTIONS = ("endpoint_url", "host", "port", "account_name", "account_url", "project")


def target_identity(protocol: str, options: Mapping[str, Any]) -> str:
    """Return a digest naming a target store: its protocol and endpoint, never its credentials.

    Two filesystems with the same protocol and endpoint read the same objects, whatever
    credentials they use, so they share cache entries; different endpoints never do.
    """
    endpoint = {k: str(options[k]) for k in _ENDPOINT_OPTIONS if k in options}
    client_kwargs = options.get("client_kwargs")
    if isinstance(client_kwargs, Mapping) and "endpoint_url" in client_kwargs:
        endpoint["client_kwargs.endpoint_url"] = str(client_kwargs["endpoint_url"])
    endpoint.update(endpoint_options(options))  # Azure: the endpoint in a connection string
    text = json.dumps({"protocol": protocol, "endpoint": endpoint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def info_from_raw(path: str, raw: Mapping[str, Any]) -> ObjectInfo:
    """Build :class:`ObjectInfo` from a target's ``info`` dict.

    The version is the generation (GCS's content version; its ETag changes with metadata too),
    ETag or version id where the store has one, else ``size:mtime``. A local file's version is
    more than that: :meth:`FsspecOrigin.info` replaces it with
    :func:`tiercache.localversion.local_version`.
    """
    size = int(raw["size"])
    etag = raw.get("ETag") or raw.get("etag")
    for name in ("generation", "ETag", "etag", "VersionId", "version_id"):
        value = raw.get(name)
        if value not in (None, ""):
            version = f"{name}={value}"
            break
    else:
        mtime = next(
            (
                raw[k]
                for k in ("mtime", "LastModified", "last_modified", "updated", "created")
                if raw.get(k) is not None
            ),
            "",
        )
        version = f"{size}:{mtime}"
    return ObjectInfo(path=path, size=size, version=version, etag=etag, raw=dict(raw))
