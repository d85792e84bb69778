"""One settings object: ``NAIAD_*`` variables, then ``$NAIAD_HOME/config.toml``, then defaults.

Built once by the entry point and passed in; nothing reads it at import time.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from naiad.core.home import HomeLayout, default_home

DEFAULT_PORT = 8765


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAIAD_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None  # default: sqlite file under home
    artifact_uri: str | None = None  # default: file:// under home
    s3_endpoint_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    auth: bool = True
    executor: Literal["local", "ray"] = "local"
    # the cluster NAIAD_EXECUTOR=ray runs jobs on: auto, ray://host:10001, or host:port
    ray_address: str = "auto"
    warm_start: bool = True  # keep a standby supervisor with torch imported (faster starts)
    max_batch_points: int = 200_000
    max_request_bytes: int = 64 * 1024 * 1024
    max_artifact_bytes: int = 5 * 1024**3
    endpoint_history_days: int = Field(default=14, ge=1)  # saved minutes of traffic
    job_retention_days: float = Field(default=7, ge=0)  # then finished jobs' work dirs are cleared
    # local jobs' processes under bubblewrap, the home out of their reach (docs/security.md):
    # auto, users' jobs where bwrap is installed; on, every job (bwrap required); off, none
    job_sandbox: Literal["auto", "on", "off"] = "auto"
    # an elastic job's lost host is started again after this, while the job has room for it
    elastic_rejoin_s: float = Field(default=30, ge=0)
    # replicas and notebook servers left without a server end after this (managed.orphans)
    orphan_grace_s: float = Field(default=600, ge=0)
    # SageMaker TrainingImage substrings -> framework, before the built-in table (JSON in env)
    sagemaker_images: dict[str, str] = Field(default_factory=dict)
    # Console sign-in with OpenID Connect (docs/security.md): the provider, this client, and
    # which group claim values give which role ("ml-admins=admin,ml-team=editor").
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_groups_claim: str = "groups"
    oidc_roles: str = ""
    oidc_default_role: Literal["viewer", "editor", "admin"] | None = None  # no group matched

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = HomeLayout(default_home()).config_file
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config)
        return init_settings, env_settings, toml

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def layout(self) -> HomeLayout:
        """Where everything under the home is."""
        return HomeLayout(self.home)

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL, with PostgreSQL routed to psycopg 3."""
        url = self.database_url or f"sqlite:///{self.layout.database}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def artifacts_root(self) -> str:
        return self.artifact_uri or self.layout.artifacts.as_uri()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
