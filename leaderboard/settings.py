"""Settings of the site (pydantic-settings, environment prefix ``SPEEDRUN_``).

Nothing is read at import: call ``get_settings()`` (or build ``Settings(...)`` in tests).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract import speedrun_home


def default_home() -> Path:
    """The data directory: ``$SPEEDRUN_HOME`` when set, else the current directory."""
    return speedrun_home() or Path.cwd().resolve()


class Settings(BaseSettings):
    """Everything the site needs to run, validated; each field can be set as ``SPEEDRUN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SPEEDRUN_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="data directory (DB file, artifacts, secret key)")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite file <home>/speedrun.db")
    artifacts_dir: Path | None = Field(
        default=None, description="content-addressed artifact store; default <home>/artifacts"
    )
    base_url: str = Field(default="http://127.0.0.1:8000", description="absolute URL of the site, for links")
    secret_key: str = Field(default="", description="signs cookies and CSRF tokens; generated and kept in <home>")
    migrate_on_start: bool = True
    seed_on_start: bool = True
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="JSON request bodies")
    max_artifact_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="uploaded artifacts")
    lease_seconds: int = Field(default=600, ge=1, le=86_400, description="a worker lease lasts this long")
    max_job_attempts: int = Field(default=3, ge=1, le=100, description="leases of one job before it fails")
    submit_rate_per_minute: int = Field(default=20, ge=1, description="submissions per token per minute")
    max_active_leases_per_worker: int | None = Field(
        default=1, ge=1, le=1000, description="jobs one worker account may hold at once; None: no limit"
    )
    pause_worker_after_abandoned: int = Field(
        default=3, ge=1, le=1000, description="leases a worker may abandon in a row before it is paused"
    )
    max_job_seconds: int = Field(
        default=24 * 3600, ge=60, le=30 * 86_400, description="longest lease of a job when its track sets none"
    )
    max_artifacts_per_job: int = Field(default=64, ge=1, le=10_000, description="uploads one job may make")
    max_job_artifact_bytes: int = Field(
        default=1024**3, ge=1024, description="bytes one job may upload in all (distinct names)"
    )
    session_ttl_seconds: int = Field(default=30 * 86_400, ge=60, description="a web sign-in lasts this long")
    allow_local_git_urls: bool = Field(
        default=False, description="accept file:// trainer URLs (tests and single-machine setups only)"
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="PostgreSQL connections each site process keeps at most (processes x (this + 2) must stay "
        "below the server's max_connections); SQLite keeps 40",
    )
    cache_ttl_seconds: float = Field(default=5.0, ge=0, description="read cache entries live this long")
    account_url: str = Field(
        default="",
        max_length=500,
        description="where a visitor asks for a submitter account (https://... or mailto:...); shown on /submit",
    )
    account_contact: str = Field(
        default="", max_length=500, description="how to ask for an account, in words (shown beside account_url)"
    )
    sql_echo: bool = False

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url: must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://", "mailto:")):
            raise ValueError("account_url: must start with https://, http:// or mailto:")
        return v

    @property
    def https(self) -> bool:
        """The site is public over HTTPS: cookies are ``Secure`` and HSTS is sent, whatever a proxy says."""
        return self.base_url.startswith("https://")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'speedrun.db'}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir if self.artifacts_dir is not None else self.home / "artifacts"

    def resolved_secret_key(self) -> str:
        """The given secret key, else one generated once and kept in ``<home>/secret_key`` (mode 0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.home / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        try:
            os.link(tmp, path)  # first writer wins; a concurrent starter reads the winner's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text().strip()


def get_settings() -> Settings:
    """Settings from the environment (``SPEEDRUN_*``), with the secret key resolved."""
    settings = Settings()
    return settings.model_copy(update={"secret_key": settings.resolved_secret_key()})
