"""ListObjectsV2 and ListObjects (v1): pages of keys in S3's order, common prefixes rolled
up by a delimiter, keys URL-encoded when asked (boto3 always asks, and decodes them)."""

import base64
import binascii
from urllib.parse import quote

from naiad.server.compat.s3.buckets import owner
from naiad.server.compat.s3.call import Call, Reply, xml_reply
from naiad.server.compat.s3.errors import S3Error
from naiad.server.compat.s3.layout import ObjectInfo, Volume
from naiad.server.compat.s3.walk import Item, Marker, items
from naiad.server.compat.s3.xml import Node, document

MAX_KEYS = 1000


def token(marker: Marker) -> str:
    """An opaque continuation token: where the next page starts."""
    raw = ("p" if marker.past else "k") + marker.after
    return base64.urlsafe_b64encode(raw.encode()).decode()


def marker_of(value: str) -> Marker:
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    if raw[:1] not in ("p", "k"):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect.", 400)
    return Marker(raw[1:], past=raw[0] == "p")


Page = tuple[list[tuple[Item, ObjectInfo | None]], bool]


def page(
    volume: Volume, bucket: str, prefix: str, delimiter: str, marker: Marker, max_keys: int
) -> Page:
    """Up to ``max_keys`` keys and common prefixes after ``marker`` (a key's description
    with it), and whether more follow."""
    out: list[tuple[Item, ObjectInfo | None]] = []
    found = items(volume.scanner(bucket), prefix, delimiter, marker)
    for item in found:
        if len(out) == max_keys:
            return out, True
        if item.is_prefix:
            out.append((item, None))
            continue
        try:
            info = volume.info(bucket, item.key)
        except S3Error:  # a file a job named as no key can be (a control character)
            continue
        if info is not None:  # not deleted since the folder was read
            out.append((item, info))
    return out, False


class _Listing:
    """The parts both versions share, read from the query."""

    def __init__(self, call: Call) -> None:
        query = call.query
        self.call = call
        self.prefix = query.get("prefix", "")
        self.delimiter = query.get("delimiter", "")
        self.max_keys = min(call.int_query("max-keys", MAX_KEYS, 0, 2**31 - 1), MAX_KEYS)
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise S3Error("InvalidArgument", "encoding-type must be 'url' when given.", 400)
        self.url = encoding == "url"

    def encode(self, value: str) -> str:
        return quote(value, safe="/") if self.url else value

    async def read(self, marker: Marker) -> Page:
        call = self.call
        await call.run(call.volume.require_bucket, call.bucket)
        return await call.run(
            page, call.volume, call.bucket, self.prefix, self.delimiter, marker, self.max_keys
        )

    def entries(self, found: list[tuple[Item, ObjectInfo | None]], owned: bool) -> list[Node]:
        contents: list[Node] = []
        prefixes: list[Node] = []
        for item, info in found:
            if info is None:
                prefixes.append(("CommonPrefixes", [("Prefix", self.encode(item.key))]))
                continue
            fields: list[Node] = [
                ("Key", self.encode(item.key)),
                ("LastModified", info.stat.modified),
                ("ETag", info.etag),
                ("Size", info.stat.size),
                ("StorageClass", "STANDARD"),
            ]
            if owned:
                fields.append(owner(self.call))
            contents.append(("Contents", fields))
        return contents + prefixes

    def head(self) -> list[Node]:
        fields: list[Node] = [("Name", self.call.bucket), ("Prefix", self.encode(self.prefix))]
        if self.delimiter:
            fields.append(("Delimiter", self.encode(self.delimiter)))
        fields.append(("MaxKeys", self.max_keys))
        if self.url:
            fields.append(("EncodingType", "url"))
        return fields


def _next(found: list[tuple[Item, ObjectInfo | None]]) -> Marker:
    last = found[-1][0]
    return Marker(last.key, past=last.is_prefix)


async def list_objects_v2(call: Call) -> Reply:
    listing = _Listing(call)
    given = call.query.get("continuation-token")
    start_after = call.query.get("start-after", "")
    found, truncated = await listing.read(marker_of(given) if given else Marker(start_after))
    fields = listing.head()
    fields.append(("KeyCount", len(found)))
    if given:
        fields.append(("ContinuationToken", given))
    if start_after:
        fields.append(("StartAfter", listing.encode(start_after)))
    fields.append(("IsTruncated", truncated))
    if truncated and found:  # MaxKeys=0 lists nothing and names no next page
        fields.append(("NextContinuationToken", token(_next(found))))
    owned = call.query.get("fetch-owner", "").lower() == "true"
    fields += listing.entries(found, owned)
    return xml_reply(document("ListBucketResult", fields))


async def list_objects(call: Call) -> Reply:
    listing = _Listing(call)
    given = call.query.get("marker", "")
    delimiter = listing.delimiter
    past = bool(delimiter) and given.endswith(delimiter)  # a common prefix ended the page
    found, truncated = await listing.read(Marker(given, past))
    fields = listing.head()
    fields.append(("Marker", listing.encode(given)))
    fields.append(("IsTruncated", truncated))
    if truncated and found:
        fields.append(("NextMarker", listing.encode(_next(found).after)))
    fields += listing.entries(found, True)
    return xml_reply(document("ListBucketResult", fields))
