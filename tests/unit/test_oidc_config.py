"""How a provider's answer becomes a Naiad user: the role its groups give, and the name."""

import pytest

from naiad.settings import Settings
from naiad.web.oidc_config import OidcConfig, parse_roles, user_name


def _config(**extra: object) -> OidcConfig:
    settings = Settings(
        oidc_issuer="https://id.example.com/",
        oidc_client_id="naiad",
        oidc_client_secret="s",
        **extra,  # type: ignore[arg-type]
    )
    config = OidcConfig.of(settings)
    assert config is not None
    return config


def test_the_strongest_mapped_group_wins_and_unmapped_groups_give_nothing() -> None:
    config = _config(oidc_roles="ml-team=editor, ml-admins=admin, all=viewer")
    assert config.role_for({"groups": ["all", "ml-admins", "ml-team"]}) == "admin"
    assert config.role_for({"groups": ["all"]}) == "viewer"
    assert config.role_for({"groups": "ml-team"}) == "editor"  # a single value, not a list
    assert config.role_for({"groups": ["strangers"]}) is None
    assert config.role_for({}) is None
    assert config.label == "id.example.com" and config.issuer == "https://id.example.com"


def test_a_default_role_admits_members_of_no_mapped_group() -> None:
    config = _config(oidc_roles="ml-admins=admin", oidc_default_role="viewer")
    assert config.role_for({"groups": ["strangers"]}) == "viewer"
    assert _config(oidc_groups_claim="roles", oidc_roles="x=editor").role_for({"roles": ["x"]})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"oidc_client_secret": None}, "NAIAD_OIDC_CLIENT_SECRET is not"),
        ({"oidc_roles": ""}, "nobody could sign in"),
        ({"oidc_roles": "ml-admins=root"}, "not GROUP=ROLE"),
    ],
)
def test_a_half_configured_provider_stops_the_start(setting: dict, message: str) -> None:
    base = {"oidc_issuer": "https://id", "oidc_client_id": "n", "oidc_client_secret": "s"}
    with pytest.raises(ValueError, match=message):
        OidcConfig.of(Settings(**{**base, "oidc_roles": "a=viewer", **setting}))


def test_no_issuer_means_no_oidc() -> None:
    assert OidcConfig.of(Settings()) is None
    assert parse_roles("") == {}


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"preferred_username": "Ana.Lopez", "sub": "x"}, "ana.lopez"),
        ({"email": "Bo Chen@corp.example", "sub": "x"}, "bo-chen"),
        ({"sub": "auth0|12345"}, "auth0-12345"),
        ({"preferred_username": "  ", "sub": "--"}, None),
    ],
)
def test_user_names_follow_naiads_rules(claims: dict, name: str | None) -> None:
    assert user_name(claims) == name
