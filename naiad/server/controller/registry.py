"""The background services a server runs, and what wakes them.

The lifespan starts each service in the order of ``app.SERVICES`` and stops them in
reverse. A service names the tables whose committed writes it must act on
(``wakes_on``); after any transaction that wrote such a row commits, the service is
woken, so a route only writes rows and never knows which loop acts on them.
"""

from typing import Any, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

WRITTEN = "naiad.written"  # Session.info key: the row classes this transaction wrote


class Service(Protocol):
    name: str

    @property
    def wakes_on(self) -> tuple[type[Any], ...]:
        """The row classes whose committed writes call for a turn."""
        ...

    def start(self) -> None: ...

    def wake(self) -> None: ...

    async def stop(self) -> None:
        """Stop working; what the service started for users (jobs, replicas) keeps running."""
        ...


S = TypeVar("S", bound=Service)


class Services:
    """The running services by name; routes reach one by its class (``get``)."""

    def __init__(self) -> None:
        self._running: dict[str, Service] = {}
        self._sessions: sessionmaker[Session] | None = None

    def get(self, kind: type[S]) -> S | None:
        """The running service of this class, or None (before the lifespan, or after it)."""
        for service in self._running.values():
            if isinstance(service, kind):
                return service
        return None

    def start(self, service: Service) -> None:
        service.start()
        self._running[service.name] = service

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Wake services after commits of the sessions this factory makes."""
        self._sessions = sessions
        event.listen(sessions, "after_flush", _note_written)
        event.listen(sessions, "after_commit", self._wake)
        event.listen(sessions, "after_rollback", _forget_written)

    async def stop(self) -> None:
        """Stop in reverse order of starting; a service started later may rely on an earlier one."""
        if self._sessions is not None:
            event.remove(self._sessions, "after_flush", _note_written)
            event.remove(self._sessions, "after_commit", self._wake)
            event.remove(self._sessions, "after_rollback", _forget_written)
            self._sessions = None
        while self._running:
            _, service = self._running.popitem()
            await service.stop()

    def _wake(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a SAVEPOINT released: nothing is visible to the loops until the commit
        written: set[type[Any]] | None = session.info.pop(WRITTEN, None)
        if not written:
            return
        for service in self._running.values():
            if written.intersection(service.wakes_on):
                service.wake()


def _note_written(session: Session, _context: object) -> None:
    """Remember which tables a flush wrote (the lists still hold the flushed rows here)."""
    written = session.info.setdefault(WRITTEN, set())
    for row in (*session.new, *session.dirty, *session.deleted):
        written.add(type(row))


def _forget_written(session: Session) -> None:
    session.info.pop(WRITTEN, None)
