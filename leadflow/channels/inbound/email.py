"""E-mail: one RFC 5322 message read into core.conversation values, and a manager's reply sent back by e-mail.

Mail reaches leadflow two ways, both reading it here: the SMTP listener (email_smtp.py) takes what the
organisation's mail server forwards, and the IMAP poller (email_imap.py) fetches from a mailbox. A message is known by
its Message-ID, the same whichever way it came, so a message both forwarded and fetched is taken once.

Auto-replies (out-of-office, vacation notices) and bounces are kept as unreadable events with the reason, never made
into leads: a lead for every "I am away until Monday" would bury the real ones, and answering it starts a loop.

Replies go out through the notification SMTP server (LEADFLOW_NOTIFY__SMTP_*), under a fresh Message-ID that becomes
the reply's id, and with In-Reply-To and References naming the client's message, so the client's mail program shows
them as one conversation, and the client's answer names the reply it answers.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import DeliveryError, EmailSender
from leadflow.core.cleaning import normalize_email
from leadflow.core.conversation import Inbound, InboundMessage, Unreadable
from leadflow.core.errors import InvalidInput

CHANNEL = "email"
MAX_TEXT = 100_000  # characters of a body kept in the conversation (quoted history makes mail long)
MAX_LEAD_MESSAGE = 4000  # the lead's own message field (core.lead.MAX_TEXT): the subject and the start of the body
MAX_ID = 200  # the longest event id the channel events keep; a longer Message-ID is hashed
# Headers kept with every event, so an unreadable one can be looked into without the whole message.
SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "Return-Path", "Auto-Submitted",
                 "Precedence", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "Content-Type")  # fmt: skip
_MSG_ID = re.compile(r"<[^<>]+>")


# -- Reading a message ------------------------------------------------------------------------------------------------


def read_email(raw: bytes, *, envelope_sender: str | None = None) -> Inbound:
    """One message as leadflow sees it: a client's mail, or what it is not (an auto-reply, a bounce, nothing usable).

    `envelope_sender` is the SMTP MAIL FROM when the message came through the listener ("" for the null sender that
    bounces and auto-replies use); IMAP gives none, and the Return-Path header the mailbox kept says the same.
    """
    try:
        return _read(raw, envelope_sender)
    except Exception as exc:  # a message malformed past what the parser forgives is kept, never lost
        return Unreadable(CHANNEL, f"not understood: {type(exc).__name__}: {exc}"[:500], _hash_id(raw),
                          raw={"size": len(raw), "start": raw[:4096].decode("utf-8", "replace")})  # fmt: skip


def _read(raw: bytes, envelope_sender: str | None) -> Inbound:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    message_id = first_message_id(header(message, "Message-ID"))
    event_id = message_id if message_id and len(message_id) <= MAX_ID else _hash_id(raw)
    shown = {"headers": {name: header(message, name)[:500] for name in SHOWN_HEADERS if name in message},
             "size": len(raw)}  # fmt: skip
    if envelope_sender is not None:
        shown["envelope_sender"] = envelope_sender
    not_a_person = automatic_reason(message, envelope_sender)
    if not_a_person:
        return Unreadable(CHANNEL, not_a_person, event_id, raw=shown)
    name, address = sender_of(message)
    if not address:
        return Unreadable(CHANNEL, "no sender address in From: nobody to answer", event_id, raw=shown)
    try:
        address = normalize_email(address)
    except InvalidInput as exc:
        return Unreadable(CHANNEL, f"the sender's address cannot be answered: {exc}"[:500], event_id, raw=shown)
    subject = " ".join(header(message, "Subject").split()) or None
    text = body_text(message)
    meta: dict[str, Any] = {}
    if subject:
        meta["subject"] = subject[:300]
    to = header(message, "To")
    if to:
        meta["to"] = to[:500]
    attachments = [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]
    if attachments:
        meta["attachments"] = attachments[:20]
    in_reply_to = first_message_id(header(message, "In-Reply-To")) or last_message_id(header(message, "References"))
    return InboundMessage(
        CHANNEL, event_id, address, text, name=name, at=sent_at(message), kind="message",
        lead={"message": lead_message(subject, text)}, thread=message_id, reply_to=in_reply_to, meta=meta, raw=shown,
    )  # fmt: skip


def header(message: EmailMessage, name: str) -> str:
    """A header's text, decoded: RFC 2047 encoded words by the parser, raw 8-bit text (which some mailers still send,
    in UTF-8 or windows-1251) here. "" when the message has none."""
    raw = _raw_header(message, name)
    if raw is None:
        return ""
    if _is_8bit(raw):
        return _decode_8bit(raw.encode("ascii", "surrogateescape")).strip()
    try:
        return str(message[name]).strip()
    except Exception:  # a header the parser chokes on: its encoded words decoded the older, simpler way
        return str(make_header(decode_header(raw))).strip()


def automatic_reason(message: EmailMessage, envelope_sender: str | None = None) -> str | None:
    """Why the message was written by a machine rather than a person (a bounce, an auto-reply), or None."""
    content_type = message.get_content_type()
    report = (message.get_param("report-type") or "") if content_type == "multipart/report" else ""
    if isinstance(report, str) and report.lower() == "delivery-status":
        return "bounce (multipart/report; report-type=delivery-status)"
    if isinstance(report, str) and report.lower() == "disposition-notification":
        return "read receipt (multipart/report; report-type=disposition-notification)"
    _, address = sender_of(message)
    local = address.partition("@")[0].lower()
    if local in ("mailer-daemon", "postmaster"):
        return f"bounce (from {address})"
    if envelope_sender == "":
        return "bounce or auto-reply (MAIL FROM:<>, the null sender)"
    if header(message, "Return-Path").replace(" ", "") == "<>":
        return "bounce or auto-reply (Return-Path: <>)"
    auto = header(message, "Auto-Submitted")
    if auto and auto.split(";")[0].strip().lower() != "no":
        return f"auto-reply (Auto-Submitted: {auto[:100]})"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in message:
            return f"auto-reply ({name}: {header(message, name)[:100]})"
    precedence = header(message, "Precedence").lower()
    if precedence in ("bulk", "junk", "auto_reply"):
        return f"auto-reply (Precedence: {precedence})"
    suppress = {token.strip().lower() for token in header(message, "X-Auto-Response-Suppress").split(",")}
    if suppress & {"oof", "all"}:
        return f"auto-reply (X-Auto-Response-Suppress: {header(message, 'X-Auto-Response-Suppress')[:100]})"
    return None


def sender_of(message: EmailMessage) -> tuple[str | None, str]:
    """The From's display name (None when there is none) and address (lower case; "" when there is none)."""
    value = header(message, "From")
    pairs: list[tuple[str, str]] = []
    try:
        if value and not _is_8bit(_raw_header(message, "From") or ""):
            pairs = [(a.display_name, a.addr_spec) for a in message["From"].addresses]
    except Exception:  # the parser's view of a broken header: fall back to the forgiving one below
        pairs = []
    if not pairs:
        pairs = email.utils.getaddresses([value])
    for name, address in pairs:
        if "@" in address:
            return (" ".join(name.split()) or None), address.strip().lower()
    return None, ""


