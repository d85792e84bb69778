"""What a server instance holds: its settings, database and artifact store, built once."""

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from naiad.core import api_keys, job_tokens
from naiad.executors.base import Executor
from naiad.server.controller.registry import Services
from naiad.server.home import HomeWatch
from naiad.server.throttle import SignInThrottle
from naiad.settings import Settings
from naiad.store.artifacts import ArtifactStore


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    token: str | None  # None when auth is off
    home: HomeWatch
    executor: Executor  # built with the state; opened while the app is being served
    services: Services = field(default_factory=Services)  # likewise: the background loops
    sign_ins: SignInThrottle = field(default_factory=SignInThrottle)

    @cached_property
    def job_key(self) -> bytes | None:
        """What signs and checks jobs' own tokens; None when auth is off."""
        return None if self.token is None else job_tokens.signing_key(self.token)

    @cached_property
    def key_key(self) -> bytes | None:
        """What derives users' keys' secrets from their ids; None when auth is off."""
        return None if self.token is None else api_keys.signing_key(self.token)

    @property
    def slots(self) -> int:
        """Processes the executor runs at once."""
        return self.executor.slots
