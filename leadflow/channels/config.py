"""Settings for outgoing notifications: where each channel sends and how hard delivery tries.

A plain model: the application's Settings nests it as ``notify``, so every field is read from an environment
variable named ``LEADFLOW_NOTIFY__<FIELD>`` (for example ``LEADFLOW_NOTIFY__SMTP_HOST``). This module never reads
the environment itself.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

ENV_PREFIX = "LEADFLOW_NOTIFY__"


def env_name(field: str) -> str:
    """The environment variable that sets one field, for error messages that tell people what to do."""
    return ENV_PREFIX + field.upper()


class NotifyConfig(BaseModel):
    """Credentials and addresses of the notification channels, and the retry policy they share."""

    model_config = ConfigDict(extra="forbid")

    telegram_bot_token: SecretStr | None = Field(None, description="Bot token from @BotFather; enables Telegram.")
    telegram_api_base: str = Field("https://api.telegram.org", description="Bot API address (a local Bot API too).")
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming-webhook URL (it is a credential); enables Slack."
    )
    # NoDecode: the settings loader hands the raw string to _split_urls, so "a,b" works as well as '["a","b"]'.
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Receivers of signed JSON webhooks: comma-separated or a JSON list."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret for the X-Leadflow-Signature HMAC; enables webhooks."
    )
    smtp_host: str | None = Field(None, description="SMTP server; with smtp_from it enables e-mail.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = Field(None, description="Log in when set.")
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(True, description="Upgrade the connection with STARTTLS (ignored with smtp_ssl).")
    smtp_ssl: bool = Field(False, description="Implicit TLS from the first byte (usually port 465).")
    smtp_from: str | None = Field(None, description="The From address, e.g. 'Leadflow <leads@example.com>'.")
    timeout_seconds: float = Field(10, gt=0, le=300, description="Per network operation of one delivery.")
    max_attempts: int = Field(6, ge=1, le=100, description="Deliveries tried before a message is dead-lettered.")
    backoff_base_seconds: float = Field(5, gt=0, description="Wait after the first failure; doubles each time.")
    backoff_max_seconds: float = Field(3600, gt=0, description="Longest wait between two attempts.")

    @field_validator(
        "telegram_bot_token", "slack_webhook_url", "webhook_secret", "smtp_host", "smtp_username", "smtp_password",
        "smtp_from", mode="before",
    )  # fmt: skip
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # `LEADFLOW_NOTIFY__SMTP_HOST=` in a .env file means "not set", not "a host with an empty name".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotifyConfig:
        # Fail at start-up rather than dead-lettering every message hours later.
        if self.smtp_host and not self.smtp_from:
            raise ValueError(
                f"smtp_host is set but smtp_from is not: set {env_name('smtp_from')} to the sender address"
            )
        if self.smtp_password and not self.smtp_username:
            raise ValueError(f"smtp_password is set without smtp_username: set {env_name('smtp_username')}")
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError(
                f"webhook_urls are set but webhook_secret is not: receivers could not tell leadflow's calls from "
                f"forged ones; set {env_name('webhook_secret')} to a long random string"
            )
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must not be less than backoff_base_seconds")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.smtp_from)
