"""Where notifications would go, and whether the worker keeps up: the decision, then on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import close_senders, senders_from_config
from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow
from leadflow.services.health import (
    check_notifications,
    enabled_channels,
    health_report,
    notification_reach,
)
from leadflow.services.intake import take_lead
from leadflow.worker import Worker
from tests.support import SLA_TEAM, THREE_MANAGERS

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TELEGRAM = NotifyConfig(telegram_bot_token=SecretStr("123:abc"))


def test_no_channel_enabled_is_a_warning_naming_the_settings() -> None:
    reach = notification_reach({"log"}, {"telegram": ["team sales"]})
    assert reach.channels == ()
    first = reach.warnings[0]
    assert first.startswith("no notification channel is enabled, so escalations and new-lead notices reach no one")
    for setting in ("LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN", "LEADFLOW_NOTIFY__SMTP_HOST", "LEADFLOW_NOTIFY__SMTP_FROM",
                    "LEADFLOW_NOTIFY__SLACK_WEBHOOK_URL", "LEADFLOW_NOTIFY__WEBHOOK_URLS",
                    "LEADFLOW_NOTIFY__WEBHOOK_SECRET"):  # fmt: skip
        assert setting in first
    # The team chat's address is there: the second warning says those messages will fail.
    assert reach.warnings[1] == (
        "team sales has an address for telegram but telegram is not enabled, so those notifications will fail; "
        "set LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN"
    )


def test_channels_enabled_with_no_one_to_address_is_a_warning() -> None:
    reach = notification_reach({"log", "telegram", "email"}, {"telegram": [], "email": []})
    assert reach.channels == ("telegram", "email")
    assert reach.warnings == (
        "telegram and email are enabled but no manager or team has an address there, so escalations and new-lead "
        "notices reach no one; add one — telegram: telegram_chat_id on a manager or a team; email: email on a "
        "manager",
    )


def test_an_enabled_channel_with_an_address_is_no_warning() -> None:
    assert notification_reach({"log", "telegram"}, {"telegram": ["team sales"]}).warnings == ()
    assert notification_reach({"webhook"}, {"webhook": ["receiver https://crm.example/hook"]}).warnings == ()


@pytest.mark.parametrize(
    "config",
    [
        NotifyConfig(),
        TELEGRAM,
        NotifyConfig(slack_webhook_url=SecretStr("https://hooks.example/x")),
        NotifyConfig(webhook_secret=SecretStr("s" * 32)),
        NotifyConfig(smtp_host="mail.example", smtp_from="leads@example.com"),
        NotifyConfig(smtp_host="mail.example", smtp_from="leads@example.com", telegram_bot_token=SecretStr("1:a")),
    ],
    ids=["none", "telegram", "slack", "webhook", "email", "email and telegram"],
)
def test_enabled_channels_are_the_channels_the_worker_gets_senders_for(config: NotifyConfig) -> None:
    senders = senders_from_config(config)
    close_senders(senders)
    assert set(enabled_channels(config)) == set(senders) - {"log"}


def test_the_rules_addresses_are_read_from_the_database(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(SLA_TEAM)  # managers with e-mails, a team chat on Telegram
    assert check_notifications(lf).warnings[0].startswith("no notification channel is enabled")
    lf.notify = TELEGRAM
    assert check_notifications(lf).warnings == (
        "manager anna, manager bohdan, manager chrystia and 1 more have an address for email but email is not "
        "enabled, so those notifications will fail; set LEADFLOW_NOTIFY__SMTP_HOST and LEADFLOW_NOTIFY__SMTP_FROM",
    )
    assert check_notifications(lf).channels == ("telegram",)


def test_telegram_enabled_but_nobody_has_a_chat(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(THREE_MANAGERS)
    lf.notify = TELEGRAM
    [warning] = check_notifications(lf).warnings
    assert warning.startswith("telegram is enabled but no manager or team has an address there")


def test_the_installations_slack_webhook_is_every_teams_chat(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(THREE_MANAGERS)  # no manager or team has an address of its own
    lf.notify = NotifyConfig(
        slack_webhook_url=SecretStr("https://hooks.example/services/T/B/secret"),
        webhook_secret=SecretStr("s" * 32), webhook_urls=["https://crm.example/hook?token=abc"],
    )  # fmt: skip
    reach = check_notifications(lf)
    assert reach.channels == ("slack", "webhook") and reach.warnings == ()
    assert "secret" not in str(reach.as_dict()) and "token" not in str(reach.as_dict())


def test_a_worker_judges_by_its_own_senders(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(SLA_TEAM)
    worker = Worker(lf, senders=senders_from_config(TELEGRAM))
    assert worker.notification_reach().channels == ("telegram",)
    close_senders(worker.senders)


def test_the_report_says_when_the_worker_is_behind(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(SLA_TEAM)  # first contact within 2 s
    take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    fresh = health_report(lf, T0 + timedelta(seconds=30), worker_in_process=True)
    assert fresh["status"] == "ok" and fresh["database"] == lf.engine.dialect.name
    assert fresh["worker"] == {"in_process": True, "status": "ok", "overdue_deadlines": 0,
                               "overdue_notifications": 0, "oldest_overdue_seconds": None}  # fmt: skip
    late = health_report(lf, T0 + timedelta(minutes=5))
    assert late["worker"]["status"] == "behind"
    assert late["worker"]["overdue_deadlines"] == 1  # due at 2 s
    assert late["worker"]["overdue_notifications"] == 1  # Anna's e-mail about the new lead, due at once
    assert late["worker"]["oldest_overdue_seconds"] == 300
    assert late["notifications"]["channels"] == []
