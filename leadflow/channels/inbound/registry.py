"""The inbound channels leadflow has, in one place: whether a reply can go out through one, the senders that carry
replies (the outbox's `reply` channel), and the loops that fetch from services that are asked rather than calling
(Telegram's getUpdates, an IMAP mailbox). Each channel's module adds itself here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from leadflow.channels.config import NotifyConfig
from leadflow.channels.config import env_name as notify_env
from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.email import EmailReplier
from leadflow.channels.inbound.email_imap import imap_poller
from leadflow.channels.inbound.email_smtp import smtp_listener
from leadflow.channels.inbound.lead_ads import lead_ads_poller
from leadflow.channels.inbound.ports import Poller, PollerServices, Replier
from leadflow.channels.inbound.telegram import TelegramReplier, telegram_poller
from leadflow.channels.inbound.viber import ViberReplier
from leadflow.channels.inbound.whatsapp import WhatsAppReplier
from leadflow.channels.senders import DeliveryError
from leadflow.store.outbox import OutboxMessage

# What each channel needs set before a reply can go out through it.
_REPLY_NEEDS: dict[str, Callable[[ChannelsConfig, NotifyConfig], str | None]] = {
    "telegram": lambda c, n: None if c.telegram_bot_token else env_name("telegram_bot_token"),
    "whatsapp": lambda c, n: None if c.whatsapp_access_token else env_name("whatsapp_access_token"),
    "viber": lambda c, n: None if c.viber_auth_token else env_name("viber_auth_token"),
    "email": lambda c, n: None if n.email_enabled else f"{notify_env('smtp_host')} and {notify_env('smtp_from')}",
}


def reply_problem(channels: ChannelsConfig, notify: NotifyConfig, channel: str) -> str | None:
    """Why a reply cannot go out through `channel` now (None: it can)."""
    need = _REPLY_NEEDS.get(channel)
    if need is None:
        return f"leadflow cannot answer through {channel}: answer the client in another channel"
    missing = need(channels, notify)
    return f"{channel} is not set up for replies: set {missing}" if missing else None


def repliers_from_config(channels: ChannelsConfig, notify: NotifyConfig) -> dict[str, Replier]:
    """A replier for every channel that is set up."""
    found: dict[str, Replier] = {}
    if channels.telegram_bot_token is not None:
        found["telegram"] = TelegramReplier(channels)
    if channels.whatsapp_access_token is not None:
        found["whatsapp"] = WhatsAppReplier(channels)
    if notify.email_enabled:  # replies by e-mail go through the notification SMTP server
        found["email"] = EmailReplier(notify)
    if channels.viber_auth_token is not None:
        found["viber"] = ViberReplier(channels)
    return found


def pollers_from_config(channels: ChannelsConfig, services: PollerServices) -> list[Poller]:
    """The loops the worker runs for channels that are asked rather than calling."""
    found: list[Poller] = []
    if channels.telegram_bot_token is not None and channels.telegram_mode == "polling":
        found.append(telegram_poller(channels, services))
    if channels.meta_page_access_token is not None:  # Lead Ads: the forms whose answers are still to be fetched
        found.append(lead_ads_poller(channels, services))
    if channels.smtp_listen_port is not None:
        found.append(smtp_listener(channels, services))
    if channels.imap_host is not None:
        found.append(imap_poller(channels, services))
    return found


class ReplySender:
    """The outbox's sender for replies to clients: each message goes through the service its client wrote from."""

    def __init__(self, repliers: Mapping[str, Replier]) -> None:
        self.repliers = dict(repliers)

    def send(self, message: OutboxMessage) -> str | None:
        channel = str(message.payload.get("channel", ""))
        replier = self.repliers.get(channel)
        if replier is None:
            raise DeliveryError(f"{channel or 'the channel'} is not set up for replies on this worker", retryable=False)
        # Delivery masks the channels' credentials in what it keeps of a failure (services.delivery, `secrets`).
        return replier.send(str(message.payload.get("address", "")), message.body, message.subject, message.payload)

    def close(self) -> None:
        for replier in self.repliers.values():
            replier.close()
