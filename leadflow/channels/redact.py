"""Credentials kept out of sight: in log lines, in the errors the outbox keeps, and in the outbox as people see it.

The Telegram bot token, the path of a Slack webhook URL, the query values (and any password) of a webhook URL, the
webhook signing secret and the SMTP password are credentials. :func:`secrets_of` names them for a configuration,
:func:`redact` masks them in a text, and :func:`hide_in_logs` masks them in every log record the process makes from
then on, whatever the logger and the level: httpx, for one, logs the full URL of every request.
:func:`shown_recipient` is an outbox address as the API and the logs show it; the row keeps the real one, which
delivery needs.

Pure, but for hide_in_logs, which changes the process's logging.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit, urlunsplit

from leadflow.channels.config import NotifyConfig

__all__ = ["MASK", "MIN_SECRET", "hide_in_logs", "recipient_secrets", "redact", "secrets_of", "shown_recipient"]

MASK = "***"
# Shorter strings turn up everywhere in ordinary text, and a credential that short protects nothing anyway.
MIN_SECRET = 4
_URL_CHANNELS = ("slack", "webhook")


def _split(url: str) -> SplitResult | None:
    if not url.strip().startswith(("https://", "http://")):
        return None
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return None
    return parts


def _query_values(query: str) -> list[str]:
    # Every value, and a bare `?abc` too: any part of a query may be the receiver's token.
    return [
        value if sep else name for name, sep, value in (p.partition("=") for p in query.split("&")) if name or value
    ]


def _chat_path_secret(path: str) -> str:
    """What is secret in a chat webhook's path: all but its first segment (Slack's /services/T…/B…/secret)."""
    segments = path.strip("/").split("/")
    return "/".join(segments[1:]) if len(segments) > 1 else segments[0]


def recipient_secrets(channel: str, recipient: str) -> frozenset[str]:
    """The credentials inside an outbox recipient: a Slack URL's path, a webhook URL's query values, any password."""
    if channel not in _URL_CHANNELS or not recipient.strip().startswith(("https://", "http://")):
        return frozenset()  # a chat id, an e-mail address, the configured Slack webhook's name
    parts = _split(recipient)
    if parts is None:
        return _long_enough({recipient.strip()})  # its parts cannot be told apart: the whole of it
    found: set[str] = set()
    if parts.password:
        found |= {parts.password, unquote(parts.password)}
    for value in _query_values(parts.query):
        found |= {value, unquote_plus(value)}
    if channel == "slack":
        path = _chat_path_secret(parts.path)
        found |= {path, unquote(path)}
    return _long_enough(found)


def secrets_of(config: NotifyConfig, slack_urls: Iterable[str] = ()) -> frozenset[str]:
    """Every credential in the notification settings, and in more Slack URLs (the teams' own chats)."""
    found: set[str] = set()
    if config.telegram_bot_token is not None:
        token = config.telegram_bot_token.get_secret_value()
        found |= {token, token.partition(":")[2]}  # the part after the bot's id is the secret one
    for secret in (config.webhook_secret, config.smtp_password):
        if secret is not None:
            found.add(secret.get_secret_value())
    if config.slack_webhook_url is not None:
        found |= recipient_secrets("slack", config.slack_webhook_url.get_secret_value())
    for url in slack_urls:
        found |= recipient_secrets("slack", url)
    for url in config.webhook_urls:
        found |= recipient_secrets("webhook", url)
    return _long_enough(found)


def _long_enough(found: Iterable[str]) -> frozenset[str]:
    return frozenset(s for s in found if len(s) >= MIN_SECRET)


@functools.lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    # Longest first: where one secret contains another, the whole of it is masked.
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))


def redact(text: str, secrets: Collection[str]) -> str:
    """The text with every secret replaced by ***."""
    pattern = _pattern(frozenset(secrets))
    return text if pattern is None else pattern.sub(MASK, text)


def shown_recipient(channel: str, recipient: str) -> str:
    """An outbox recipient as people may see it: a Slack URL by its host and first path segment
    (https://hooks.slack.com/services/***), a webhook URL with its query values masked
    (https://example.org/hook?token=***); chat ids and e-mail addresses as they are."""
    if channel not in _URL_CHANNELS or not recipient.strip().startswith(("https://", "http://")):
        return recipient
    parts = _split(recipient)
    if parts is None:
        return MASK
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host  # no user name or password
    path = parts.path
    if channel == "slack" and path.strip("/"):
        segments = path.strip("/").split("/")
        path = f"/{segments[0]}/{MASK}" if len(segments) > 1 else f"/{MASK}"
    query = "&".join(
        f"{name}={MASK}" if sep else MASK for name, sep, _ in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))  # a fragment is never sent; it is dropped


# --- logging -------------------------------------------------------------------------------------------------
#
# A filter on a logger sees only the records of that logger, not of its children, and a filter on a handler only
# what reaches that handler; the record factory sees every record of every logger, at every level, when it is made.

_lock = threading.Lock()
_hidden: frozenset[str] = frozenset()
_hidden_pattern: re.Pattern[str] | None = None
_MARK = "_leadflow_redacts"
_formatter = logging.Formatter()


def hide_in_logs(secrets: Iterable[str]) -> None:
    """Mask these strings in every log record this process makes from now on: its message, its arguments, its
    traceback and its stack. Calling it again adds to the secrets; the record factory is installed once.

    httpx's line for every request (INFO) is quieted as well, unless a level was chosen for its logger.
    """
    global _hidden, _hidden_pattern
    with _lock:
        _hidden = _hidden | _long_enough(secrets)
        _hidden_pattern = _pattern(_hidden)
        factory = logging.getLogRecordFactory()
        if not getattr(factory, _MARK, False):
            logging.setLogRecordFactory(_redacting(factory))
    requests_log = logging.getLogger("httpx")
    if requests_log.level == logging.NOTSET:
        requests_log.setLevel(logging.WARNING)


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        pattern = _hidden_pattern
        if pattern is not None:  # no secrets: nothing to do but this test
            _scrub(record, pattern)
        return record

    setattr(make, _MARK, True)
    return make


def _scrub(record: logging.LogRecord, pattern: re.Pattern[str]) -> None:
    """Mask the secrets in a record, keeping its message and arguments apart when it can (some formatters read the
    arguments themselves, uvicorn's access log for one)."""
    record.msg = _clean(record.msg, pattern)
    if isinstance(record.args, tuple):
        record.args = tuple(_clean(arg, pattern) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _clean(value, pattern) for key, value in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the handler reports it, with the arguments cleaned above
        message = ""
    if pattern.search(message):  # a secret put together from several arguments
        record.msg, record.args = pattern.sub(MASK, message), ()
    if record.exc_info and record.exc_info[0] is not None:
        text = _formatter.formatException(record.exc_info)
        if pattern.search(text):
            # Formatters print exc_text when there is no exc_info: the traceback as text, masked.
            record.exc_text, record.exc_info = pattern.sub(MASK, text), None
    if record.stack_info:
        record.stack_info = pattern.sub(MASK, record.stack_info)


def _clean(value: object, pattern: re.Pattern[str]) -> object:
    if value is None or isinstance(value, int | float):
        return value  # numbers stay numbers, for %d
    if isinstance(value, str):
        return pattern.sub(MASK, value) if pattern.search(value) else value
    try:
        text = str(value)
        if pattern.search(text) or pattern.search(repr(value)):  # an httpx.URL, an exception, a list of them
            return pattern.sub(MASK, text)
    except Exception:
        pass  # an object that cannot say what it is holds nothing to show
    return value
