"""Where an ``s3://bucket/key`` URI of the AWS-compatible APIs lives.

On the embedded default there is no object store: Naiad serves the S3 API itself, and a
bucket is the folder ``buckets/<bucket>/`` of its artifact store, so objects put through
S3 are artifacts and a job reads them with no network hop. When the artifact store is an
S3-compatible service, URIs name that service's buckets and pass through unchanged.
The bucket ``naiad`` is the whole store, read-only (run artifacts, registered models).
"""

from naiad.core.errors import InvalidInput
from naiad.store.artifacts import ArtifactStore, open_artifact_store

BUCKETS = "buckets"
STORE_BUCKET = "naiad"  # the store itself, read-only


def split(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; InvalidInput for anything else."""
    if not uri.startswith("s3://"):
        raise InvalidInput(f"{uri!r} is not an s3:// URI.")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise InvalidInput(f"{uri!r} names no bucket.")
    return bucket, key


def store_path(uri: str, store_uri: str) -> str:
    """What a job or the registry is given for ``uri``: a path in the local artifact store,
    or, when the store itself is S3, the URI as it is."""
    if store_uri.startswith("s3://"):
        return uri
    bucket, key = split(uri)
    if bucket == STORE_BUCKET:
        return key.strip("/")
    return f"{BUCKETS}/{bucket}/{key}".rstrip("/")


def writable_path(uri: str, store_uri: str) -> str:
    """``store_path`` for a place Naiad writes to (a job's output, its checkpoints)."""
    if not store_uri.startswith("s3://") and split(uri)[0] == STORE_BUCKET:
        raise InvalidInput(
            f"{uri} is in the bucket {STORE_BUCKET!r}, Naiad's own store, which is read-only; "
            "write to a bucket of your own."
        )
    return store_path(uri, store_uri)


def s3_uri(path: str, store_uri: str) -> str:
    """The ``s3://`` URI of a path ``store_path`` made (the way back)."""
    if path.startswith("s3://") or store_uri.startswith("s3://"):
        return path
    if not path.startswith(f"{BUCKETS}/"):
        return f"s3://{STORE_BUCKET}/{path}"
    return f"s3://{path.removeprefix(f'{BUCKETS}/')}"


def locate(
    uri: str, store: ArtifactStore, s3_endpoint_url: str | None
) -> tuple[ArtifactStore, str]:
    """The store holding ``uri`` and its path there: the server's own store on the embedded
    default, the named bucket of the S3 service otherwise."""
    path = store_path(uri, store.uri)
    if not path.startswith("s3://"):
        return store, path
    bucket, key = split(path)
    return open_artifact_store(f"s3://{bucket}", s3_endpoint_url=s3_endpoint_url), key
