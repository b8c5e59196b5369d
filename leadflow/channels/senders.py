"""Senders: one per channel, each delivering one outbox message or raising DeliveryError.

Synchronous on purpose: the delivery worker sends one message at a time outside any database transaction, and a
blocking client is simpler to reason about there. Each HTTP sender keeps one httpx.Client (connection reuse);
call close() (or close_senders) when the worker stops.

Failures are classified for the retry policy: 5xx, 429 (and 408), time-outs and connection errors are
retryable; any other 4xx means the request itself is wrong (bad chat id, revoked token) and will not get better.
Error texts never contain the Telegram token or the Slack URL, which are credentials; they end up in the outbox's
last_error, which operators read through the API (the delivery loop masks any credential that still gets into one,
see channels/redact.py).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

import httpx

from leadflow.channels.config import NotifyConfig, env_name
from leadflow.channels.signing import SIGNATURE_HEADER, sign
from leadflow.store.outbox import OutboxMessage

__all__ = [
    "DeliveryError",
    "EmailSender",
    "LogSender",
    "Sender",
    "SlackSender",
    "TelegramSender",
    "WebhookSender",
    "close_senders",
    "payload_images",
    "retry_after",
    "senders_from_config",
    "telegram_result",
]

log = logging.getLogger("leadflow.notify")

USER_AGENT = "leadflow-notify/1"
TELEGRAM_MAX_TEXT = 4096  # Bot API limit for sendMessage, in characters
TELEGRAM_MAX_CAPTION = 1024  # and for a photo's caption
SLACK_MAX_TEXT = 40000
_SNIPPET = 300  # how much of a receiver's answer to keep in an error


class DeliveryError(Exception):
    """A message could not be delivered; retryable says whether trying again later may succeed."""

    def __init__(self, message: str, retryable: bool, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after  # the receiver's own Retry-After, honoured by the backoff


@runtime_checkable
class Sender(Protocol):
    def send(self, message: OutboxMessage) -> str | None:
        """Deliver the message or raise DeliveryError; returns the receiving service's id for it, if it gives one."""
        ...


def payload_images(message: OutboxMessage) -> list[tuple[str, str, bytes]]:
    """The images a message carries in its payload (a digest's charts): (file name, MIME type, bytes); a payload
    that cannot be read is refused for good, as sending it again would not mend it."""
    found = []
    for image in message.payload.get("images") or ():
        try:
            found.append((str(image["name"]), str(image["type"]), base64.b64decode(image["data"], validate=True)))
        except (KeyError, TypeError, binascii.Error) as exc:
            raise DeliveryError(f"outbox message {message.id} carries an image that cannot be read: {exc}",
                                retryable=False) from exc  # fmt: skip
    return found


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return _truncate(text, _SNIPPET) if text else "(empty body)"


def retry_after(response: httpx.Response) -> timedelta | None:
    """The receiver's Retry-After in seconds (an HTTP date is possible too, but no service leadflow talks to sends
    one); a wait of more than a day is taken as a day."""
    value = response.headers.get("Retry-After", "").strip()
    return timedelta(seconds=min(int(value), 86400)) if value.isdigit() else None


def _is_retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _post(client: httpx.Client, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """POST, turning transport failures into retryable DeliveryErrors that name the receiver but not the URL."""
    try:
        return client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what} did not answer in time ({type(exc).__name__})", retryable=True) from exc
    except httpx.TransportError as exc:
        raise DeliveryError(f"could not reach {what}: {type(exc).__name__}: {exc}", retryable=True) from exc


def _check_status(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    if response.is_redirect:
        raise DeliveryError(
            f"{what} answered {status} (a redirect); leadflow does not follow redirects with a POST: "
            "configure the final address",
            retryable=False,
        )
    raise DeliveryError(
        f"{what} answered {status}: {_snippet(response)}",
        retryable=_is_retryable_status(status),
        retry_after=retry_after(response),
    )


def _client(config: NotifyConfig) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(config.timeout_seconds), headers={"User-Agent": USER_AGENT}, follow_redirects=False
    )


