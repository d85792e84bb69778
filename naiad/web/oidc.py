"""Console sign-in with OpenID Connect (the authorization code flow with PKCE), through
authlib: ``/login/oidc`` sends the browser to the provider, ``/login/oidc/callback`` takes
the code back, checks the ID token (signature, issuer, audience, nonce, expiry), maps the
user's groups to a role (``oidc_config``), and starts a console session as for a password.

What the browser must carry between the two (state, nonce, PKCE verifier) rides in a short
signed cookie, SameSite=Lax, since the provider's redirect back is a cross-site navigation.
"""

import hashlib
import hmac
import secrets
import time
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.jose.errors import JoseError
from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from naiad.server.audit import note_actor
from naiad.server.deps import set_session_cookie
from naiad.store import users
from naiad.store.db import transaction
from naiad.web.console import login_page, start_session
from naiad.web.oidc_config import OidcConfig, user_name

STATE_COOKIE = "naiad_oidc"
STATE_TTL_S = 600
_WANTED_SCOPES = ("openid", "profile", "email", "groups")
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}  # issuer -> (when, metadata)

router = APIRouter(include_in_schema=False)


async def _metadata(config: OidcConfig) -> dict[str, Any]:
    """The provider's discovery document (and keys), read at most every five minutes."""
    cached = _discovered.get(config.issuer)
    if cached is not None and time.monotonic() - cached[0] < 300:
        return cached[1]
    async with httpx.AsyncClient(timeout=10) as http:
        meta = (await http.get(f"{config.issuer}/.well-known/openid-configuration")).json()
        meta["jwks"] = (await http.get(meta["jwks_uri"])).json()
    _discovered[config.issuer] = (time.monotonic(), meta)
    return meta


def _client(config: OidcConfig, request: Request) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        config.client_id,
        config.client_secret,
        redirect_uri=str(request.url_for("oidc_callback")),
        code_challenge_method="S256",
        timeout=10,
    )


def _signer(request: Request) -> bytes:
    key: bytes = request.app.state.naiad.key_key
    return hmac.new(key, b"naiad oidc state", hashlib.sha256).digest()


def _pack(request: Request, data: dict[str, Any]) -> str:
    """``data`` signed (a JWS, HS256) and good for ``STATE_TTL_S``."""
    claims = {**data, "exp": int(time.time()) + STATE_TTL_S}
    return jwt.encode({"alg": "HS256"}, claims, _signer(request)).decode()


def _unpack(request: Request, value: str | None) -> dict[str, Any] | None:
    """What ``_pack`` signed, while it is good; None for anything else."""
    try:
        claims = jwt.decode(value or "", _signer(request))
        claims.validate()
    except (JoseError, ValueError):
        return None
    return dict(claims)


def _refused(request: Request, message: str, status: int = 401) -> Response:
    response = login_page(request, message, status)
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return response


@router.get("/login/oidc")
async def start(request: Request) -> Response:
    config: OidcConfig = request.app.state.oidc
    try:
        meta = await _metadata(config)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        why = f"({type(exc).__name__}); try again, or sign in with a password."
        return _refused(
            request, f"The identity provider at {config.issuer} did not answer {why}", 503
        )
    supported = meta.get("scopes_supported") or _WANTED_SCOPES
    scope = " ".join(s for s in _WANTED_SCOPES if s == "openid" or s in supported)
    state, nonce, verifier = (
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
        generate_token(48),
    )
    async with _client(config, request) as client:
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"],
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            scope=scope,
        )
    response = RedirectResponse(url, status_code=303)
    packed = _pack(request, {"s": state, "n": nonce, "v": verifier})
    response.set_cookie(
        STATE_COOKIE,
        packed,
        max_age=STATE_TTL_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/login/oidc",
    )
    return response


@router.get("/login/oidc/callback", name="oidc_callback")
async def callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    config: OidcConfig = request.app.state.oidc
    if error:
        said = error_description or error
        return _refused(request, f"The identity provider did not sign you in: {said}.")
    saved = _unpack(request, request.cookies.get(STATE_COOKIE))
    if saved is None or not state or not code or not hmac.compare_digest(saved["s"], state):
        return _refused(request, "This sign-in expired or did not start here; sign in again.")
    try:
        meta = await _metadata(config)
        claims = await _claims(config, request, meta, code, saved)
    except (httpx.HTTPError, OAuth2Error, JoseError, ValueError, KeyError) as exc:
        return _refused(request, f"Signing in with {config.label} failed: {exc}.")
    role = config.role_for(claims)
    groups = claims.get(config.groups_claim) or []
    if role is None:
        held = ", ".join(map(str, groups)) or "none"
        message = (
            f"Your groups at {config.label} ({held}) give no role on this server; ask an "
            "admin to map one in NAIAD_OIDC_ROLES."
        )
        return _refused(request, message, 403)
    name = user_name(claims)
    if name is None:
        missing = "no preferred_username, email or sub"
        return _refused(request, f"{config.label} named no user ({missing}).")
    started = await run_in_threadpool(_session_for, request, name, role)
    if not started.startswith("naiad_"):
        return _refused(request, started, 403)
    note_actor(request.scope, f"user:{name}")
    # A page, not a redirect: the session cookie is SameSite=Strict, and a redirect chain
    # that began at the provider is cross-site, so the console's first load would lack it.
    page = HTMLResponse(
        '<!doctype html><meta http-equiv="refresh" content="0;url=/"><title>Signed in</title>'
        '<p>Signed in. <a href="/">Open the console</a>.</p>'
    )
    page.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return set_session_cookie(request, page, started)


async def _claims(
    config: OidcConfig, request: Request, meta: dict[str, Any], code: str, saved: dict[str, Any]
) -> dict[str, Any]:
    """The checked ID token's claims, with the userinfo endpoint's when the groups claim
    is not in the token."""
    async with _client(config, request) as client:
        token = await client.fetch_token(
            meta["token_endpoint"], code=code, code_verifier=saved["v"]
        )
        options = {
            "iss": {"essential": True, "value": meta["issuer"]},
            "aud": {"essential": True, "value": config.client_id},
            "nonce": {"essential": True, "value": saved["n"]},
        }
        keys = JsonWebKey.import_key_set(meta["jwks"])
        decoded = jwt.decode(token["id_token"], keys, claims_options=options)
        decoded.validate(leeway=60)
        claims = dict(decoded)
        if config.groups_claim not in claims and meta.get("userinfo_endpoint"):
            info = (await client.get(meta["userinfo_endpoint"])).json()
            if info.get("sub") == claims.get("sub"):
                claims = {**info, **claims}
    return claims


def _session_for(request: Request, name: str, role: str) -> str:
    """A console session for the provider's user (made or updated): the cookie's value, or
    why they may not sign in."""
    state = request.app.state.naiad
    with transaction(state.sessions) as session:
        found = users.sign_in_external(session, name, role)
        if isinstance(found, str):
            return found
        return start_session(session, state.key_key, found.name)
