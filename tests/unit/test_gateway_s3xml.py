"""The gateway's S3 XML, read back by botocore's own client (what boto3 will see).

Each answer is built by :mod:`tiercache.gateway.s3xml` from the request botocore actually sent
(its query, its body), then parsed by botocore's REST-XML parser with the S3 service model and
the S3 response handlers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import botocore.parsers
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from tests.unit.gateway_wire import Wire, make_wire
from tiercache.gateway import httpsemantics, s3errors, s3requests, s3xml
from tiercache.gateway.s3xml import (
    MAX_DELETE_OBJECTS,
    MAX_REQUEST_BYTES,
    NS,
    ListedObject,
    ListedPart,
    ListedUpload,
    ObjectIdentifier,
    Owner,
    S3Error,
)

WHEN = datetime(2026, 1, 1, 12, 30, 45, 678_901, tzinfo=UTC)
#: Keys S3 allows and XML makes hard: markup, non-ASCII, URL syntax, spaces, controls.
AWKWARD_KEYS = [
    "plain/key.parquet",
    "a&b<c>d\"e'f",
    "ünïcödé/日本語/😀.json",
    "space and+plus",
    "percent%2Fencoded%",
    "date=2026-01-01/part=0/",
    "a//double//slash",
    "tab\there",
    "cr\rlf\ncrlf\r\n",
    "bell\x07nul\x00unit\x1f",
    " leading and trailing ",
]


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    return make_wire(monkeypatch)


def listing(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "bucket": "bkt",
        "prefix": "",
        "delimiter": None,
        "max_keys": 1000,
        "objects": [],
        "common_prefixes": [],
        "is_truncated": False,
        "continuation_token": None,
        "next_continuation_token": None,
        "start_after": None,
        "encoding_type": None,
    }
    arguments.update(overrides)
    return s3xml.list_objects_v2(**arguments)


def client_error(wire: Wire, operation: str, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        getattr(wire.client, operation)(**params)
    response: dict[str, Any] = caught.value.response
    return response


# --- ListObjectsV2 --------------------------------------------------------------------------


def test_listing_round_trips_awkward_keys_through_boto(wire: Wire) -> None:
    objects = [ListedObject(k, i, f"etag{i}", WHEN) for i, k in enumerate(AWKWARD_KEYS)]
    wire.answer(200, b"")
    wire.client.list_objects_v2(Bucket="bkt")  # botocore asks for url encoding by itself
    encoding = wire.last.query["encoding-type"][0]
    assert encoding == "url"
    wire.answer(200, listing(objects=objects, encoding_type=encoding))
    got = wire.client.list_objects_v2(Bucket="bkt")
    assert [c["Key"] for c in got["Contents"]] == AWKWARD_KEYS
    assert [c["Size"] for c in got["Contents"]] == list(range(len(AWKWARD_KEYS)))
    assert got["Contents"][3]["ETag"] == '"etag3"'
    assert got["Contents"][0]["LastModified"] == WHEN.replace(microsecond=678_000)
    assert got["Contents"][0]["StorageClass"] == "STANDARD"
    assert "Owner" not in got["Contents"][0]
    assert got["KeyCount"] == len(AWKWARD_KEYS)
    assert got["Name"] == "bkt"
    assert got["Prefix"] == ""
    assert got["IsTruncated"] is False


def test_listing_encodes_prefix_delimiter_start_after_and_common_prefixes(wire: Wire) -> None:
    prefix, delimiter, start_after = "dir &<😀>/", "+", "dir &<😀>/a b%"
    common = ["dir &<😀>/sub+", "dir &<😀>/x\x01y+"]
    wire.answer(
        200,
        listing(
            prefix=prefix,
            delimiter=delimiter,
            start_after=start_after,
            common_prefixes=common,
            objects=[ListedObject("dir &<😀>/k=v", 5, '"e"', WHEN)],
            encoding_type="url",
            is_truncated=True,
            max_keys=2,
            continuation_token="tok/+=&",
            next_continuation_token="next/+=&<",
        ),
    )
    got = wire.client.list_objects_v2(
        Bucket="bkt", Prefix=prefix, Delimiter=delimiter, StartAfter=start_after, MaxKeys=2
    )
    assert got["Prefix"] == prefix
    assert got["Delimiter"] == delimiter
    assert got["StartAfter"] == start_after
    assert [c["Prefix"] for c in got["CommonPrefixes"]] == common
    assert got["Contents"][0]["Key"] == "dir &<😀>/k=v"
    # Tokens are opaque: never encoded, and botocore never decodes them.
    assert got["ContinuationToken"] == "tok/+=&"
    assert got["NextContinuationToken"] == "next/+=&<"
    assert got["IsTruncated"] is True
    assert got["MaxKeys"] == 2
    assert got["KeyCount"] == 3  # objects and common prefixes, as S3 counts


def test_url_encoding_is_s3s_percent_encoding_with_slashes_kept() -> None:
    body = listing(
        objects=[ListedObject("date=2026-02-01/a b+😀", 1, "e", WHEN)],
        prefix="p/q r",
        delimiter="%2F",
        encoding_type="url",
    )
    assert b"<Key>date%3D2026-02-01/a%20b%2B%F0%9F%98%80</Key>" in body
    assert b"<Prefix>p/q%20r</Prefix>" in body
    assert b"<Delimiter>%252F</Delimiter>" in body  # as recorded from AWS
    assert b"<EncodingType>url</EncodingType>" in body


def test_listing_without_encoding_escapes_markup_and_keeps_cr() -> None:
    keys = ["a&b<c>d", "ünï/😀", "cr\rlf\n", "tab\t"]
    parsed = parse_output(
        "ListObjectsV2", listing(objects=[ListedObject(k, 0, "e", WHEN) for k in keys])
    )
    assert [c["Key"] for c in parsed["Contents"]] == keys
    assert "EncodingType" not in parsed


def test_control_characters_without_encoding_break_clients_as_on_s3() -> None:
    # S3 writes U+0001 as &#x1;, which no XML 1.0 parser accepts: only encoding-type=url
    # (which botocore always sends) lists such keys. We write exactly what S3 writes.
    body = listing(objects=[ListedObject("a\x01b\x00", 0, "e", WHEN)])
    assert b"<Key>a&#x1;b&#x0;</Key>" in body
    with pytest.raises(ResponseParserError):
        parse_output("ListObjectsV2", body)


def test_fetch_owner_adds_the_owner(wire: Wire) -> None:
    owner = Owner(id="owner-id", display_name="Owner & Co")
    wire.answer(
        200,
        listing(objects=[ListedObject("k", 1, "e", WHEN)], fetch_owner=True, owner=owner),
    )
    got = wire.client.list_objects_v2(Bucket="bkt", FetchOwner=True)
    assert got["Contents"][0]["Owner"] == {"ID": "owner-id", "DisplayName": "Owner & Co"}


@pytest.mark.parametrize("value", ["URL", "", "base64"])
def test_an_unknown_encoding_type_is_invalid_argument(wire: Wire, value: str) -> None:
    with pytest.raises(S3Error) as caught:
        listing(encoding_type=value)
    error = caught.value
    assert (error.code, error.status) == ("InvalidArgument", 400)
    wire.answer(error.status, error.body("R"))
    response = client_error(wire, "list_objects_v2", Bucket="bkt")
    assert response["Error"]["Message"] == "Invalid Encoding Method specified in Request"
    assert response["Error"]["ArgumentName"] == "encoding-type"


def test_the_response_document_is_namespaced_and_declared() -> None:
    body = listing()
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="')
    assert NS.encode() in body


def test_times_are_utc_milliseconds_and_naive_ones_refused() -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    body = listing(objects=[ListedObject("k", 0, "e", datetime(2026, 1, 1, 5, 30, 0, 1999, east))])
    assert b"<LastModified>2026-01-01T00:00:00.001Z</LastModified>" in body
    with pytest.raises(ValueError, match="naive"):
        listing(objects=[ListedObject("k", 0, "e", datetime(2026, 1, 1))])


# --- ListObjects (version 1) ----------------------------------------------------------------


def listing_v1(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "bucket": "bkt",
        "prefix": "",
        "delimiter": None,
        "marker": "",
        "next_marker": None,
        "max_keys": 1000,
        "objects": [],
        "common_prefixes": [],
        "is_truncated": False,
        "encoding_type": None,
    }
    arguments.update(overrides)
    return s3xml.list_objects_v1(**arguments)


def test_listing_v1_round_trips_awkward_keys_and_markers_through_boto(wire: Wire) -> None:
    objects = [ListedObject(k, i, f"etag{i}", WHEN) for i, k in enumerate(AWKWARD_KEYS)]
    wire.answer(200, b"")
    wire.client.list_objects(Bucket="bkt", Marker="m &<ü>")  # botocore asks for url encoding
    assert wire.last.query["encoding-type"] == ["url"]
    assert wire.last.query["marker"] == ["m &<ü>"]
    wire.answer(200, listing_v1(objects=objects, marker="m &<ü>", encoding_type="url"))
    got = wire.client.list_objects(Bucket="bkt", Marker="m &<ü>")
    assert [c["Key"] for c in got["Contents"]] == AWKWARD_KEYS
    assert got["Contents"][3]["ETag"] == '"etag3"'
    assert got["Contents"][0]["Owner"] == {"ID": "tiercache"}  # version 1 lists the owner
    assert (got["Name"], got["Prefix"], got["Marker"], got["MaxKeys"]) == (
        "bkt",
        "",
        "m &<ü>",
        1000,
    )
    assert got["IsTruncated"] is False
    assert "NextMarker" not in got


def test_listing_v1_next_marker_only_with_a_delimiter(wire: Wire) -> None:
    objects = [ListedObject("a/1", 1, "e", WHEN), ListedObject("a/2", 1, "e", WHEN)]
    # Without a delimiter S3 sends no NextMarker, even when the origin named one: the client
    # goes on from the last key (boto3's paginator does).
    body = listing_v1(objects=objects, is_truncated=True, max_keys=2, next_marker="a/2")
    assert b"NextMarker" not in body
    # With one, the origin's; else the last key or common prefix, whichever sorts last.
    wire.answer(
        200,
        listing_v1(
            objects=objects,
            common_prefixes=["a/b c/"],
            delimiter="/",
            prefix="a/",
            is_truncated=True,
            encoding_type="url",
        ),
    )
    got = wire.client.list_objects(Bucket="bkt", Prefix="a/", Delimiter="/")
    assert got["NextMarker"] == "a/b c/"
    assert got["CommonPrefixes"] == [{"Prefix": "a/b c/"}]
    assert got["Delimiter"] == "/"
    only_keys = listing_v1(objects=objects, delimiter="/", is_truncated=True)
    assert b"<NextMarker>a/2</NextMarker>" in only_keys
    named = listing_v1(objects=objects, delimiter="/", is_truncated=True, next_marker="tok")
    assert b"<NextMarker>tok</NextMarker>" in named
    complete = listing_v1(objects=objects, delimiter="/", next_marker="tok")
    assert b"NextMarker" not in complete  # not truncated: nothing to go on from


def test_listing_v1_refuses_an_unknown_encoding_type() -> None:
    with pytest.raises(S3Error) as caught:
        listing_v1(encoding_type="URL")
    assert (caught.value.code, caught.value.status) == ("InvalidArgument", 400)


# --- Other answers --------------------------------------------------------------------------


def test_list_buckets(wire: Wire) -> None:
    later = WHEN + timedelta(days=1)
    wire.answer(200, s3xml.list_buckets([("b-one", WHEN), ("b.two", later)]))
    got = wire.client.list_buckets()
    assert [(b["Name"], b["CreationDate"]) for b in got["Buckets"]] == [
        ("b-one", WHEN.replace(microsecond=678_000)),
        ("b.two", later.replace(microsecond=678_000)),
    ]
    assert got["Owner"] == {"ID": "tiercache"}


@pytest.mark.parametrize(("region", "expected"), [("us-east-1", None), ("eu-west-1", "eu-west-1")])
def test_bucket_location(wire: Wire, region: str, expected: str | None) -> None:
    wire.answer(200, s3xml.bucket_location(region))
    assert wire.client.get_bucket_location(Bucket="bkt")["LocationConstraint"] == expected


@pytest.mark.parametrize("quiet", [False, True])
def test_delete_objects_round_trip(wire: Wire, quiet: bool) -> None:
    # botocore writes the request's keys raw: a control character makes it ill-formed, and an
    # XML reader (S3's too) reads CR as LF. Those keys cannot be deleted by DeleteObjects.
    keys = [k for k in AWKWARD_KEYS if not re.search("[\x00-\x08\r]", k)]
    objects: list[dict[str, str]] = [{"Key": k} for k in keys]
    objects.append({"Key": "versioned", "VersionId": "v1"})
    wire.answer(200, s3xml.delete_result([], [], quiet=True))
    wire.client.delete_objects(Bucket="bkt", Delete={"Objects": objects, "Quiet": quiet})
    parsed, parsed_quiet = s3xml.parse_delete(wire.last.body)  # what botocore really sends
    assert parsed == [ObjectIdentifier(k) for k in keys] + [ObjectIdentifier("versioned", "v1")]
    assert parsed_quiet is quiet

    failed = ("a&b<c>d\"e'f", "AccessDenied", "Access Denied")
    deleted = [o.key for o in parsed if o.key != failed[0]]
    wire.answer(200, s3xml.delete_result(deleted, [failed], quiet=parsed_quiet))
    got = wire.client.delete_objects(Bucket="bkt", Delete={"Objects": objects, "Quiet": quiet})
    assert [d["Key"] for d in got.get("Deleted", [])] == ([] if quiet else deleted)
    assert got["Errors"] == [{"Key": failed[0], "Code": failed[1], "Message": failed[2]}]


def test_copy_object_and_copy_part(wire: Wire) -> None:
    wire.answer(200, s3xml.copy_object_result("abc", WHEN))
    got = wire.client.copy_object(Bucket="bkt", Key="to", CopySource="bkt/from")
    assert got["CopyObjectResult"]["ETag"] == '"abc"'
    assert got["CopyObjectResult"]["LastModified"] == WHEN.replace(microsecond=678_000)
    wire.answer(200, s3xml.copy_part_result('"def"', WHEN))
    got = wire.client.upload_part_copy(
        Bucket="bkt", Key="to", CopySource="bkt/from", PartNumber=1, UploadId="u"
    )
    assert got["CopyPartResult"]["ETag"] == '"def"'


def test_multipart_round_trip(wire: Wire) -> None:
    key = "big &<😀>.parquet"
    wire.answer(200, s3xml.initiate_multipart("bkt", key, "upload/id+1"))
    got = wire.client.create_multipart_upload(Bucket="bkt", Key=key)
    assert (got["Bucket"], got["Key"], got["UploadId"]) == ("bkt", key, "upload/id+1")

    parts = [{"PartNumber": n, "ETag": f'"etag{n}"'} for n in (1, 2, 10)]
    wire.answer(200, s3xml.complete_multipart_result("http://gw/bkt/big", "bkt", key, "x-3"))
    got = wire.client.complete_multipart_upload(
        Bucket="bkt", Key=key, UploadId="u", MultipartUpload={"Parts": parts}
    )
    assert s3xml.parse_complete_multipart(wire.last.body) == [
        (1, '"etag1"'),
        (2, '"etag2"'),
        (10, '"etag10"'),
    ]
    assert got["ETag"] == '"x-3"'
    assert (got["Location"], got["Bucket"], got["Key"]) == ("http://gw/bkt/big", "bkt", key)


def test_list_parts(wire: Wire) -> None:
    parts = [ListedPart(1, "a", 5 << 20, WHEN), ListedPart(2, '"b"', 7, WHEN)]
    wire.answer(
        200,
        s3xml.list_parts(
            bucket="bkt",
            key="k&",
            upload_id="u",
            parts=parts,
            part_number_marker=0,
            next_part_number_marker=2,
            max_parts=2,
            is_truncated=True,
        ),
    )
    got = wire.client.list_parts(Bucket="bkt", Key="k&", UploadId="u")
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in got["Parts"]] == [
        (1, '"a"', 5 << 20),
        (2, '"b"', 7),
    ]
    assert (got["Key"], got["NextPartNumberMarker"], got["IsTruncated"]) == ("k&", 2, True)
    assert got["Initiator"]["ID"] == got["Owner"]["ID"] == "tiercache"


@pytest.mark.parametrize("encoding", [None, "url"])
def test_list_multipart_uploads(wire: Wire, encoding: str | None) -> None:
    key = "dir/a b&😀"
    body = s3xml.list_multipart_uploads(
        bucket="bkt",
        uploads=[ListedUpload(key, "u1", WHEN)],
        common_prefixes=["dir/sub dir/"],
        prefix="dir/",
        delimiter="/",
        key_marker="",
        upload_id_marker="",
        next_key_marker=key,
        next_upload_id_marker="u1",
        max_uploads=1,
        is_truncated=True,
        encoding_type=encoding,
    )
    wire.answer(200, body)
    params: dict[str, Any] = {"EncodingType": encoding} if encoding else {}
    got = wire.client.list_multipart_uploads(Bucket="bkt", Prefix="dir/", Delimiter="/", **params)
    # botocore decodes the object listings only: here the caller gets S3's encoded keys.
    shown = quote(key, safe="/") if encoding else key
    assert got["Uploads"][0]["Key"] == shown
    assert got["Uploads"][0]["Initiated"] == WHEN.replace(microsecond=678_000)
    assert got["NextKeyMarker"] == shown
    assert got["CommonPrefixes"] == [{"Prefix": "dir/sub%20dir/" if encoding else "dir/sub dir/"}]
    assert got.get("EncodingType") == encoding


# --- Errors ---------------------------------------------------------------------------------

ERRORS: list[tuple[S3Error, str, int, dict[str, str]]] = [
    (s3errors.no_such_key("a&b"), "NoSuchKey", 404, {"Key": "a&b"}),
    (s3errors.no_such_bucket("bkt"), "NoSuchBucket", 404, {"BucketName": "bkt"}),
    (s3errors.no_such_upload("u"), "NoSuchUpload", 404, {"UploadId": "u"}),
    (s3errors.bucket_not_empty("bkt"), "BucketNotEmpty", 409, {"BucketName": "bkt"}),
    (
        s3errors.invalid_range(10, "bytes=100-200"),
        "InvalidRange",
        416,
        {"ActualObjectSize": "10", "RangeRequested": "bytes=100-200"},
    ),
    (
        s3errors.precondition_failed("If-Match"),
        "PreconditionFailed",
        412,
        {"Condition": "If-Match"},
    ),
    (s3errors.access_denied(), "AccessDenied", 403, {}),
    (s3errors.slow_down(), "SlowDown", 503, {}),
    (s3errors.service_unavailable(), "ServiceUnavailable", 503, {}),
    (s3errors.internal_error(), "InternalError", 500, {}),
    (s3errors.malformed_xml(), "MalformedXML", 400, {}),
    (s3errors.max_message_length_exceeded(), "MaxMessageLengthExceeded", 400, {}),
    (
        s3errors.invalid_argument("max-keys", "-1"),
        "InvalidArgument",
        400,
        {"ArgumentName": "max-keys", "ArgumentValue": "-1"},
    ),
    (s3errors.invalid_request("Bad"), "InvalidRequest", 400, {}),
    (
        s3errors.method_not_allowed("POST", "OBJECT"),
        "MethodNotAllowed",
        405,
        {"Method": "POST", "ResourceType": "OBJECT"},
    ),
    (s3errors.not_implemented("x-amz-website-redirect-location"), "NotImplemented", 501, {}),
    (
        s3errors.entity_too_large(6 << 30, 5 << 30),
        "EntityTooLarge",
        400,
        {"ProposedSize": str(6 << 30), "MaxSizeAllowed": str(5 << 30)},
    ),
    (
        s3errors.entity_too_small(1, 5 << 20),
        "EntityTooSmall",
        400,
        {"ProposedSize": "1", "MinSizeAllowed": str(5 << 20)},
    ),
    (
        s3errors.invalid_part("u", 3, '"e"'),
        "InvalidPart",
        400,
        {"UploadId": "u", "PartNumber": "3", "ETag": '"e"'},
    ),
    (s3errors.invalid_part_order("u"), "InvalidPartOrder", 400, {"UploadId": "u"}),
]


@pytest.mark.parametrize(
    ("error", "code", "status", "extra"), ERRORS, ids=[e[1] + str(e[2]) for e in ERRORS]
)
def test_errors_read_by_botocore(
    wire: Wire, error: S3Error, code: str, status: int, extra: dict[str, str]
) -> None:
    assert (error.code, error.status) == (code, status)
    wire.answer(error.status, error.body("REQ-1", host_id="HOST/+="))
    response = client_error(wire, "get_object", Bucket="bkt", Key="k")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"] == error.message
    for name, value in extra.items():
        assert response["Error"][name] == value


def test_modeled_errors_become_botocores_exception_classes(wire: Wire) -> None:
    wire.answer(404, s3errors.no_such_key("k").body("R"))
    with pytest.raises(wire.client.exceptions.NoSuchKey):
        wire.client.get_object(Bucket="bkt", Key="k")
    wire.answer(404, s3errors.no_such_bucket("b").body("R"))
    with pytest.raises(wire.client.exceptions.NoSuchBucket):
        wire.client.list_objects_v2(Bucket="b")


def test_error_body_layout() -> None:
    error = S3Error("NoSuchKey", 404, "gone & <lost>", resource="/b/a&b\x01", extra={"Key": "k"})
    body = error.body("RID", host_id="HID")
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>gone &amp; &lt;lost&gt;</Message><Resource>/b/a&amp;b&#x1;</Resource>"
        b"<Key>k</Key><RequestId>RID</RequestId><HostId>HID</HostId></Error>"
    )
    assert b"HostId" not in error.body("RID")
    assert b"xmlns" not in body  # S3's error documents carry no namespace
    assert "NoSuchKey" in str(error)
    assert "NoSuchKey" in repr(error)


def test_a_complete_answer_is_not_mistaken_for_a_200_error(wire: Wire) -> None:
    # botocore treats a 200 CompleteMultipartUpload whose body is <Error> as a failure.
    wire.answer(200, s3errors.internal_error().body("R"))
    response = client_error(
        wire,
        "complete_multipart_upload",
        Bucket="bkt",
        Key="k",
        UploadId="u",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "e"}]},
    )
    assert response["Error"]["Code"] == "InternalError"


# --- Reading requests safely ----------------------------------------------------------------


def delete_body(*keys: str, ns: bool = True, quiet: str | None = None) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    quiet_element = f"<Quiet>{quiet}</Quiet>" if quiet is not None else ""
    xmlns = f' xmlns="{NS}"' if ns else ""
    return f"<Delete{xmlns}>{objects}{quiet_element}</Delete>".encode()


def code_of(body: bytes, parse: Any = s3xml.parse_delete) -> str:
    with pytest.raises(S3Error) as caught:
        parse(body)
    return caught.value.code


def test_parse_delete_with_or_without_namespace() -> None:
    for ns in (True, False):
        parsed = s3xml.parse_delete(delete_body("a", "a&amp;b", " sp ", ns=ns, quiet="true"))
        assert parsed == (
            [ObjectIdentifier("a"), ObjectIdentifier("a&b"), ObjectIdentifier(" sp ")],
            True,
        )


@pytest.mark.parametrize(("text", "quiet"), [("false", False), ("1", True), (" TRUE ", True)])
def test_parse_delete_quiet_values(text: str, quiet: bool) -> None:
    assert s3xml.parse_delete(delete_body("a", quiet=text))[1] is quiet
    assert s3xml.parse_delete(delete_body("a"))[1] is False


DOCTYPES = {
    "internal entity": b'<?xml version="1.0"?><!DOCTYPE Delete [<!ENTITY x "boom">]>'
    b"<Delete><Object><Key>&x;</Key></Object></Delete>",
    "external entity (XXE)": b'<?xml version="1.0"?>'
    b'<!DOCTYPE Delete [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<Delete><Object><Key>&x;</Key></Object></Delete>",
    "billion laughs": b'<!DOCTYPE Delete [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<Delete><Object><Key>&c;</Key></Object></Delete>",
    "external DTD": b'<!DOCTYPE Delete SYSTEM "http://attacker.test/x.dtd">'
    b"<Delete><Object><Key>k</Key></Object></Delete>",
    "bare": b"<!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>",
    # A byte search for "<!DOCTYPE" would miss this one.
    "in UTF-16": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Delete [<!ENTITY x "boom">]>'
    "<Delete><Object><Key>&x;</Key></Object></Delete>".encode("utf-16"),
}


@pytest.mark.parametrize("body", DOCTYPES.values(), ids=DOCTYPES.keys())
def test_any_doctype_is_refused(body: bytes) -> None:
    assert code_of(body) == "MalformedXML"
    assert code_of(body.replace(b"Delete", b"CompleteMultipartUpload"), parse_complete) == (
        "MalformedXML"
    )


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    return s3xml.parse_complete_multipart(body, upload_id="UP")


def test_oversized_bodies_are_refused_before_parsing() -> None:
    key = "k" * 1000
    fits = delete_body(*[key] * 1000)
    assert len(fits) <= MAX_REQUEST_BYTES
    assert len(s3xml.parse_delete(fits)[0]) == 1000
    too_big = b" " * (MAX_REQUEST_BYTES + 1)  # not even XML: the size is checked first
    assert code_of(too_big) == "MaxMessageLengthExceeded"
    assert code_of(too_big, parse_complete) == "MaxMessageLengthExceeded"
    error = s3errors.max_message_length_exceeded()
    assert error.status == 400


MALFORMED = {
    "empty": b"",
    "not xml": b"hello",
    "truncated": delete_body("a")[:-3],
    "wrong root": b"<Remove><Object><Key>a</Key></Object></Remove>",
    "foreign namespace": b'<Delete xmlns="urn:other"><Object><Key>a</Key></Object></Delete>',
    "no objects": b"<Delete></Delete>",
    "object without key": b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
    "two keys": b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
    "key with markup": b"<Delete><Object><Key>a<b/></Key></Object></Delete>",
    "two versions": b"<Delete><Object><Key>a</Key><VersionId>1</VersionId>"
    b"<VersionId>2</VersionId></Object></Delete>",
    "bad quiet": delete_body("a", quiet="yes"),
    "two quiets": b"<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet><Quiet>true</Quiet>"
    b"</Delete>",
    "undefined entity": b"<Delete><Object><Key>&x;</Key></Object></Delete>",
    "control character reference": b"<Delete><Object><Key>&#x1;</Key></Object></Delete>",
    "too many objects": delete_body(*["k"] * (MAX_DELETE_OBJECTS + 1)),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_delete_bodies(body: bytes) -> None:
    assert code_of(body) == "MalformedXML"


def complete_body(*parts: tuple[str, str], ns: bool = False, extra: str = "") -> bytes:
    inner = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag>{extra}</Part>" for n, e in parts
    )
    xmlns = f' xmlns="{NS}"' if ns else ""
    return f"<CompleteMultipartUpload{xmlns}>{inner}</CompleteMultipartUpload>".encode()


def test_parse_complete_multipart() -> None:
    body = complete_body(("1", "&quot;a&quot;"), (" 2 ", "b"), ("2", "c"), ns=True)
    assert parse_complete(body) == [(1, '"a"'), (2, "b"), (2, "c")]
    checksummed = complete_body(("1", "a"), extra="<ChecksumCRC32>AAAAAA==</ChecksumCRC32>")
    assert parse_complete(checksummed) == [(1, "a")]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (complete_body(("2", "a"), ("1", "b")), "InvalidPartOrder"),
        (b"<CompleteMultipartUpload/>", "InvalidRequest"),
        (complete_body(("0", "a")), "InvalidArgument"),
        (complete_body(("10001", "a")), "InvalidArgument"),
        (complete_body(("one", "a")), "MalformedXML"),
        (complete_body(("-1", "a")), "MalformedXML"),
        (complete_body(("\u0661", "a")), "MalformedXML"),  # an Arabic-Indic digit
        (
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
            b"</CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (b"<Delete><Object><Key>a</Key></Object></Delete>", "MalformedXML"),
        (b"<CompleteMultipartUpload>", "MalformedXML"),
    ],
)
def test_bad_complete_bodies(body: bytes, code: str) -> None:
    assert code_of(body, parse_complete) == code


def test_invalid_part_order_names_the_upload() -> None:
    with pytest.raises(S3Error) as caught:
        parse_complete(complete_body(("2", "a"), ("1", "b")))
    assert caught.value.extra == {"UploadId": "UP"}
    assert caught.value.message.startswith("The list of parts was not in ascending order.")


# --- Serialization and the modules' surface -------------------------------------------------


def test_xml_bytes_writes_what_xml_cannot_carry_as_references() -> None:
    body = s3xml.initiate_multipart("b", "x\ud800y\ufffez\r", "u")
    assert b"<Key>x&#xD800;y&#xFFFE;z&#xD;</Key>" in body
    assert re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", body) is None


def test_quoting_of_etags_in_documents() -> None:
    assert b'<ETag>"abc"</ETag>' in s3xml.copy_object_result("abc", WHEN)
    assert b'<ETag>"abc"</ETag>' in s3xml.copy_object_result('"abc"', WHEN)


@pytest.mark.parametrize("module", [s3xml, s3errors, s3requests, httpsemantics])
def test_all_lists_the_public_names(module: Any) -> None:
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", None) == module.__name__
    }
    assert defined <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


def parse_output(operation: str, body: bytes) -> dict[str, Any]:
    """Parse an answer with botocore's REST-XML parser alone (no client, no handlers)."""
    model = botocore.session.get_session().get_service_model("s3").operation_model(operation)
    parser = botocore.parsers.RestXMLParser()
    parsed: dict[str, Any] = parser.parse(
        {"body": body, "headers": {}, "status_code": 200}, model.output_shape
    )
    return parsed
