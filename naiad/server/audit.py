"""The audit log's recorder: the outermost layer, so it sees every write to the server
(Naiad's API, the console's, the AWS-compatible APIs) with the status it was answered.

The layers that authenticate a request name its actor in a dict this layer leaves in the
scope (``note_actor``); a dict, so that a layer that copies the scope still reaches it.
The row is written after the answer has been sent, so recording never delays a caller,
and a recording that fails (a full disk) is logged, never turned into an error.

Not recorded: reads, and the data-plane traffic that would drown the writes a person
looks for: metric batches, invocations, notebook servers' own API, AWS read operations
(``Describe*``, ``List*``, ``Get*``, ...) and searches, which are reads sent as POST.
"""

import logging
import re

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naiad.store import audit
from naiad.store.db import transaction

log = logging.getLogger(__name__)

AUDIT = "naiad.audit"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_DATA_PLANE = re.compile(
    r"/api/v1/runs/[^/]+/metrics|(/api/v1)?/endpoints/[^/]+/invocations|/notebooks/.*"
    r"|/api/v1/.*/search"
)
_AWS_READS = ("Describe", "List", "Get", "Search", "BatchGet", "Query", "Filter", "Scan")


def note_actor(scope: Scope, actor: str) -> None:
    """Name who is making this request, for its audit event (if it is one)."""
    note = scope.get(AUDIT)
    if isinstance(note, dict):
        note["actor"] = actor


class AuditLog:
    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        action = scope["method"]
        for name, value in scope["headers"]:
            if name == b"x-amz-target":  # an AWS JSON call: the operation is the action
                action = value.decode("latin-1").rpartition(".")[2] or action
        if _DATA_PLANE.fullmatch(path) or action.startswith(_AWS_READS):
            await self.app(scope, receive, send)
            return
        note: dict[str, str] = {}
        scope[AUDIT] = note
        status = 500  # a crash below answers 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            client = scope.get("client") or ("", 0)
            actor = note.get("actor", "anonymous")
            await run_in_threadpool(self._record, actor, action, path, status, str(client[0]))

    def _record(self, actor: str, action: str, path: str, status: int, client: str) -> None:
        try:
            with transaction(self.sessions) as session:
                audit.record(session, actor, action, path, status, client)
        except Exception:
            log.exception("could not record %s %s by %s in the audit log", action, path, actor)
