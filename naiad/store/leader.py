"""One scheduler at a time when several servers share one PostgreSQL database.

Each server runs the scheduler loop, but only the holder of a session-level advisory
lock acts: it is held by one connection kept open for that purpose, so it goes the
moment its server dies or loses the database (PostgreSQL ends the session), and another
server's next tick takes it. SQLite is one server's file: it always leads.
"""

import contextlib
import logging
import weakref
import zlib

from sqlalchemy import Connection, Engine, event, text

log = logging.getLogger("naiad.leader")
_LEADS: "weakref.WeakKeyDictionary[Engine, dict[str, Leadership]]" = weakref.WeakKeyDictionary()


class Leadership:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = zlib.crc32(f"naiad:{name}".encode())  # the same on every server
        self._conn: Connection | None = None
        self._said = False
        event.listen(engine, "engine_disposed", lambda _engine: self.release())

    @classmethod
    def of(cls, engine: Engine, name: str) -> "Leadership":
        """This server's (its engine's) one lead of that name, shared by its loops."""
        held = _LEADS.setdefault(engine, {})
        if name not in held:
            held[name] = cls(engine, name)
        return held[name]

    def held(self) -> bool:
        """Whether this server leads now; tries to take the lead when nobody holds it."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))  # the lock lives as long as the session
                return True
            except Exception:
                log.warning("lost the database connection that held the %s lead", self.name)
                self.release()
        conn = self.engine.connect()
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            if not self._said:
                log.info("another server runs the %s; this one stands by", self.name)
                self._said = True
            return False
        self._conn, self._said = conn, False
        log.info("this server now runs the %s", self.name)
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                conn.invalidate()  # never back into the pool still holding the lock
        with contextlib.suppress(Exception):
            conn.close()
