"""The one place that reads environment variables."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leadflow.channels.config import NotifyConfig
from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.services.accounts import SessionTimes, Throttle

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
    channels: ChannelsConfig = Field(
        default_factory=ChannelsConfig, description="LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN and so on."
    )
    worker_poll_seconds: float = Field(0.25, gt=0, le=5, description="Longest sleep of the worker between looks.")
    access_log: bool = Field(
        False, description="Log every HTTP request (the reverse proxy in front usually does; costs ~0.15 ms each)."
    )

    # Accounts and sign-in
    session_idle_minutes: int = Field(240, ge=5, le=7 * 24 * 60, description="A session ends after this long unused.")
    session_hours: int = Field(12, ge=1, le=30 * 24, description="A session ends this long after sign-in, used or not.")
    login_failures_per_account: int = Field(5, ge=1, description="Failed sign-ins that lock an account for a while.")
    login_failures_per_address: int = Field(20, ge=1, description="Failed sign-ins that lock a client address.")
    login_lock_minutes: int = Field(15, ge=1, description="How long failures count, and a lock lasts.")
    honeypot_field: str = Field(
        "_gotcha",
        description="A form field people never see; a request that fills it is a bot's, kept as junk.",
    )

    # HTTP hardening
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the server answers for, beside localhost, 127.0.0.1, [::1], base_url's host and a "
        "named bind host; others get 400. '*' answers any.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (https://app.example.com) whose pages may call the API from a browser; none by default.",
    )
    body_timeout_seconds: float = Field(10, gt=0, le=600, description="A body not in whole by then is refused, 408.")
    limit_concurrency: int = Field(
        1000, ge=1, description="Connections one serving process holds at once; requests past them get 503."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_allowed_hosts(cls, value: object) -> object:
        return cls._split_hosts(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        origins = cls._split_hosts(value)
        if not isinstance(origins, list):
            return origins
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/?#@\s]+", origin.rstrip("/")):
                raise ValueError(
                    f"'{origin}' is not an origin: write it as scheme and host, like https://shop.example.com"
                )
        return [origin.rstrip("/") for origin in origins]

    @field_validator("form_redirect_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [h.strip().lower() for h in value.split(",") if h.strip()] if isinstance(value, str) else value

    @property
    def throttle(self) -> Throttle:
        window = timedelta(minutes=self.login_lock_minutes)
        return Throttle(window, self.login_failures_per_account, self.login_failures_per_address)

    @property
    def session_times(self) -> SessionTimes:
        return SessionTimes(timedelta(minutes=self.session_idle_minutes), timedelta(hours=self.session_hours))

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
