"""Where an ``s3://bucket/key`` URI lives, in one place for every layer.

On the embedded default there is no object store: Naiad serves the S3 API itself, and a
bucket is the folder ``buckets/<bucket>/`` of its artifact store, so objects put through
S3 are artifacts and a job reads them with no network hop. When the artifact store is an
S3-compatible service, URIs name that service's buckets and pass through unchanged.
The bucket ``naiad`` is the whole store, read-only (run artifacts, registered models).
Every bucket name and key is checked here, so no URI names a path outside the store.
"""

import re

from naiad.core.errors import InvalidInput
from naiad.store.artifacts.base import ArtifactStore, safe_path

BUCKETS = "buckets"
STORE_BUCKET = "naiad"  # the store itself, read-only

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def name_problem(bucket: str) -> str | None:
    """What breaks S3's naming rules in ``bucket``, as a clause; None for a good name."""
    if not 3 <= len(bucket) <= 63:
        return "must be 3 to 63 characters long"
    if not _NAME.fullmatch(bucket):
        return (
            "may hold only lowercase letters, digits, '.' and '-', and must begin and end "
            "with a letter or digit"
        )
    if ".." in bucket:
        return "must not hold two periods in a row"
    if _IP.fullmatch(bucket):
        return "must not look like an IP address"
    if bucket.startswith(_RESERVED_PREFIXES) or bucket.endswith(_RESERVED_SUFFIXES):
        return "must not begin or end with a prefix or suffix AWS reserves"
    return None


def split(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``, both checked; InvalidInput for anything else."""
    if not uri.startswith("s3://"):
        raise InvalidInput(f"{uri!r} is not an s3:// URI.")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    problem = name_problem(bucket)
    if problem is not None:
        raise InvalidInput(f"{uri!r} does not name a bucket: a bucket name {problem}.")
    key = key.rstrip("/")
    return bucket, safe_path(key) if key else ""


def store_path(uri: str, store_uri: str) -> str:
    """What a job or the registry is given for ``uri``: a path in the local artifact store,
    or, when the store itself is S3, the URI as it is."""
    bucket, key = split(uri)
    if store_uri.startswith("s3://"):
        return uri
    if bucket == STORE_BUCKET:
        return key
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
    from naiad.store.artifacts import open_artifact_store

    path = store_path(uri, store.uri)
    if not path.startswith("s3://"):
        return store, path
    bucket, key = split(path)
    return open_artifact_store(f"s3://{bucket}", s3_endpoint_url=s3_endpoint_url), key
