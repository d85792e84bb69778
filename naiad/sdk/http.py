"""HTTP transport: one httpx client, errors turned back into Naiad's error classes."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from naiad.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NaiadError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnreachable,
    TooManyRequests,
    Unauthorized,
)

# The server's error codes (its body's "error"), each to the class a caller catches.
_BY_CODE: dict[str, type[NaiadError]] = {
    **{
        error.code: error
        for error in (
            Conflict,
            Forbidden,
            InvalidInput,
            NotFound,
            PayloadTooLarge,
            TooManyRequests,
            Unauthorized,
        )
    },
    "unsupported_media_type": InvalidInput,
    "insufficient_storage": ServerError,
    "internal_error": ServerError,
    "home_lost": ServerError,
    "unavailable": ServerError,
    "database_unavailable": ServerError,
}
# For an answer without a known code (a proxy's page, a generic HTTP error).
_BY_STATUS: dict[int, type[NaiadError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: TooManyRequests,
}


def raise_for(response: httpx.Response) -> None:
    """Raise the error class the body's ``code`` names (its HTTP status when it names none),
    with the server's sentence; the status stays on the error as ``status_code``."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = body.get("error"), body["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = None, f"HTTP {response.status_code}: {response.text[:200]}"
    error = _BY_CODE.get(code) if isinstance(code, str) else None
    if error is None:
        error = _BY_STATUS.get(response.status_code)
    if error is None:
        error = ServerError if response.status_code >= 500 else InvalidInput
    if error is Unauthorized:
        server = f"{response.url.scheme}://{response.url.netloc.decode()}"
        message += (
            f" If {server} is not your server (it may keep another Naiad home), "
            "`naiad server status` shows this home's, or set NAIAD_URL and NAIAD_TOKEN."
        )
    exc = error(message)
    exc.status_code = response.status_code
    raise exc


class Transport:
    """Thin wrapper so every call shares auth, base URL, timeouts and error mapping."""

    def __init__(
        self, url: str, token: str | None, timeout: float = 30.0, project: str | None = None
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if project:
            headers["x-naiad-project"] = project
        self.url = url
        self.http = httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        content: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Send, raise on errors, return the decoded JSON body (None for 204)."""
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["content"] = orjson.dumps(json)
            kwargs["headers"] = {"content-type": "application/json"}
        elif content is not None:
            kwargs["content"] = content
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            try:
                response = self.http.request(method, path, **kwargs)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if method not in ("GET", "HEAD"):
                    raise
                # A pooled connection the server had closed (after an early refusal, or a
                # restart): a read is sent again once, on a new connection.
                response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"Cannot reach the Naiad server at {self.url} ({exc.__class__.__name__}). "
                "Start one with `naiad server`, or set NAIAD_URL to where it runs."
            ) from None
        raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return orjson.loads(response.content)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response; connection failures surface as ServerUnreachable."""
        try:
            with self.http.stream(method, path, **kwargs) as response:
                yield response
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"Lost the Naiad server at {self.url} ({exc.__class__.__name__}); retry once "
                "it is back."
            ) from None

    def close(self) -> None:
        self.http.close()
