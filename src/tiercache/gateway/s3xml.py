"""S3's XML wire formats: the response documents, and (re-exported) the request documents.

Every document is built with :mod:`xml.etree.ElementTree` and serialized by
:func:`tiercache.gateway.s3errors.xml_bytes`; nothing is concatenated by hand. Responses carry the
``http://s3.amazonaws.com/doc/2006-03-01/`` namespace, as S3's do; times are ISO 8601 in UTC with
milliseconds (``2026-01-01T00:00:00.000Z``); ETags are sent in their quotes.

Request bodies are read by :mod:`tiercache.gateway.s3requests` (size-bounded, no DTD), whose
functions are re-exported here, as is :class:`S3Error` (its constructors are in
:mod:`tiercache.gateway.s3errors`): the gateway needs only this module for its XML.

What a listing's ``encoding-type=url`` encodes, and how, is S3's (ListObjectsV2 and
ListMultipartUploads API references; LocalStack's ``test_s3_list_operations`` snapshots, recorded
from AWS): the key-valued elements, percent-encoded as UTF-8 with ``/`` left as it is. botocore
asks for it on every listing and decodes it again, so keys with control characters reach boto3.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from tiercache.gateway.httpsemantics import quote_etag
from tiercache.gateway.s3errors import S3Error, invalid_argument, xml_bytes
from tiercache.gateway.s3requests import (
    MAX_DELETE_OBJECTS,
    MAX_REQUEST_BYTES,
    NS,
    ObjectIdentifier,
    parse_complete_multipart,
    parse_delete,
)

__all__ = [
    "DEFAULT_OWNER",
    "MAX_DELETE_OBJECTS",
    "MAX_REQUEST_BYTES",
    "NS",
    "ListedObject",
    "ListedPart",
    "ListedUpload",
    "ObjectIdentifier",
    "Owner",
    "S3Error",
    "bucket_location",
    "check_encoding_type",
    "complete_multipart_result",
    "copy_object_result",
    "copy_part_result",
    "delete_result",
    "initiate_multipart",
    "list_buckets",
    "list_multipart_uploads",
    "list_objects_v1",
    "list_objects_v2",
    "list_parts",
    "parse_complete_multipart",
    "parse_delete",
]


@dataclass(frozen=True)
class Owner:
    """The owner shown in listings (``<Owner><ID/><DisplayName/></Owner>``).

    Attributes:
        id: The canonical user id.
        display_name: Left out when empty (S3 is retiring it).
    """

    id: str
    display_name: str = ""


#: The gateway's owner of everything, in the absence of accounts.
DEFAULT_OWNER = Owner(id="tiercache")


@dataclass(frozen=True)
class ListedObject:
    """One ``<Contents>`` entry of a listing; ``etag`` as the origin gives it."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class ListedPart:
    """One ``<Part>`` of a ListParts answer."""

    part_number: int
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class ListedUpload:
    """One ``<Upload>`` of a ListMultipartUploads answer."""

    key: str
    upload_id: str
    initiated: datetime
    storage_class: str = "STANDARD"


def _document(tag: str) -> ET.Element:
    return ET.Element(tag, xmlns=NS)