class TelegramSender:
    """Telegram Bot API sendMessage; recipient is a chat id (or @channel). Plain text, no parse mode. The images a
    message carries (a digest's charts) follow the text, each by sendPhoto with the subject as its caption."""

    def __init__(self, config: NotifyConfig, client: httpx.Client | None = None) -> None:
        if config.telegram_bot_token is None:
            raise ValueError(f"Telegram needs a bot token: set {env_name('telegram_bot_token')}")
        self._bot = f"{config.telegram_api_base}/bot{config.telegram_bot_token.get_secret_value()}"
        self._url = f"{self._bot}/sendMessage"
        self._client = client or _client(config)

    def send(self, message: OutboxMessage) -> None:
        images = payload_images(message)
        text = _truncate(message.full_text, TELEGRAM_MAX_TEXT)
        body = {"chat_id": message.recipient, "text": text, "link_preview_options": {"is_disabled": True}}
        response = _post(self._client, self._url, "Telegram", json=body)
        hint = f"; check the chat id {message.recipient!r} and that the recipient has started the bot"
        telegram_result(response, "the message", env_name("telegram_bot_token"), hint)
        for name, kind, data in images:
            caption = {"chat_id": message.recipient, "caption": _truncate(message.subject or "", TELEGRAM_MAX_CAPTION)}
            response = _post(self._client, f"{self._bot}/sendPhoto", "Telegram", data=caption,
                             files={"photo": (name, data, kind)})  # fmt: skip
            telegram_result(response, "the picture", env_name("telegram_bot_token"), hint)

    def close(self) -> None:
        self._client.close()


