"""What console sign-in with OpenID Connect is set to (``NAIAD_OIDC_*``), and the rules that
turn a provider's answer into a Naiad user: the name, and the role its groups give.

Kept apart from ``oidc`` (the routes), which needs authlib: this part is read on every
start, with or without a provider.
"""

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from naiad.core.principals import ROLES, Role
from naiad.settings import Settings


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    groups_claim: str
    roles: dict[str, Role]  # a group claim value -> the role it gives
    default_role: Role | None  # for a member of no mapped group; None refuses them

    @property
    def label(self) -> str:
        """What the sign-in button names: the provider's host."""
        return urlsplit(self.issuer).hostname or self.issuer

    @classmethod
    def of(cls, settings: Settings) -> "OidcConfig | None":
        """The configuration, None when no provider is set; a clear error when it is set
        only in part, so a server never starts with a sign-in that cannot work."""
        if not settings.oidc_issuer:
            return None
        missing = [
            name
            for name, value in (
                ("NAIAD_OIDC_CLIENT_ID", settings.oidc_client_id),
                ("NAIAD_OIDC_CLIENT_SECRET", settings.oidc_client_secret),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"NAIAD_OIDC_ISSUER is set but {' and '.join(missing)} is not.")
        if not settings.oidc_roles and settings.oidc_default_role is None:
            raise ValueError(
                "NAIAD_OIDC_ISSUER is set but neither NAIAD_OIDC_ROLES (e.g. "
                "'ml-admins=admin,ml-team=editor') nor NAIAD_OIDC_DEFAULT_ROLE is: nobody "
                "could sign in."
            )
        assert settings.oidc_client_id and settings.oidc_client_secret
        return cls(
            issuer=settings.oidc_issuer.rstrip("/"),
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            groups_claim=settings.oidc_groups_claim,
            roles=parse_roles(settings.oidc_roles),
            default_role=settings.oidc_default_role,
        )

    def role_for(self, claims: dict[str, Any]) -> Role | None:
        """The strongest role any of the user's groups gives (the default when none does)."""
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        given = [self.roles[g] for g in groups if isinstance(g, str) and g in self.roles]
        if not given:
            return self.default_role
        return max(given, key=ROLES.index)


def parse_roles(text: str) -> dict[str, Role]:
    """``"ml-admins=admin, ml-team=editor"`` -> ``{"ml-admins": "admin", ...}``."""
    roles: dict[str, Role] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        group, sep, role = part.rpartition("=")
        role = role.strip()
        if not sep or not group.strip() or role not in ROLES:
            raise ValueError(
                f"NAIAD_OIDC_ROLES: {part!r} is not GROUP=ROLE with a role of "
                f"{', '.join(ROLES)} (e.g. 'ml-admins=admin,ml-team=editor')."
            )
        roles[group.strip()] = role
    return roles


def user_name(claims: dict[str, Any]) -> str | None:
    """A Naiad user name from the provider's claims: preferred_username, else the e-mail's
    local part, else the subject; lowercased, with what a name cannot hold made '-'."""
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            if claim == "email":
                value = value.partition("@")[0]
            name = re.sub(r"[^a-z0-9_.\-]+", "-", value.strip().lower()).strip("-._")
            name = re.sub(r"\.{2,}", ".", name)[:63]
            if name:
                return name
    return None
