"""The one lifecycle every resource follows, and which moves it allows."""

from enum import StrEnum

from naiad.core.errors import Conflict


class Status(StrEnum):
    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.STARTING, Status.RUNNING, Status.STOPPING, *TERMINAL}),
    Status.STARTING: frozenset({Status.RUNNING, Status.STOPPING, *TERMINAL}),
    Status.RUNNING: frozenset({Status.STOPPING, *TERMINAL}),
    Status.STOPPING: frozenset({Status.STOPPED, Status.COMPLETED, Status.FAILED}),
}


def check_transition(current: Status, new: Status, what: str = "run") -> None:
    """Raise Conflict when ``current -> new`` is not a legal move (same state is a no-op)."""
    if current == new:
        return
    if new not in _ALLOWED.get(current, frozenset()):
        raise Conflict(
            f"The {what} is {current.value} and cannot become {new.value}; "
            f"a {what} that has ended stays ended."
            if current.terminal
            else f"The {what} is {current.value} and cannot move to {new.value}."
        )


class EndpointStatus(StrEnum):
    """An endpoint serves until deleted, so its lifecycle has no "ended" states: SageMaker's
    Creating -> InService <-> Updating, Failed (fixed by an update) and Deleting."""

    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    FAILED = "Failed"
    DELETING = "Deleting"


_ENDPOINT_ALLOWED: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    EndpointStatus.CREATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.IN_SERVICE: frozenset(
        {EndpointStatus.UPDATING, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.UPDATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.FAILED: frozenset({EndpointStatus.UPDATING, EndpointStatus.DELETING}),
    EndpointStatus.DELETING: frozenset(),
}


def check_endpoint_transition(current: EndpointStatus, new: EndpointStatus) -> None:
    """Raise Conflict when an endpoint may not move ``current -> new`` (same state: no-op)."""
    if current == new:
        return
    if new not in _ENDPOINT_ALLOWED[current]:
        hint = {
            EndpointStatus.DELETING: " it is being deleted",
            EndpointStatus.UPDATING: " wait for the update in progress to finish",
            EndpointStatus.CREATING: " wait until it is InService",
        }.get(current, "")
        raise Conflict(
            f"The endpoint is {current.value} and cannot move to {new.value}"
            + (f";{hint}." if hint else ".")
        )
