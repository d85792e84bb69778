"""What each role may do, judged from the method and path alone (so a refusal never reads
a body), with a refusal that names the role or permission missing.

- ``viewer``: reads everything, searches, and manages their own read-only keys.
- ``editor``: also creates and changes runs, jobs, models, endpoints, tuning jobs,
  connections; deletes what they created (checked against the row by ``deps``).

Roles are held per project (``core.principals``): this first check asks for the role in
any project; ``deps.require_token`` then asks for it in the project of what the call
reaches.
- ``admin``: also users, every key, the audit log, maintenance, connections' secrets,
  managed notebook servers (whose kernels act as the admin), and deleting anything.

A read-only key acts as a viewer whatever its user's role. The same roles govern the
AWS-compatible APIs, where reads are the operations named ``Describe*``, ``List*``, ...
"""

import re

from naiad.core.errors import Forbidden
from naiad.core.principals import Principal, Role

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_GUARDED = ("/api/", "/notebooks/", "/endpoints/")
_ADMIN_ONLY = re.compile(
    r"/api/v1/(users(?!/me$)(/.*)?|audit(/.*)?|admin/.*|keys/admin|projects/.+"
    r"|connections/[^/]+/credentials)"
    r"|/api/v1/notebooks(/[^/]+(/start|/stop)?)?|/notebooks/.*"
)
_NOTEBOOK_READS = re.compile(r"/api/v1/notebooks(/[^/]+)?")  # listing and showing: anyone
_VIEWER_WRITES = re.compile(r"/api/v1/(.+/search|keys(/[^/]+)?|users/me)")
AWS_READS = ("Describe", "List", "Get", "Search", "BatchGet", "Query", "Filter", "Scan", "Head")


def role_problem(principal: Principal, method: str, path: str) -> Forbidden | None:
    """Why ``principal`` may not make this call to Naiad's own API; None when it may."""
    if principal.may("admin") or not path.startswith(_GUARDED):
        return None  # the console's own pages and sign-in/out are anyone's
    read = method in _READS
    if path == "/api/v1/projects" and not read:
        return refusal(principal, "admin", f"{method} {path}")
    if _ADMIN_ONLY.fullmatch(path) and not (read and _NOTEBOOK_READS.fullmatch(path)):
        return refusal(principal, "admin", f"{method} {path}")
    if read or (_VIEWER_WRITES.fullmatch(path) and method in ("POST", "PATCH", "DELETE")):
        return None
    return None if principal.may("editor") else refusal(principal, "editor", f"{method} {path}")


def aws_problem(principal: Principal, operation: str) -> Forbidden | None:
    """The same rule for an AWS operation (``CreateTrainingJob``, ``PutObject``, ...)."""
    if principal.may("editor") or operation.startswith(AWS_READS):
        return None
    return refusal(principal, "editor", operation)


def refusal(principal: Principal, needed: Role, what: str) -> Forbidden:
    """A 403 that says who asked, what they hold, and what the call needs."""
    if principal.read_only:
        held = f"a read-only key of user {principal.name!r}"
        fix = "use a key that is not read-only"
    else:
        held = f"user {principal.name!r}, whose role is {principal.role}"
        fix = f"an admin can grant it: `naiad users update {principal.name} --role {needed}`"
    return Forbidden(f"{what} needs the {needed} role; this request comes from {held} ({fix}).")
