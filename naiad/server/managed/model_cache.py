"""Model directories fetched from the artifact store, once per version, for the replicas.

``$NAIAD_HOME/model-cache/<version id>/`` holds a version's files. A download lands in a
temporary directory that is renamed into place when complete, so a replica never loads a
half-copied model; downloads run in a background thread so the keeper's loop never waits
on the network.
"""

import logging
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from naiad.schemas.models import MANIFEST_FILE
from naiad.store.artifacts import ArtifactStore

log = logging.getLogger("naiad.endpoints")


class ModelCache:
    def __init__(self, root: Path, store: ArtifactStore) -> None:
        self.root = root
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="naiad-model-fetch")
        self._fetching: dict[str, Future[Path]] = {}

    def path(self, version_id: str) -> Path:
        return self.root / version_id

    def ready(self, version_id: str) -> bool:
        return (self.path(version_id) / MANIFEST_FILE).is_file()

    def fetch(self, version_id: str, artifact_uri: str) -> Path | str | None:
        """The model's local directory when it is here; a sentence when fetching it failed
        (asking again retries); None while it downloads."""
        if self.ready(version_id):
            return self.path(version_id)
        future = self._fetching.get(version_id)
        if future is None:
            self._fetching[version_id] = self._pool.submit(self._download, version_id, artifact_uri)
            return None
        if not future.done():
            return None
        del self._fetching[version_id]
        error = future.exception()
        if error is None:
            return future.result()
        return (
            f"Could not fetch the model files from {self.store.uri_for(artifact_uri)} "
            f"({error.__class__.__name__}: {error})."
        )

    def _download(self, version_id: str, artifact_uri: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version_id}.", dir=self.root))
        try:
            self.store.download(artifact_uri, tmp)
            if not (tmp / MANIFEST_FILE).is_file():
                raise FileNotFoundError(f"no {MANIFEST_FILE} under {artifact_uri}")
            os.replace(tmp, self.path(version_id))
        except OSError:
            if self.ready(version_id):  # another fetch of the same version won the rename
                return self.path(version_id)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.path(version_id)

    def prune(self, keep: set[str]) -> None:
        """Remove cached versions no endpoint serves any more."""
        if not self.root.is_dir():
            return
        downloading = any(not f.done() for f in self._fetching.values())
        for entry in self.root.iterdir():
            partial = entry.name.startswith(".")  # a download that a crash left behind
            if (partial and not downloading) or (not partial and entry.name not in keep):
                shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
