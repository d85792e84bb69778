"""What a server instance holds: its settings, database and artifact store, built once."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from naiad.server.home import HomeWatch
from naiad.settings import Settings
from naiad.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from naiad.server.controller.endpoints import EndpointKeeper
    from naiad.server.controller.scheduler import Scheduler


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    token: str | None  # None when auth is off
    home: HomeWatch
    scheduler: "Scheduler | None" = None  # runs while the app is being served
    endpoints: "EndpointKeeper | None" = None  # likewise: replicas, routing, their figures

    @property
    def slots(self) -> int:
        """Processes the executor runs at once (1 while no scheduler runs, as in a test app)."""
        return self.scheduler.executor.slots if self.scheduler else 1
