"""The request documents S3 accepts, read safely: DeleteObjects and CompleteMultipartUpload.

A request body is untrusted. It is parsed only if it is at most :data:`MAX_REQUEST_BYTES`
(longer is 400 MaxMessageLengthExceeded), never with a DTD (so no entity can be declared: no
XXE, no entity expansion), with its elements in S3's namespace or in none (botocore sends the
namespace, other clients may not); anything else that is not S3's schema is 400 MalformedXML.
The functions are re-exported by :mod:`tiercache.gateway.s3xml`, which writes the answers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from tiercache.gateway.s3errors import (
    invalid_argument,
    invalid_part_order,
    invalid_request,
    malformed_xml,
    max_message_length_exceeded,
)

__all__ = [
    "MAX_DELETE_OBJECTS",
    "MAX_REQUEST_BYTES",
    "NS",
    "ObjectIdentifier",
    "parse_complete_multipart",
    "parse_delete",
]

#: The namespace of S3's documents.
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: The largest request document parsed; a longer one is MaxMessageLengthExceeded. It holds a
#: DeleteObjects of 1,000 keys of up to ~1,000 bytes each, or a CompleteMultipartUpload of all
#: 10,000 parts without per-part checksums; a 1,000-key request of near-maximal (1,024-byte)
#: keys is refused.
MAX_REQUEST_BYTES = 1 << 20
#: S3 deletes at most 1,000 objects per DeleteObjects request; more is MalformedXML.
MAX_DELETE_OBJECTS = 1000
_MAX_PART_NUMBER = 10_000


@dataclass(frozen=True)
class ObjectIdentifier:
    """One ``<Object>`` of a DeleteObjects request: a key, and the version asked for if any."""

    key: str
    version_id: str | None = None


def _parse_request(body: bytes, root_tag: str) -> ET.Element:
    """Parse a request document whose root must be ``root_tag`` (in S3's namespace, or none).

    The tree is built from expat's events, so that a ``<!DOCTYPE`` is refused the moment expat
    meets it, in whatever encoding the document declares, before any entity is declared.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise max_message_length_exceeded()
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")

    def local(name: str) -> str:
        namespace, _, tag = name.rpartition(" ")
        if namespace not in ("", NS):
            raise malformed_xml()
        return tag

    def refuse_doctype(*_: object) -> None:
        raise malformed_xml()

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.StartElementHandler = lambda name, _attributes: builder.start(local(name), {})
    parser.EndElementHandler = lambda name: builder.end(local(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        raise malformed_xml() from None
    root = builder.close()
    if root.tag != root_tag:
        raise malformed_xml()
    return root


def _text(element: ET.Element) -> str:
    """The text of an element that must hold text only."""
    if len(element):
        raise malformed_xml()
    return element.text or ""


def _one(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise malformed_xml()
    return found[0]


def parse_delete(body: bytes) -> tuple[list[ObjectIdentifier], bool]:
    """Parse a DeleteObjects request: ``<Delete><Object><Key/>[<VersionId/>]</Object>...``.

    Returns:
        The objects in request order (keys verbatim, whitespace included), and ``Quiet``.

    Raises:
        S3Error: 400 MalformedXML (not well-formed, a DTD, not S3's schema, no object or more
            than :data:`MAX_DELETE_OBJECTS`); 400 MaxMessageLengthExceeded (over
            :data:`MAX_REQUEST_BYTES`).
    """
    root = _parse_request(body, "Delete")
    objects: list[ObjectIdentifier] = []
    for entry in root.findall("Object"):
        versions = entry.findall("VersionId")
        if len(versions) > 1:
            raise malformed_xml()
        version = _text(versions[0]) if versions else None
        objects.append(ObjectIdentifier(_text(_one(entry, "Key")), version))
    if not objects or len(objects) > MAX_DELETE_OBJECTS:
        raise malformed_xml()
    quiet_elements = root.findall("Quiet")
    if len(quiet_elements) > 1:
        raise malformed_xml()
    quiet = _text(quiet_elements[0]).strip().lower() if quiet_elements else "false"
    if quiet not in ("true", "false", "1", "0"):
        raise malformed_xml()
    return objects, quiet in ("true", "1")


def parse_complete_multipart(body: bytes, *, upload_id: str = "") -> list[tuple[int, str]]:
    """Parse a CompleteMultipartUpload request: ``<Part><PartNumber/><ETag/></Part>...``.

    Checksum elements of a part are ignored. Part numbers must not decrease (S3 answers
    InvalidPartOrder; LocalStack's AWS snapshot shows it, with the ``UploadId``).

    Args:
        body: The request body.
        upload_id: The upload's id, named in an InvalidPartOrder error.

    Returns:
        ``(PartNumber, ETag)`` pairs in request order, ETags verbatim (quoted or not).

    Raises:
        S3Error: 400 MalformedXML (not well-formed, a DTD, not S3's schema, a part number that is
            not an integer); 400 InvalidRequest "You must specify at least one part" (S3's answer
            to an empty list); 400 InvalidArgument (a part number outside 1..10000); 400
            InvalidPartOrder; 400 MaxMessageLengthExceeded.
    """
    root = _parse_request(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for entry in root.findall("Part"):
        number_text = _text(_one(entry, "PartNumber")).strip()
        if not number_text.isascii() or not number_text.isdigit():
            raise malformed_xml()
        number = int(number_text)
        if not 1 <= number <= _MAX_PART_NUMBER:
            raise invalid_argument(
                "partNumber",
                number_text,
                f"Part number must be an integer between 1 and {_MAX_PART_NUMBER}, inclusive",
            )
        parts.append((number, _text(_one(entry, "ETag"))))
    if not parts:
        raise invalid_request("You must specify at least one part")
    numbers = [number for number, _ in parts]
    if numbers != sorted(numbers):
        raise invalid_part_order(upload_id)
    return parts
