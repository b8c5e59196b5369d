"""Settings of the inbound channels: the credentials each service gave, and where leadflow reaches it.

A plain model: the application's Settings nests it as ``channels``, so each field is read from an environment
variable named ``LEADFLOW_CHANNELS__<FIELD>`` (``LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN``). A channel is on when its
credentials are set; a half-configured channel stops leadflow at start with a message naming the variable to set.
This module never reads the environment itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ENV_PREFIX = "LEADFLOW_CHANNELS__"


def env_name(field: str) -> str:
    """The environment variable that sets one field, for messages that tell people what to do."""
    return ENV_PREFIX + field.upper()


class ChannelsConfig(BaseModel):
    """Credentials and addresses of the channels leads come in through."""

    model_config = ConfigDict(extra="forbid")

    # Telegram: a bot the clients write to (it may be the same bot that notifies managers).
    telegram_bot_token: SecretStr | None = Field(None, description="The bot's token from @BotFather; enables Telegram.")
    telegram_webhook_secret: SecretStr | None = Field(
        None, description="Checked against X-Telegram-Bot-Api-Secret-Token on every webhook call (webhook mode)."
    )
    telegram_mode: Literal["webhook", "polling"] = Field(
        "webhook",
        description="webhook: Telegram calls leadflow; polling: leadflow asks (getUpdates), no public address.",
    )
    telegram_api_base: str = Field("https://api.telegram.org", description="Bot API address (a local Bot API too).")

    # Meta: WhatsApp Cloud API and Lead Ads (Facebook and Instagram forms) share the app's secret and verify token.
    meta_app_secret: SecretStr | None = Field(None, description="The Meta app's secret: X-Hub-Signature-256.")
    meta_verify_token: SecretStr | None = Field(None, description="What Meta echoes in the hub.verify_token handshake.")
    whatsapp_access_token: SecretStr | None = Field(None, description="Enables WhatsApp (Cloud API access token).")
    whatsapp_phone_number_id: str | None = Field(None, description="The business number's id replies are sent from.")
    meta_page_access_token: SecretStr | None = Field(
        None, description="Enables Lead Ads: a page token that may read the page's leads from the Graph API."
    )
    graph_api_base: str = Field("https://graph.facebook.com/v21.0", description="Graph API address and version.")

    # Viber: a bot account.
    viber_auth_token: SecretStr | None = Field(None, description="The Viber bot's token; enables Viber.")
    viber_api_base: str = Field("https://chatapi.viber.com/pa", description="Viber REST API address.")
    viber_sender_name: str = Field("leadflow", max_length=28, description="The name replies are sent under.")

    # E-mail: an SMTP listener for mail forwarded or delivered to leadflow, and a mailbox polled over IMAP.
    smtp_listen_port: int | None = Field(None, ge=1, le=65535, description="Listen for inbound mail on this port.")
    smtp_listen_host: str = Field("127.0.0.1", description="Where the inbound SMTP listener binds.")
    imap_host: str | None = Field(None, description="A mailbox to poll for leads; enables IMAP.")
    imap_port: int = Field(993, ge=1, le=65535)
    imap_ssl: bool = Field(
        True, description="Implicit TLS (port 993); false: plain, upgraded with STARTTLS if offered."
    )
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_mailbox: str = Field("INBOX", description="The folder leads arrive in.")
    imap_poll_seconds: float = Field(30, gt=0, le=3600, description="Between looks when the server has no IDLE.")
    email_tracking: bool = Field(
        True, description="E-mail replies go out with tracked links and an open pixel; false: as written."
    )

    # Calls: call-tracking services post each call.
    calls_secret: SecretStr | None = Field(
        None, description="Shared with the call-tracking service: the token in its webhook address; enables calls."
    )

    @field_validator(
        "telegram_bot_token", "telegram_webhook_secret", "meta_app_secret", "meta_verify_token",
        "whatsapp_access_token", "whatsapp_phone_number_id", "meta_page_access_token", "viber_auth_token",
        "imap_host", "imap_username", "imap_password", "calls_secret", mode="before",
    )  # fmt: skip
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # `LEADFLOW_CHANNELS__IMAP_HOST=` in a .env file means "not set".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_api_base", "graph_api_base", "viber_api_base")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> ChannelsConfig:
        # Fail at start, naming the variable, rather than refusing every call of the service later.
        def need(field: str, because: str) -> None:
            raise ValueError(f"{because}: set {env_name(field)}")

        if self.telegram_bot_token and self.telegram_mode == "webhook" and not self.telegram_webhook_secret:
            need(
                "telegram_webhook_secret",
                "Telegram in webhook mode needs a secret to tell Telegram's calls from forged ones",
            )
        if (self.whatsapp_access_token or self.meta_page_access_token) and not self.meta_app_secret:
            need("meta_app_secret", "WhatsApp and Lead Ads webhooks are signed with the Meta app's secret")
        if (self.whatsapp_access_token or self.meta_page_access_token) and not self.meta_verify_token:
            need("meta_verify_token", "Meta's webhook handshake checks a verify token")
        if self.whatsapp_access_token and not self.whatsapp_phone_number_id:
            need("whatsapp_phone_number_id", "WhatsApp replies are sent from a business number")
        if self.imap_host and not (self.imap_username and self.imap_password):
            need("imap_username" if not self.imap_username else "imap_password", "the IMAP mailbox needs a login")
        return self

    @property
    def enabled(self) -> dict[str, bool]:
        """Which channels are on, by name."""
        return {
            "telegram": self.telegram_bot_token is not None,
            "whatsapp": self.whatsapp_access_token is not None,
            "facebook_leads": self.meta_page_access_token is not None,
            "viber": self.viber_auth_token is not None,
            "email": self.smtp_listen_port is not None or self.imap_host is not None,
            "call": self.calls_secret is not None,
        }

    def secrets(self) -> frozenset[str]:
        """Every credential here, to be masked wherever text leaves the process (logs, stored errors, answers)."""
        found: set[str] = set()
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                found.add(secret)
                if name == "telegram_bot_token":
                    found.add(secret.partition(":")[2])  # the part after the bot's id is the secret one
        return frozenset(s for s in found if len(s) >= 4)
