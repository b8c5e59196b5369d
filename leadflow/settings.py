"""The one place that reads environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leadflow.channels.config import NotifyConfig

EXAMPLE_RULES = Path(__file__).parent / "examples" / "rules.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADFLOW_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    database_url: str = Field("sqlite:///leadflow.db", description="SQLite file (default) or postgresql+psycopg://")
    rules: Path = Field(EXAMPLE_RULES, description="The rules file: teams, managers, routing, junk.")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="NORMAL survives a process crash; FULL also survives power loss, at a lower write rate.",
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Larger lead posts are refused with 413.")
    base_url: str | None = Field(None, description="Public address used in links to leads; default http://host:port.")
    form_redirect_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts a site form's `_redirect` may send visitors to, beside the site the form was posted from.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="LEADFLOW_NOTIFY__SMTP_HOST and so on.")
    worker_poll_seconds: float = Field(0.25, gt=0, le=5, description="Longest sleep of the worker between looks.")
    access_log: bool = Field(
        False, description="Log every HTTP request (the reverse proxy in front usually does; costs ~0.15 ms each)."
    )

    @field_validator("form_redirect_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [h.strip().lower() for h in value.split(",") if h.strip()] if isinstance(value, str) else value

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
