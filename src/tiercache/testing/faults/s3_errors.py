"""The error documents S3 sends, as :class:`~tiercache.testing.HttpFaultProxy` injects them.

Client libraries tell S3's errors apart by the ``<Code>`` of the XML body (botocore takes
``SlowDown`` for throttling, for one), so an injected error carries the body S3 would send with
that status.
"""

from __future__ import annotations

from http import HTTPStatus
from xml.sax.saxutils import escape

# What S3 itself answers; other statuses get a code derived from the reason phrase.
_S3_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def s3_error_body(status: int) -> bytes:
    """Return the S3-style XML error document the proxy sends for an injected ``status``.

    Args:
        status: An HTTP status code. 503 gives ``SlowDown`` and 500 ``InternalError``, as S3
            sends them; any other status gives its reason phrase as code and message.

    Returns:
        ``<Error><Code>…</Code><Message>…</Message></Error>`` encoded as UTF-8.
    """
    if status in _S3_ERRORS:
        code, message = _S3_ERRORS[status]
    else:
        phrase = HTTPStatus(status).phrase
        code, message = phrase.replace(" ", ""), phrase
    return (
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()


__all__ = ["s3_error_body"]