def _add(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _timestamp(when: datetime) -> str:
    """``2026-01-01T00:00:00.000Z``; a naive datetime is refused rather than guessed at."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: give it a timezone")
    utc = when.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _add_owner(parent: ET.Element, tag: str, owner: Owner) -> None:
    element = ET.SubElement(parent, tag)
    _add(element, "ID", owner.id)
    if owner.display_name:
        _add(element, "DisplayName", owner.display_name)


def check_encoding_type(value: str | None) -> None:
    """Accept a listing's ``encoding-type``: absent, or ``url``.

    Raises:
        S3Error: 400 InvalidArgument "Invalid Encoding Method specified in Request", as S3
            answers any other value, the empty one included.
    """
    if value is not None and value != "url":
        raise invalid_argument(
            "encoding-type", value, "Invalid Encoding Method specified in Request"
        )


def _encoder(encoding_type: str | None) -> Callable[[str], str]:
    check_encoding_type(encoding_type)
    if encoding_type is None:
        return str
    return lambda value: quote(value, safe="/")


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    objects: Sequence[ListedObject],
    common_prefixes: Sequence[str],
    is_truncated: bool,
    continuation_token: str | None,
    next_continuation_token: str | None,
    start_after: str | None,
    encoding_type: str | None,
    fetch_owner: bool = False,
    owner: Owner = DEFAULT_OWNER,
) -> bytes:
    """Return a ListObjectsV2 answer (``ListBucketResult``).

    ``KeyCount`` counts the objects and the common prefixes, as S3 does (a page of one common
    prefix has ``KeyCount`` 1). ``Prefix`` is always sent, ``Delimiter``, ``StartAfter`` and
    the tokens only when given. With ``encoding_type="url"``, ``Key``, ``Prefix``,
    ``Delimiter``, ``StartAfter`` and each common prefix are URL-encoded; tokens never are.

    Raises:
        S3Error: 400 InvalidArgument for an ``encoding_type`` other than ``None`` or ``url``.
        ValueError: A naive ``last_modified``.
    """
    encode = _encoder(encoding_type)
    root = _document("ListBucketResult")
    _add(root, "Name", bucket)
    _add(root, "Prefix", encode(prefix))
    if delimiter is not None:
        _add(root, "Delimiter", encode(delimiter))
    _add(root, "MaxKeys", str(max_keys))
    if encoding_type is not None:
        _add(root, "EncodingType", encoding_type)
    _add(root, "KeyCount", str(len(objects) + len(common_prefixes)))
    _add(root, "IsTruncated", _bool(is_truncated))
    if continuation_token is not None:
        _add(root, "ContinuationToken", continuation_token)
    if next_continuation_token is not None:
        _add(root, "NextContinuationToken", next_continuation_token)
    if start_after is not None:
        _add(root, "StartAfter", encode(start_after))
    _add_entries(root, objects, common_prefixes, encode, owner if fetch_owner else None)
    return xml_bytes(root)


def list_objects_v1(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    marker: str,
    next_marker: str | None,
    max_keys: int,
    objects: Sequence[ListedObject],
    common_prefixes: Sequence[str],
    is_truncated: bool,
    encoding_type: str | None,
    owner: Owner = DEFAULT_OWNER,
) -> bytes:
    """Return a ListObjects (version 1) answer (``ListBucketResult``).

    ``Prefix`` and ``Marker`` are always sent (empty when not given), ``Delimiter`` when given;
    every ``Contents`` has its ``Owner``, as S3's version 1 listing has. ``NextMarker`` is sent
    only for a truncated answer to a request with a delimiter, as S3 sends it: ``next_marker``
    (the origin's), else the last key or common prefix listed, whichever sorts last; without a
    delimiter clients continue from the last key. With ``encoding_type="url"``, ``Key``,
    ``Prefix``, ``Delimiter``, ``Marker``, ``NextMarker`` and each common prefix are
    URL-encoded (what botocore decodes).

    Raises:
        S3Error: 400 InvalidArgument for an ``encoding_type`` other than ``None`` or ``url``.
        ValueError: A naive ``last_modified``.
    """
    encode = _encoder(encoding_type)
    root = _document("ListBucketResult")
    _add(root, "Name", bucket)
    _add(root, "Prefix", encode(prefix))
    _add(root, "Marker", encode(marker))
    last = max([*(o.key for o in objects[-1:]), *common_prefixes[-1:]], default="")
    if delimiter is not None and is_truncated and (next_marker or last):
        _add(root, "NextMarker", encode(next_marker or last))
    _add(root, "MaxKeys", str(max_keys))
    if delimiter is not None:
        _add(root, "Delimiter", encode(delimiter))
    if encoding_type is not None:
        _add(root, "EncodingType", encoding_type)
    _add(root, "IsTruncated", _bool(is_truncated))
    _add_entries(root, objects, common_prefixes, encode, owner)
    return xml_bytes(root)


def _add_entries(
    root: ET.Element,
    objects: Sequence[ListedObject],
    common_prefixes: Sequence[str],
    encode: Callable[[str], str],
    owner: Owner | None,
) -> None:
    """A listing's ``Contents`` (with ``Owner`` when given) and ``CommonPrefixes``."""
    for listed in objects:
        contents = ET.SubElement(root, "Contents")
        _add(contents, "Key", encode(listed.key))
        _add(contents, "LastModified", _timestamp(listed.last_modified))
        _add(contents, "ETag", quote_etag(listed.etag))
        _add(contents, "Size", str(listed.size))
        if owner is not None:
            _add_owner(contents, "Owner", owner)
        _add(contents, "StorageClass", listed.storage_class)
    for common in common_prefixes:
        _add(ET.SubElement(root, "CommonPrefixes"), "Prefix", encode(common))


def list_buckets(buckets: Sequence[tuple[str, datetime]], *, owner: Owner = DEFAULT_OWNER) -> bytes:
    """Return a ListBuckets answer: ``(name, creation date)`` pairs and their owner."""
    root = _document("ListAllMyBucketsResult")
    _add_owner(root, "Owner", owner)
    listing = ET.SubElement(root, "Buckets")
    for name, created in buckets:
        entry = ET.SubElement(listing, "Bucket")
        _add(entry, "Name", name)
        _add(entry, "CreationDate", _timestamp(created))
    return xml_bytes(root)


def bucket_location(region: str) -> bytes:
    """Return a GetBucketLocation answer; ``us-east-1`` is the empty element, as S3 sends it.

    botocore reads the empty element as ``LocationConstraint: None``, which boto3 users test for.
    """
    root = _document("LocationConstraint")
    if region != "us-east-1":
        root.text = region
    return xml_bytes(root)


def delete_result(
    deleted: Sequence[str], errors: Sequence[tuple[str, str, str]], *, quiet: bool
) -> bytes:
    """Return a DeleteObjects answer.

    Args:
        deleted: The keys deleted (a key that did not exist counts as deleted, as in S3).
        errors: ``(key, code, message)`` of each key that could not be deleted.
        quiet: S3's quiet mode: the errors only.
    """
    root = _document("DeleteResult")
    if not quiet:
        for key in deleted:
            _add(ET.SubElement(root, "Deleted"), "Key", key)
    for key, code, message in errors:
        error = ET.SubElement(root, "Error")
        _add(error, "Key", key)
        _add(error, "Code", code)
        _add(error, "Message", message)
    return xml_bytes(root)


def copy_object_result(etag: str, last_modified: datetime) -> bytes:
    """Return a CopyObject answer (``CopyObjectResult``)."""
    root = _document("CopyObjectResult")
    _add(root, "LastModified", _timestamp(last_modified))
    _add(root, "ETag", quote_etag(etag))
    return xml_bytes(root)


def copy_part_result(etag: str, last_modified: datetime) -> bytes:
    """Return an UploadPartCopy answer (``CopyPartResult``)."""
    root = _document("CopyPartResult")
    _add(root, "LastModified", _timestamp(last_modified))
    _add(root, "ETag", quote_etag(etag))
    return xml_bytes(root)


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    """Return a CreateMultipartUpload answer (``InitiateMultipartUploadResult``)."""
    root = _document("InitiateMultipartUploadResult")
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    return xml_bytes(root)


def complete_multipart_result(location: str, bucket: str, key: str, etag: str) -> bytes:
    """Return a CompleteMultipartUpload answer; ``etag`` is the object's (``"...-3"``)."""
    root = _document("CompleteMultipartUploadResult")
    _add(root, "Location", location)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "ETag", quote_etag(etag))
    return xml_bytes(root)


def list_parts(
    *,
    bucket: str,
    key: str,
    upload_id: str,
    parts: Sequence[ListedPart],
    part_number_marker: int,
    next_part_number_marker: int | None,
    max_parts: int,
    is_truncated: bool,
    owner: Owner = DEFAULT_OWNER,
    storage_class: str = "STANDARD",
) -> bytes:
    """Return a ListParts answer (``ListPartsResult``)."""
    root = _document("ListPartsResult")
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    _add_owner(root, "Initiator", owner)
    _add_owner(root, "Owner", owner)
    _add(root, "StorageClass", storage_class)
    _add(root, "PartNumberMarker", str(part_number_marker))
    if next_part_number_marker is not None:
        _add(root, "NextPartNumberMarker", str(next_part_number_marker))
    _add(root, "MaxParts", str(max_parts))
    _add(root, "IsTruncated", _bool(is_truncated))
    for part in parts:
        entry = ET.SubElement(root, "Part")
        _add(entry, "PartNumber", str(part.part_number))
        _add(entry, "LastModified", _timestamp(part.last_modified))
        _add(entry, "ETag", quote_etag(part.etag))
        _add(entry, "Size", str(part.size))
    return xml_bytes(root)


def list_multipart_uploads(
    *,
    bucket: str,
    uploads: Sequence[ListedUpload],
    common_prefixes: Sequence[str],
    prefix: str,
    delimiter: str | None,
    key_marker: str,
    upload_id_marker: str,
    next_key_marker: str | None,
    next_upload_id_marker: str | None,
    max_uploads: int,
    is_truncated: bool,
    encoding_type: str | None,
    owner: Owner = DEFAULT_OWNER,
) -> bytes:
    """Return a ListMultipartUploads answer (``ListMultipartUploadsResult``).

    With ``encoding_type="url"``, ``Key``, ``Prefix``, ``Delimiter``, ``KeyMarker``,
    ``NextKeyMarker`` and each common prefix are URL-encoded. botocore does not ask for it here
    (it does for the object listings only), so only clients that ask get it.

    Raises:
        S3Error: 400 InvalidArgument for an ``encoding_type`` other than ``None`` or ``url``.
    """
    encode = _encoder(encoding_type)
    root = _document("ListMultipartUploadsResult")
    _add(root, "Bucket", bucket)
    _add(root, "KeyMarker", encode(key_marker))
    _add(root, "UploadIdMarker", upload_id_marker)
    if next_key_marker is not None:
        _add(root, "NextKeyMarker", encode(next_key_marker))
    if next_upload_id_marker is not None:
        _add(root, "NextUploadIdMarker", next_upload_id_marker)
    if encoding_type is not None:
        _add(root, "EncodingType", encoding_type)
    _add(root, "Prefix", encode(prefix))
    if delimiter is not None:
        _add(root, "Delimiter", encode(delimiter))
    _add(root, "MaxUploads", str(max_uploads))
    _add(root, "IsTruncated", _bool(is_truncated))
    for upload in uploads:
        entry = ET.SubElement(root, "Upload")
        _add(entry, "Key", encode(upload.key))
        _add(entry, "UploadId", upload.upload_id)
        _add_owner(entry, "Initiator", owner)
        _add_owner(entry, "Owner", owner)
        _add(entry, "StorageClass", upload.storage_class)
        _add(entry, "Initiated", _timestamp(upload.initiated))
    for common in common_prefixes:
        _add(ET.SubElement(root, "CommonPrefixes"), "Prefix", encode(common))
    return xml_bytes(root)
