"""Artifact stores behind one interface, chosen by URI scheme (file://, s3://).

Backends are looked up by scheme and imported only when asked for, so importing this
package never loads boto3.
"""

import importlib
import os
from urllib.parse import urlsplit

from naiad.core.errors import InvalidInput
from naiad.store.artifacts.base import ArtifactInfo, ArtifactStore, safe_path

__all__ = ["ArtifactInfo", "ArtifactStore", "open_artifact_store", "safe_path"]

# scheme -> "module:class"; imported on first use.
BACKENDS: dict[str, str] = {
    "file": "naiad.store.artifacts.local:LocalArtifactStore",
    "s3": "naiad.store.artifacts.s3:S3ArtifactStore",
}


def open_artifact_store(uri: str, *, s3_endpoint_url: str | None = None) -> ArtifactStore:
    """The store for `uri`; an absolute path without a scheme means file://."""
    if os.path.isabs(uri):
        from naiad.store.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(uri)  # a plain path: no percent-decoding
    scheme = urlsplit(uri).scheme.lower()
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        given = f"scheme {scheme + '://'!r}" if scheme else "no scheme"
        raise InvalidInput(
            f"Artifact URI {uri!r} has {given}; use one of {known} (or an absolute local path)."
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if scheme == "s3":
        return cls(uri, endpoint_url=s3_endpoint_url)
    return cls(uri)