def body_text(message: EmailMessage) -> str | None:
    """The message's text: its text/plain body, or its HTML body as text when it has only HTML. Quoted replies and
    signatures stay: they are what the client sent."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return None
    content = part_text(part)  # type: ignore[arg-type]
    if part.get_content_type() == "text/html":
        content = html_to_text(content)
    return tidy(content)[:MAX_TEXT] or None


def part_text(part: EmailMessage) -> str:
    """A text part decoded: by its declared charset, else UTF-8, else windows-1251 (the usual undeclared one here)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(payload or "")
    charset = part.get_content_charset()
    if charset:
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown or wrong charset: try what mail in this region usually is
    return _decode_8bit(payload)


def tidy(text: str) -> str:
    """Line ends unified, trailing spaces dropped, runs of blank lines shortened to one."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def lead_message(subject: str | None, text: str | None) -> str | None:
    """What the lead says the client wrote: the subject, then the body, within the lead's limit."""
    joined = "\n\n".join(part for part in (subject, text) if part)
    if len(joined) <= MAX_LEAD_MESSAGE:
        return joined or None
    return joined[: MAX_LEAD_MESSAGE - 1].rstrip() + "…"


def sent_at(message: EmailMessage) -> datetime | None:
    value = header(message, "Date")
    if not value:
        return None
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def first_message_id(value: str) -> str | None:
    """The first <id> of a Message-ID or In-Reply-To header (some mailers leave off the brackets)."""
    found = _MSG_ID.search(value)
    if found:
        return "".join(found.group(0).split())
    bare = value.strip()
    return f"<{bare}>" if "@" in bare and not any(ch.isspace() for ch in bare) else None


def last_message_id(value: str) -> str | None:
    """The last id of a References header: the message this one answers, when In-Reply-To is missing."""
    found = _MSG_ID.findall(value)
    return "".join(found[-1].split()) if found else None


def _raw_header(message: EmailMessage, name: str) -> str | None:
    return next((value for key, value in message.raw_items() if key.lower() == name.lower()), None)


