"""GCS reads pinned to a generation, through gcsfs's session without its retry loop.

A GCS object's content version is its generation: every write makes a new one, and a generation
once replaced never becomes live again (a restore makes a new one too). The ETag also changes on
metadata updates, so the version of a gcsfs info is ``generation=G`` (:mod:`tiercache.origin`).

Each ranged read is one media download ``...?alt=media&generation=G&ifGenerationMatch=G`` sent on
gcsfs's own aiohttp session, with its endpoint, credentials (:meth:`_get_headers`), requester-pays
parameters and request timeout. gcsfs's ``_call`` is not used: its retry loop (six attempts, 1 to
32 s apart, fixed when the class is defined) would run inside each of
:class:`~tiercache.origin.FsspecOrigin`'s attempts, and it hides when the first byte arrived.
The answer is checked against the pin:

- 412 (the live object is another generation): :class:`~tiercache.errors.ObjectChangedError`;
- 404: the live object's generation is looked up; the object is there (another generation):
  ObjectChangedError; it is not: :class:`FileNotFoundError`;
- an ``x-goog-generation`` header naming another generation: ObjectChangedError;
- no ``x-goog-generation`` header (GCS always sends it; ``gcp-storage-emulator`` never does, and
  it ignores ``generation=`` and ``ifGenerationMatch=``): once the body is in, the live
  generation is looked up (one more request). If it is still ``G``, the object was ``G`` for the
  whole download, since a replaced generation never comes back; otherwise ObjectChangedError.

gcsfs is imported here only, and only when a request fails (its error mapping).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from .errors import ObjectChangedError
from .hedging import Hedging, race
from .lateness import Pace
from .protocol import ObjectInfo

GENERATION_HEADER = "x-goog-generation"
_GENERATION = re.compile(r"[0-9]+")


def is_gcs(fs: AbstractFileSystem, protocol: str) -> bool:
    """Whether ``fs`` is gcsfs: its session, URL and header helpers make a pinned download."""
    return protocol in ("gs", "gcs") and all(
        hasattr(fs, name) for name in ("_set_session", "_get_headers", "_get_params", "url")
    )


def generation_of(info: ObjectInfo) -> str | None:
    """The generation ``info`` names: from its version (``generation=G``), else from the raw
    info dict (an info seeded or shared without that version); None if neither names one."""
    if info.version.startswith("generation="):
        value: Any = info.version.removeprefix("generation=")
    else:
        value = info.raw.get("generation")
    text = str(value) if value is not None else ""
    return text if _GENERATION.fullmatch(text) else None


class GcsReads:
    """Ranged media downloads of one gcsfs filesystem, each pinned to the info's generation.

    Args:
        fs: The gcsfs filesystem.
        pace: Where completed reads report their first-byte time and throughput.
        hedging: When a read late to its first byte is sent again (:mod:`tiercache.hedging`);
            None: never.
    """

    def __init__(self, fs: AbstractFileSystem, pace: Pace, hedging: Hedging | None = None) -> None:
        self.fs = fs
        self.pace = pace
        self.hedging = hedging

    def can_pin(self, info: ObjectInfo, /) -> bool:
        return generation_of(info) is not None

    def read(self, info: ObjectInfo, start: int, end: int, timeout_s: float, /) -> bytes:
        generation = generation_of(info)
        if generation is None:
            raise ValueError(f"{info.path!r}: the info names no generation ({info.version})")
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(info.path)
        url = fs.url(info.path, generation=generation)
        headers = {"Range": f"bytes={start}-{end - 1}"}

        async def read(answered: asyncio.Event) -> bytes:
            began = time.perf_counter()
            status, answer, body, first_byte_s = await self._get(
                url, headers, {"ifGenerationMatch": generation}, answered
            )
            changed = f"{info.path!r} changed: it is no longer generation {generation}"
            if status == 412:
                raise ObjectChangedError(f"{changed} (412)")
            if status == 404:
                live = await self._live_generation(bucket, key)
                if live is None:
                    raise FileNotFoundError(info.path)
                raise ObjectChangedError(f"{changed} (404; the live generation is {live})")
            _raise_for_status(status, body, url)
            named = answer.get(GENERATION_HEADER)
            if named is None:  # a server that does not say (the emulator): ask after the body
                named = await self._live_generation(bucket, key)
            if named != generation:
                raise ObjectChangedError(f"{changed} (the answer names generation {named})")
            self.pace.observe(len(body), time.perf_counter() - began, first_byte_s)
            return body

        data: bytes = sync(fs.loop, race, read, self.hedging, timeout_s, timeout=timeout_s)
        return data

    async def _get(
        self,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        answered: asyncio.Event | None = None,
    ) -> tuple[int, Mapping[str, str], bytes, float]:
        """One GET on gcsfs's session: the status, the headers, the body and the seconds until
        the headers came (``answered`` is set then)."""
        fs: Any = self.fs
        await fs._set_session()
        began = time.perf_counter()
        async with fs.session.request(
            method="GET",
            url=url,
            params=fs._get_params(dict(params)),
            headers=fs._get_headers(dict(headers)),
            timeout=fs.requests_timeout,
        ) as response:
            first_byte_s = time.perf_counter() - began
            if answered is not None:
                answered.set()
            body: bytes = await response.read()
            return response.status, response.headers, body, first_byte_s

    async def _live_generation(self, bucket: str, key: str) -> str | None:
        """The generation of the live object ``bucket/key`` (one metadata GET), None if none."""
        fs: Any = self.fs
        url = fs._format_path("b/{}/o/{}", (bucket, key))
        status, _, body, _ = await self._get(url, {}, {"fields": "generation"})
        if status == 404:
            return None
        _raise_for_status(status, body, url)
        generation = json.loads(body).get("generation")
        return None if generation is None else str(generation)


def _raise_for_status(status: int, body: bytes, url: str) -> None:
    """Raise what gcsfs raises for an error answer (HttpError: retried by the origin)."""
    if status < 400:
        return
    from gcsfs.retry import validate_response

    validate_response(status, body, url)