def telegram_result(response: httpx.Response, what: str, token_setting: str, hint_4xx: str = "") -> Any:
    """The `result` of a Bot API answer, or a DeliveryError saying what Telegram answered about `what` (the
    message, getUpdates...): retryable when waiting may help, with Telegram's own retry_after; `token_setting` is
    named when the token is refused, `hint_4xx` added when the request itself is (400, 403)."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is True and response.is_success:
        return answer.get("result")
    if not isinstance(answer, dict):
        _check_status(response, "Telegram")  # not the Bot API talking (a proxy?): judge by the status alone
        raise DeliveryError(f"Telegram answered {response.status_code} without a JSON body", retryable=True)
    code = answer.get("error_code", response.status_code)
    code = code if isinstance(code, int) else response.status_code
    description = str(answer.get("description") or "no description")
    wait = None
    parameters = answer.get("parameters")
    if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int):
        wait = timedelta(seconds=parameters["retry_after"])
    hint = ""
    if code == 401:
        hint = f"; the bot token was refused: check {token_setting}"
    elif code in (400, 403):
        hint = hint_4xx
    raise DeliveryError(
        f"Telegram refused {what} ({code}): {description}{hint}",
        retryable=_is_retryable_status(code),
        retry_after=wait or retry_after(response),
    )


class SlackSender:
    """Slack incoming webhook: POST {"text": ...}. recipient may be its own webhook URL; otherwise the configured one."""

    def __init__(self, config: NotifyConfig, client: httpx.Client | None = None) -> None:
        if config.slack_webhook_url is None:
            raise ValueError(f"Slack needs a webhook URL: set {env_name('slack_webhook_url')}")
        self._default_url = config.slack_webhook_url.get_secret_value()
        self._client = client or _client(config)

    def send(self, message: OutboxMessage) -> None:
        recipient = message.recipient.strip()
        url = recipient if recipient.startswith(("https://", "http://")) else self._default_url
        text = _truncate(message.full_text, SLACK_MAX_TEXT)
        response = _post(self._client, url, "Slack", json={"text": text})
        _check_status(response, "Slack")

    def close(self) -> None:
        self._client.close()


class WebhookSender:
    """Signed JSON POST of the message's payload to the URL in recipient."""

    def __init__(
        self, config: NotifyConfig, client: httpx.Client | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if config.webhook_secret is None:
            raise ValueError(f"webhooks need a signing secret: set {env_name('webhook_secret')}")
        self._secret = config.webhook_secret.get_secret_value()
        self._client = client or _client(config)
        self._clock = clock  # the signature's timestamp; a parameter so tests can sign in the past

    def send(self, message: OutboxMessage) -> None:
        url = message.recipient.strip()
        if not url.startswith(("https://", "http://")):
            raise DeliveryError(f"webhook recipient {url!r} is not an http(s) URL", retryable=False)
        # Sign the exact bytes sent: a receiver that re-serialises the JSON would compute another MAC.
        body = json.dumps(message.payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Leadflow-Event": str(message.payload.get("event", "")),
            "X-Leadflow-Delivery": str(message.id),
            # The delivery id is signed too: a receiver drops repeats by it, so a replay must not be able to change it.
            SIGNATURE_HEADER: sign(self._secret, body, int(self._clock()), message.id),
        }
        response = _post(self._client, url, f"the webhook receiver at {_origin(url)}", content=body, headers=headers)
        _check_status(response, f"the webhook receiver at {_origin(url)}")

    def close(self) -> None:
        self._client.close()


def _origin(url: str) -> str:
    # Scheme, host and port only: a webhook path or query may carry a token of the receiver's.
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(invalid URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


class EmailSender:
    """SMTP, one connection per message: STARTTLS or implicit TLS as configured, login when a username is set."""

    def __init__(self, config: NotifyConfig, ssl_context: ssl.SSLContext | None = None) -> None:
        if not (config.smtp_host and config.smtp_from):
            raise ValueError(f"e-mail needs {env_name('smtp_host')} and {env_name('smtp_from')}")
        self._config = config
        self._host = config.smtp_host
        self._from = config.smtp_from
        self._ssl_context = ssl_context or ssl.create_default_context()

    def _build(self, message: OutboxMessage) -> EmailMessage:
        mail = EmailMessage()  # default policy: UTF-8 headers are RFC 2047-encoded, the body gets a UTF-8 charset
        try:
            mail["From"] = self._from
            mail["To"] = message.recipient
            mail["Subject"] = message.subject or ""
            mail["Date"] = email.utils.formatdate(usegmt=True)
            domain = email.utils.parseaddr(self._from)[1].rpartition("@")[2]
            mail["Message-ID"] = email.utils.make_msgid(domain=domain or None)
            mail["X-Leadflow-Delivery"] = str(message.id)
            mail.set_content(message.body)
            for name, kind, data in payload_images(message):  # a digest's charts, shown in the mail
                maintype, _, subtype = kind.partition("/")
                mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name, disposition="inline")
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header: refused, never sent as is
            raise DeliveryError(f"cannot build the e-mail to {message.recipient!r}: {exc}", retryable=False) from exc
        return mail

    def _connect(self) -> smtplib.SMTP:
        timeout = self._config.timeout_seconds
        if self._config.smtp_ssl:
            return smtplib.SMTP_SSL(self._host, self._config.smtp_port, timeout=timeout, context=self._ssl_context)
        return smtplib.SMTP(self._host, self._config.smtp_port, timeout=timeout)

    def send(self, message: OutboxMessage) -> None:
        self.deliver(self._build(message))

    def deliver(self, mail: EmailMessage) -> None:
        """Send a message built elsewhere (a reply to a client) through this server, with the same error handling."""
        server = f"the SMTP server {self._host}:{self._config.smtp_port}"
        try:
            with self._connect() as smtp:
                if self._config.smtp_starttls and not self._config.smtp_ssl:
                    smtp.starttls(context=self._ssl_context)
                if self._config.smtp_username:
                    password = self._config.smtp_password.get_secret_value() if self._config.smtp_password else ""
                    smtp.login(self._config.smtp_username, password)
                smtp.send_message(mail)
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{server}: {exc} {_unsupported_hint(exc)}", retryable=False) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{server} refused the login for {self._config.smtp_username!r} ({exc.smtp_code}): check "
                f"{env_name('smtp_username')} and {env_name('smtp_password')}",
                retryable=False,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items())
            raise DeliveryError(
                f"{server} refused the recipient: {detail}", retryable=all(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            raise DeliveryError(
                f"{server} answered {exc.smtp_code}: {_text(exc.smtp_error)}", retryable=not 500 <= exc.smtp_code < 600
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"{server} presented a certificate that cannot be trusted: {exc}", False) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS failure, disconnected
            raise DeliveryError(f"could not deliver through {server}: {type(exc).__name__}: {exc}", True) from exc

    def close(self) -> None:
        """Nothing to close: each message opens its own SMTP connection."""


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _unsupported_hint(exc: smtplib.SMTPNotSupportedError) -> str:
    if "STARTTLS" in str(exc).upper():
        return (
            f"(use the port that offers STARTTLS, or {env_name('smtp_ssl')}=true for implicit TLS; set "
            f"{env_name('smtp_starttls')}=false only if the network to the server is trusted)"
        )
    if "AUTH" in str(exc).upper():
        return f"(the server offers no login here: unset {env_name('smtp_username')}, or enable STARTTLS first)"
    return ""


class LogSender:
    """Writes the message to the 'leadflow.notify' logger: a channel that always works, for trials and audits."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def send(self, message: OutboxMessage) -> None:
        self._log.info(
            "notification #%s (%s) for %s: %s\n%s",
            message.id,
            message.payload.get("event", "-"),
            message.recipient,
            message.subject or "",
            message.body,
        )

    def close(self) -> None:
        """Nothing to close."""


def senders_from_config(config: NotifyConfig) -> dict[str, Sender]:
    """A sender for every channel that is configured; 'log' is always there."""
    senders: dict[str, Sender] = {"log": LogSender()}
    if config.telegram_bot_token is not None:
        senders["telegram"] = TelegramSender(config)
    if config.slack_webhook_url is not None:
        senders["slack"] = SlackSender(config)
    if config.webhook_secret is not None:
        senders["webhook"] = WebhookSender(config)
    if config.email_enabled:
        senders["email"] = EmailSender(config)
    return senders


def close_senders(senders: Mapping[str, Sender]) -> None:
    """Close the senders' connections (the worker calls this when it stops)."""
    for sender in senders.values():
        close = getattr(sender, "close", None)
        if callable(close):
            close()
