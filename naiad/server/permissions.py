"""What each role may do, judged from the method and path alone (so a refusal never reads
a body), with a refusal that names the role or permission missing.

- ``viewer``: reads everything, searches, and manages their own read-only keys.
- ``editor``: also creates and changes runs, jobs, models, endpoints, tuning jobs,
  connections; deletes what they created (checked against the row by ``deps``).
- ``admin``: also users, every key, the audit log, maintenance, connections' secrets,
  managed notebook servers (whose kernels act as the admin), and deleting anything.

Roles are held per project (``core.principals``). This first check asks for an editor's
role in any project, and ``deps.require_token`` then for the role in the project of what
the call reaches; what belongs to no project (users, the audit log, ...) needs the admin
role in ``default``, which administers the server. A read-only key acts as a viewer
whatever its user's role. The same roles govern the AWS-compatible APIs, which work in
``default``, where reads are the operations named ``Describe*``, ``List*``, ...
"""

import re

from naiad.core.errors import Forbidden
from naiad.core.principals import DEFAULT_PROJECT, Principal, Role

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
    if principal.server_admin or not path.startswith(_GUARDED):
        return None  # a server admin; or the console's own pages and sign-in/out
    read = method in _READS
    if path == "/api/v1/projects" and not read:
        return refusal(principal, "admin", f"{method} {path}")
    if _ADMIN_ONLY.fullmatch(path) and not (read and _NOTEBOOK_READS.fullmatch(path)):
        return refusal(principal, "admin", f"{method} {path}")
    if read or (_VIEWER_WRITES.fullmatch(path) and method in ("POST", "PATCH", "DELETE")):
        return None
    return None if principal.may("editor") else refusal(principal, "editor", f"{method} {path}")


def aws_problem(principal: Principal, operation: str) -> Forbidden | None:
    """The same rule for an AWS operation (``CreateTrainingJob``, ``PutObject``, ...), all
    of which work in the default project."""
    if principal.may_in(DEFAULT_PROJECT, "editor") or operation.startswith(AWS_READS):
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