def _is_8bit(raw: str) -> bool:
    # Bytes the parser could not decode are kept as surrogates (it read the header as ASCII).
    return any("\udc80" <= ch <= "\udcff" for ch in raw)


def _decode_8bit(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1251", "replace")


def _hash_id(raw: bytes) -> str:
    # A message without a usable Message-ID is known by its bytes: the same message delivered twice is one.
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# -- HTML to text ----------------------------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript"})
_PARAGRAPHS = frozenset({"p", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "table", "ul", "pre"})
_BLOCKS = _PARAGRAPHS | frozenset({"address", "article", "aside", "dd", "div", "dl", "dt", "fieldset", "figure",
                                   "footer", "form", "header", "hr", "li", "main", "nav", "section", "tr"})  # fmt: skip


class _TextOfHtml(HTMLParser):
    """Text a person would read in an HTML mail: blocks on their own lines (paragraphs apart), list items marked,
    scripts, styles and the head left out. The stdlib parser is enough for this, and forgiving of the broken HTML
    mailers produce; no library beyond it is needed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.breaks = 0  # line breaks owed before the next text
        self.skipping = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "br":
            self.breaks += 1  # each <br> counts: two make a blank line
        elif tag in _BLOCKS:
            self._break(2 if tag in _PARAGRAPHS else 1)
        elif tag in ("td", "th") and not self._at_line_start():
            self._emit(" ")
        if tag == "li":
            self._emit("- ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(self.skipping - 1, 0)
        elif tag in _BLOCKS:
            self._break(2 if tag in _PARAGRAPHS else 1)
        if tag == "pre":
            self.pre = max(self.pre - 1, 0)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data.replace("\xa0", " "))
            if self._at_line_start() or (self.parts and self.parts[-1].endswith(" ")):
                data = data.lstrip(" ")
        if data:
            self._emit(data)

    def _break(self, lines: int) -> None:
        self.breaks = max(self.breaks, lines)

    def _at_line_start(self) -> bool:
        return bool(self.breaks) or not self.parts or self.parts[-1].endswith("\n")

    def _emit(self, text: str) -> None:
        if self.breaks and self.parts:
            self.parts.append("\n" * self.breaks)
        self.breaks = 0
        self.parts.append(text)

    def text(self) -> str:
        return tidy("".join(self.parts))


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return parser.text()


# -- Replies ---------------------------------------------------------------------------------------------------------


class EmailReplier:
    """Replies to a client by e-mail through the notification SMTP server, threaded under the client's message."""

    def __init__(self, notify: NotifyConfig, ssl_context: ssl.SSLContext | None = None) -> None:
        self._smtp = EmailSender(notify, ssl_context)  # its connection, login and error handling
        self._from = str(notify.smtp_from)

    def send(self, address: str, text: str, subject: str | None, payload: Mapping[str, Any]) -> str:
        """Send the reply; returns its Message-ID (the client's answer names it in In-Reply-To)."""
        in_reply_to, html = payload.get("in_reply_to"), payload.get("html")
        mail = reply_mail(self._from, address, text, subject, in_reply_to if isinstance(in_reply_to, str) else None,
                          html=html if isinstance(html, str) else None)  # fmt: skip
        self._smtp.deliver(mail)
        return str(mail["Message-ID"])

    def close(self) -> None:
        self._smtp.close()


def reply_mail(
    sender: str, to: str, text: str, subject: str | None, in_reply_to: str | None, *, html: str | None = None
) -> EmailMessage:
    """The reply as it goes out, with a fresh Message-ID in the sender's domain; with `html`, multipart/alternative
    (the text, then the HTML part mail programs show)."""
    if "@" not in to:
        raise DeliveryError(f"cannot send an e-mail to {to!r}: it is not an address", retryable=False)
    mail = EmailMessage()  # default policy: UTF-8 headers RFC 2047-encoded, the body with a UTF-8 charset
    try:
        mail["From"] = sender
        mail["To"] = to
        mail["Subject"] = subject or ""
        mail["Date"] = email.utils.formatdate(usegmt=True)
        domain = email.utils.parseaddr(sender)[1].rpartition("@")[2]
        mail["Message-ID"] = email.utils.make_msgid(domain=domain or "leadflow.invalid")
        if in_reply_to:
            mail["In-Reply-To"] = in_reply_to
            mail["References"] = in_reply_to
        mail.set_content(text)
        if html is not None:
            mail.add_alternative(html, subtype="html")
    except (ValueError, TypeError) as exc:  # a line break in a header, say: refused, never sent as is
        raise DeliveryError(f"cannot build the e-mail to {to!r}: {exc}", retryable=False) from exc
    return mail
