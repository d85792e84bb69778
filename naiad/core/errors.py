"""Errors every layer raises; the server maps each to one HTTP status.

Messages are sentences a person can act on: what is wrong and what to do.
"""


class NaiadError(Exception):
    """Base of every error Naiad raises on purpose."""

    status_code = 400
    code = "bad_request"

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInput(NaiadError):
    """The request is malformed or violates a rule; fix the input and retry."""

    status_code = 400
    code = "invalid_input"


class NotFound(NaiadError):
    """The named resource does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(NaiadError):
    """The request clashes with what is stored (a duplicate name, a finished run)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(NaiadError):
    """The request is bigger than the server accepts; split it."""

    status_code = 413
    code = "payload_too_large"


class ServerError(NaiadError):
    """The server failed (5xx); the request may be retried."""

    status_code = 502
    code = "server_error"


class ServerUnreachable(NaiadError):
    """No server answered at the URL; the request may be retried once one does."""

    status_code = 503
    code = "unreachable"


class Unavailable(NaiadError):
    """Something the server needs (its artifact store) cannot be reached right now; nothing
    was changed, and the same request may be sent again."""

    status_code = 503
    code = "unavailable"


class Unauthorized(NaiadError):
    """The request carries no valid token."""

    status_code = 401
    code = "unauthorized"


class Forbidden(NaiadError):
    """The request is authenticated but may not do this (a cookie write from another site)."""

    status_code = 403
    code = "forbidden"


class TooManyRequests(NaiadError):
    """Too many attempts in a short time (failed sign-ins); wait, then try again."""

    status_code = 429
    code = "too_many_requests"
