"""S3 error responses, and the one function that turns an element tree into S3's XML bytes.

An :class:`S3Error` is raised by the gateway's pure functions (a range S3 cannot satisfy, a
request body that is not the XML S3 accepts) and by the app; the app turns it into a response
with :attr:`S3Error.status` and :meth:`S3Error.body`. The constructors below carry S3's own
code, HTTP status, message and detail elements, as recorded from AWS by LocalStack's snapshot
tests (``tests/aws/services/s3/*.snapshot.json``, ``@markers.aws.validated``); the messages of
SlowDown, ServiceUnavailable and MaxMessageLengthExceeded, which no snapshot holds, are those of
https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html.

A 304 Not Modified is not an error body (it has none): see
:func:`tiercache.gateway.httpsemantics.evaluate_conditions`. Nor does a HEAD error carry one: the
app sends only the status, and botocore then reports the status as the code (``"404"``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

__all__ = [
    "S3Error",
    "access_denied",
    "bucket_not_empty",
    "entity_too_large",
    "entity_too_small",
    "internal_error",
    "invalid_argument",
    "invalid_part",
    "invalid_part_order",
    "invalid_range",
    "invalid_request",
    "malformed_xml",
    "max_message_length_exceeded",
    "method_not_allowed",
    "no_such_bucket",
    "no_such_key",
    "no_such_upload",
    "not_implemented",
    "precondition_failed",
    "service_unavailable",
    "slow_down",
    "xml_bytes",
]

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry (C0 controls but TAB and LF, surrogates, U+FFFE, U+FFFF),
# and CR, which it can carry but every parser turns into LF unless written as a reference.
_NOT_LITERAL = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_bytes(root: ET.Element) -> bytes:
    """Serialize an element tree as S3 does: a UTF-8 document with its XML declaration.

    ``&``, ``<`` and ``>`` are escaped by :mod:`xml.etree.ElementTree`. A character that XML 1.0
    cannot carry (a key holding U+0001, say) is written as a character reference
    (``&#x1;``), as S3 writes it: the document is then not well-formed, and clients fail to
    parse it, exactly as they fail against S3 (botocore issue 3496, aws-sdk-go issue 1914). That
    is why S3 has ``encoding-type=url`` for listings, and why botocore always asks for it. CR is
    written as ``&#xD;`` so that it survives a parser's end-of-line normalization.
    """
    text = ET.tostring(root, encoding="unicode")
    text = _NOT_LITERAL.sub(lambda m: f"&#x{ord(m.group()):X};", text)
    return _DECLARATION + text.encode("utf-8")


class S3Error(Exception):
    """An S3 error response: code, HTTP status, message, resource and detail elements.

    Args:
        code: S3's error code (``NoSuchKey``).
        status: The HTTP status S3 sends with it (404).
        message: The human-readable ``<Message>``.
        resource: The ``<Resource>`` (the bucket or object path), left out when empty.
        extra: Further elements S3 sends with this code, in order (``{"Key": "a/b"}``).
    """

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        *,
        resource: str = "",
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status
        self.message = message
        self.resource = resource
        self.extra: dict[str, str] = dict(extra or {})

    def body(self, request_id: str, *, host_id: str = "") -> bytes:
        """Return the XML error document.

        ``<Error><Code/><Message/>[<Resource/>](extra)<RequestId/>[<HostId/>]</Error>``: S3's
        error documents carry no namespace.

        Args:
            request_id: The request's id, also sent as ``x-amz-request-id``.
            host_id: S3's ``x-amz-id-2``; left out when empty.
        """
        root = ET.Element("Error")
        ET.SubElement(root, "Code").text = self.code
        ET.SubElement(root, "Message").text = self.message
        if self.resource:
            ET.SubElement(root, "Resource").text = self.resource
        for name, value in self.extra.items():
            ET.SubElement(root, name).text = value
        ET.SubElement(root, "RequestId").text = request_id
        if host_id:
            ET.SubElement(root, "HostId").text = host_id
        return xml_bytes(root)

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.status}, {self.message!r}, extra={self.extra!r})"


def no_such_key(key: str, *, resource: str = "") -> S3Error:
    """404 NoSuchKey, naming the key as S3 does (``<Key>``)."""
    return S3Error(
        "NoSuchKey", 404, "The specified key does not exist.", resource=resource, extra={"Key": key}
    )


def no_such_bucket(bucket: str) -> S3Error:
    """404 NoSuchBucket, naming the bucket (``<BucketName>``)."""
    return S3Error(
        "NoSuchBucket", 404, "The specified bucket does not exist", extra={"BucketName": bucket}
    )


def no_such_upload(upload_id: str) -> S3Error:
    """404 NoSuchUpload: the multipart upload is unknown, aborted or already completed."""
    return S3Error(
        "NoSuchUpload",
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        extra={"UploadId": upload_id},
    )


def bucket_not_empty(bucket: str) -> S3Error:
    """409 BucketNotEmpty."""
    return S3Error(
        "BucketNotEmpty",
        409,
        "The bucket you tried to delete is not empty",
        extra={"BucketName": bucket},
    )


def invalid_range(size: int, requested: str) -> S3Error:
    """416 InvalidRange, with ``ActualObjectSize`` and ``RangeRequested`` (the header as sent)."""
    return S3Error(
        "InvalidRange",
        416,
        "The requested range is not satisfiable",
        extra={"ActualObjectSize": str(size), "RangeRequested": requested},
    )


def precondition_failed(condition: str) -> S3Error:
    """412 PreconditionFailed; ``condition`` is the header that failed (``If-Match``)."""
    return S3Error(
        "PreconditionFailed",
        412,
        "At least one of the pre-conditions you specified did not hold",
        extra={"Condition": condition},
    )


def access_denied() -> S3Error:
    """403 AccessDenied."""
    return S3Error("AccessDenied", 403, "Access Denied")


def slow_down() -> S3Error:
    """503 SlowDown: botocore retries it with backoff."""
    return S3Error("SlowDown", 503, "Please reduce your request rate.")


def service_unavailable() -> S3Error:
    """503 ServiceUnavailable: botocore retries it."""
    return S3Error("ServiceUnavailable", 503, "Service is unable to handle request.")


def internal_error() -> S3Error:
    """500 InternalError: botocore retries it."""
    return S3Error("InternalError", 500, "We encountered an internal error. Please try again.")


def malformed_xml() -> S3Error:
    """400 MalformedXML: a request body that is not well-formed or not of S3's schema."""
    return S3Error(
        "MalformedXML",
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def max_message_length_exceeded() -> S3Error:
    """400 MaxMessageLengthExceeded: a request body longer than S3 accepts."""
    return S3Error("MaxMessageLengthExceeded", 400, "Your request was too big.")


def invalid_argument(name: str, value: str, message: str = "Invalid Argument") -> S3Error:
    """400 InvalidArgument, with ``ArgumentName`` and ``ArgumentValue``."""
    return S3Error(
        "InvalidArgument", 400, message, extra={"ArgumentName": name, "ArgumentValue": value}
    )


def invalid_request(message: str) -> S3Error:
    """400 InvalidRequest; S3's message says what was wrong."""
    return S3Error("InvalidRequest", 400, message)


def method_not_allowed(method: str, resource_type: str) -> S3Error:
    """405 MethodNotAllowed; ``resource_type`` is ``OBJECT``, ``BUCKET`` or ``SERVICE``."""
    return S3Error(
        "MethodNotAllowed",
        405,
        "The specified method is not allowed against this resource.",
        extra={"Method": method, "ResourceType": resource_type},
    )


def not_implemented(header: str = "") -> S3Error:
    """501 NotImplemented; ``header`` names the header asking for the missing feature."""
    return S3Error(
        "NotImplemented",
        501,
        "A header you provided implies functionality that is not implemented",
        extra={"Header": header} if header else None,
    )


def entity_too_large(proposed_bytes: int, max_bytes: int) -> S3Error:
    """400 EntityTooLarge (S3 answers 400, not 413), with the sizes S3 reports."""
    return S3Error(
        "EntityTooLarge",
        400,
        "Your proposed upload exceeds the maximum allowed size",
        extra={"ProposedSize": str(proposed_bytes), "MaxSizeAllowed": str(max_bytes)},
    )


def entity_too_small(proposed_bytes: int, min_bytes: int) -> S3Error:
    """400 EntityTooSmall: a multipart part other than the last is under the minimum."""
    return S3Error(
        "EntityTooSmall",
        400,
        "Your proposed upload is smaller than the minimum allowed size",
        extra={"ProposedSize": str(proposed_bytes), "MinSizeAllowed": str(min_bytes)},
    )


def invalid_part(upload_id: str, part_number: int, etag: str) -> S3Error:
    """400 InvalidPart: a listed part was not uploaded, or its ETag does not match."""
    return S3Error(
        "InvalidPart",
        400,
        "One or more of the specified parts could not be found.  The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
        extra={"UploadId": upload_id, "PartNumber": str(part_number), "ETag": etag},
    )


def invalid_part_order(upload_id: str) -> S3Error:
    """400 InvalidPartOrder: CompleteMultipartUpload listed its parts out of order."""
    return S3Error(
        "InvalidPartOrder",
        400,
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
        extra={"UploadId": upload_id},
    )
