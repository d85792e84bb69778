"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from datetime import UTC, datetime

from naiad.server.compat.s3.call import Call, Reply, xml_reply
from naiad.server.compat.s3.errors import S3Error, no_such_bucket
from naiad.server.compat.s3.layout import READ_ONLY, Volume, check_name, read_only
from naiad.server.compat.s3.walk import has_files
from naiad.server.compat.s3.xml import MalformedXML, Node, document, parse, text

DEFAULT_REGION = "us-east-1"  # S3 writes an empty LocationConstraint for it


def owner(call: Call) -> Node:
    return ("Owner", [("ID", call.caller.account), ("DisplayName", "naiad")])


async def list_buckets(call: Call) -> Reply:
    volume = call.volume

    def listed() -> list[tuple[str, datetime]]:
        out = []
        for name in [READ_ONLY, *volume.bucket_names()]:
            created = volume.bucket_created(name)
            if created is not None and name.startswith(call.query.get("prefix", "")):
                out.append((name, created))
        return sorted(out)

    buckets: list[Node] = [
        ("Bucket", [("Name", name), ("CreationDate", created)])
        for name, created in await call.run(listed)
    ]
    return xml_reply(document("ListAllMyBucketsResult", [owner(call), ("Buckets", buckets)]))


def _region(body: bytes, fallback: str) -> str:
    if not body.strip():
        return fallback
    try:
        root = parse(body, "CreateBucketConfiguration")
    except MalformedXML as exc:
        raise S3Error("MalformedXML", str(exc), 400) from None
    return text(root, "LocationConstraint") or DEFAULT_REGION


async def create_bucket(call: Call) -> Reply:
    bucket = call.bucket
    check_name(bucket)
    if bucket == READ_ONLY:
        raise read_only(bucket)
    region = _region(await call.small_body(64 * 1024), call.caller.region)
    volume = call.volume

    def create() -> None:
        if volume.read_json(volume.record_path(bucket)) is not None:
            return  # already made: S3 in us-east-1 answers 200 to its owner
        created = volume.bucket_created(bucket) or datetime.now(UTC)
        record = {"created": created.isoformat(), "region": region}
        volume.write_json(volume.record_path(bucket), record)

    await call.run(create)
    return Reply(200, {"location": f"/{bucket}"})


async def head_bucket(call: Call) -> Reply:
    await call.run(call.volume.require_bucket, call.bucket)
    region = await call.run(_bucket_region, call.volume, call.bucket)
    return Reply(200, {"x-amz-bucket-region": region})


def _bucket_region(volume: Volume, bucket: str) -> str:
    record = volume.read_json(volume.record_path(bucket)) if bucket != READ_ONLY else None
    region = record.get("region") if record else None
    return region if isinstance(region, str) and region else DEFAULT_REGION


async def get_bucket_location(call: Call) -> Reply:
    await call.run(call.volume.require_bucket, call.bucket)
    region = await call.run(_bucket_region, call.volume, call.bucket)
    constraint = "" if region == DEFAULT_REGION else region
    return xml_reply(document("LocationConstraint", constraint))


async def delete_bucket(call: Call) -> Reply:
    bucket, volume = call.bucket, call.volume
    check_name(bucket)
    if bucket == READ_ONLY:
        raise read_only(bucket)

    def delete() -> None:
        if volume.bucket_created(bucket) is None:
            raise no_such_bucket(bucket)
        if has_files(volume.scanner(bucket), ""):
            raise S3Error(
                "BucketNotEmpty",
                f"The bucket {bucket!r} holds objects; delete them first (delete_objects), "
                "then the bucket.",
                409,
                f"/{bucket}",
            )
        store = volume.store
        store.delete(volume.uploads_path(bucket))  # uploads in progress go with it
        store.delete(volume.sidecar_path(bucket, "").rstrip("/"))
        store.delete(volume.folder(bucket))  # empty but for writes in flight
        store.delete(volume.record_path(bucket))

    await call.run(delete)
    return Reply(204)
