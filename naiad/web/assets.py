"""Serving the console's files: our static folder, and plotly.js from the installed ``plotly``
package (its ``package_data/plotly.min.js``), so charts work offline with no Node build.

Both answer only a request that carries the session cookie, except the few files the login
page itself needs. Responses revalidate (``no-cache`` + ETag), so an upgrade shows at once
and an unchanged file costs a 304.
"""

import gzip
import hashlib
import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from naiad.server.errors import error_response

STATIC = Path(__file__).parent / "static"
PUBLIC = frozenset({"css/console.css", "js/login.js", "img/naiad.svg"})
PLOTLY_MISSING = (
    "Charts need plotly.js, which ships inside the 'plotly' Python package; "
    "install it on the server (pip install plotly) and reload."
)

# plotly.js compiles WebGL shader code at run time (regl), hence 'unsafe-eval'; nothing is
# loaded from anywhere but this server.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
# "same-origin", not "no-referrer": under no-referrer a browser sends "Origin: null" with a
# form's POST (the Log out button), and the server refuses cookie writes it cannot place.
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}


def unauthorized() -> Response:
    return error_response(
        "unauthorized", "Log in to the console first: open / and enter the server's token.", 401
    )


class ConsoleFiles(StaticFiles):
    """The static folder, behind the session cookie (see ``console.signed_in``)."""

    def __init__(self, signed_in: Callable[[Request], bool]) -> None:
        super().__init__(directory=STATIC)
        self._signed_in = signed_in

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in PUBLIC and not self._signed_in(Request(scope)):
            return unauthorized()
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


@cache
def plotly_path() -> Path | None:
    """plotly.min.js inside the installed plotly package, found without importing plotly."""
    spec = importlib.util.find_spec("plotly")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


@cache
def _plotly_bytes(path: Path, mtime: float) -> tuple[bytes, bytes, str]:
    """(plain, gzipped, etag), read once per file version: 4.6 MB goes out as about 1.4 MB."""
    plain = path.read_bytes()
    etag = '"' + hashlib.sha256(plain).hexdigest()[:32] + '"'
    return plain, gzip.compress(plain, compresslevel=6, mtime=0), etag


def plotly_response(request: Request) -> Response:
    path = plotly_path()
    if path is None:
        return Response(
            f"console.error({PLOTLY_MISSING!r});", status_code=404, media_type="text/javascript"
        )
    plain, packed, etag = _plotly_bytes(path, path.stat().st_mtime)
    headers = {**SECURITY_HEADERS, "etag": etag, "vary": "accept-encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(packed, media_type="text/javascript", headers=headers)
    return Response(plain, media_type="text/javascript", headers=headers)
