"""`leadflow channels ...`: the inbound channels: which are set up, their last event, refused calls and last error;
and the one-time set-up some services need (telling Telegram where its webhook is)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from leadflow.cli import DbOption, RulesOption, _Commands, _fail, _settings, console

channels_app = _Commands(help="Inbound channels: status, and the set-up some services need.", no_args_is_help=True)
telegram_app = _Commands(help="Telegram: where the bot's updates go.", no_args_is_help=True)
viber_app = _Commands(help="Viber: where the bot's events go.", no_args_is_help=True)
channels_app.add_typer(telegram_app, name="telegram")
channels_app.add_typer(viber_app, name="viber")


@channels_app.command("status")
def status(rules: RulesOption = None, database: DbOption = None) -> None:
    """Each channel: set up or not, its last event, what came in, refused calls and the last error."""
    from leadflow.bootstrap import open_app
    from leadflow.services.channel_state import channels_status

    rows = channels_status(open_app(_settings(rules, database)))
    table = Table("channel", "set up", "last event", "events", "refused", "last error")
    for row in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items())) or "—"
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(row["refused"].items())) or "—"
        last = row["last_event_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if row["last_event_at"] else "never"
        table.add_row(row["channel"], "yes" if row["configured"] else "no", last, f"{row['events']} ({outcomes})",
                      refused, row["last_error"] or "—")  # fmt: skip
    console.print(table)


@telegram_app.command("set-webhook")
def telegram_set_webhook(
    url: Annotated[str | None, typer.Argument(help="The public HTTPS address; default: LEADFLOW_BASE_URL's.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the webhook (for long polling).")] = False,
) -> None:
    """Tell Telegram to send the bot's updates to leadflow, with the secret it must send back."""
    from leadflow.channels.inbound import telegram
    from leadflow.channels.senders import DeliveryError

    settings = _settings()
    config = settings.channels
    if config.telegram_bot_token is None:
        raise _fail("set LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN first")
    try:
        if delete:
            telegram.delete_webhook(config)
            console.print("Telegram's webhook is removed: updates wait for getUpdates (long polling).")
            return
        address = url or f"{settings.public_url}/api/v1/channels/telegram/webhook"
        if not address.startswith("https://"):
            raise _fail(f"Telegram sends updates to HTTPS addresses only, not {address}: pass the public address")
        telegram.set_webhook(config, address)
    except (DeliveryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"Telegram sends the bot's updates to {address}")


@viber_app.command("set-webhook")
def viber_set_webhook(
    url: Annotated[str | None, typer.Argument(help="leadflow's public HTTPS address (the webhook's path is added) or "
                                                   "the webhook's full address; default: LEADFLOW_BASE_URL's.")] = None,
) -> None:  # fmt: skip
    """Tell Viber to post the bot's events to leadflow. Viber checks the address at once, so leadflow must be
    serving there."""
    from leadflow.channels.inbound import viber
    from leadflow.channels.senders import DeliveryError

    settings = _settings()
    config = settings.channels
    if config.viber_auth_token is None:
        raise _fail("set LEADFLOW_CHANNELS__VIBER_AUTH_TOKEN first")
    address = viber.webhook_url(url or settings.public_url)
    if not address.startswith("https://"):
        raise _fail(f"Viber posts to HTTPS addresses only, not {address}: pass the public address")
    try:
        events = viber.set_webhook(config, address)
    except (DeliveryError, ValueError) as exc:
        raise _fail(f"Viber's webhook was not set: {getattr(exc, 'message', exc)}") from None
    console.print(f"Viber posts the bot's messages and {', '.join(events)} to {address}")
