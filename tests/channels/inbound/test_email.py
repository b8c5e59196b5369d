"""Reading e-mail: messages as mail programs and servers really write them (plain, HTML only, alternative parts,
attachments, Cyrillic in koi8-r, windows-1251 and UTF-8, encoded and raw headers), auto-replies and bounces told
apart from people, and the reply leadflow sends."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from leadflow.channels.inbound.email import MAX_LEAD_MESSAGE, html_to_text, read_email, reply_mail
from leadflow.channels.inbound.email_imap import Position, mailbox_name
from leadflow.channels.senders import DeliveryError
from leadflow.core.conversation import InboundMessage, Unreadable


def b64(text: str, charset: str) -> bytes:
    return base64.encodebytes(text.encode(charset))


def qp(text: str, charset: str) -> bytes:
    return quopri.encodestring(text.encode(charset).replace(b"\n", b"\r\n"))


def word(text: str, charset: str) -> str:
    """An RFC 2047 encoded word, as mailers write non-ASCII headers."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def message(raw: bytes) -> InboundMessage:
    item = read_email(raw)
    assert isinstance(item, InboundMessage), item
    return item


def refused(raw: bytes, envelope_sender: str | None = None) -> Unreadable:
    item = read_email(raw, envelope_sender=envelope_sender)
    assert isinstance(item, Unreadable), item
    return item


GMAIL_PLAIN = (
    b"Return-Path: <olena.kovalenko@gmail.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Date: Tue, 2 Dec 2025 09:14:27 +0200\r\n"
    b"Message-ID: <CAF7k2x0aBcD=9xQ@mail.gmail.com>\r\n"
    b"Subject: " + word("Заявка на кредит", "utf-8").encode() + b"\r\n"
    b"From: " + word("Олена Коваленко", "utf-8").encode() + b" <Olena.Kovalenko@Gmail.com>\r\n"
    b"To: sales@bank.example.ua\r\n"
    b'Content-Type: text/plain; charset="UTF-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    + qp("Добрий день!\nХочу оформити кредит на 200 000 грн.\nМій телефон +380 67 123 45 67.\n\n--\nОлена\n", "utf-8")
)


def test_a_plain_message_gives_sender_name_subject_text_and_thread() -> None:
    item = message(GMAIL_PLAIN)
    assert item.channel == "email" and item.kind == "message"
    assert item.sender == "olena.kovalenko@gmail.com"  # the From address, lower case: what a reply goes to
    assert item.name == "Олена Коваленко"
    assert (
        item.text == "Добрий день!\nХочу оформити кредит на 200 000 грн.\nМій телефон +380 67 123 45 67.\n\n--\nОлена"
    )
    assert item.meta["subject"] == "Заявка на кредит" and item.meta["to"] == "sales@bank.example.ua"
    assert item.event_id == item.thread == "<CAF7k2x0aBcD=9xQ@mail.gmail.com>"
    assert item.reply_to is None
    assert item.at == datetime(2025, 12, 2, 7, 14, 27, tzinfo=UTC)
    assert item.lead["message"].startswith("Заявка на кредит\n\nДобрий день!")


OUTLOOK_HTML_ONLY = (
    b"From: =?windows-1251?Q?"
    + quopri.encodestring("Петро Іваненко".encode("cp1251"), header=True)
    + b"?= <p.ivanenko@firm.example.com.ua>\r\n"
    b"To: Sales <sales@bank.example.ua>\r\n"
    b"Subject: " + word("Запит щодо лізингу", "windows-1251").encode() + b"\r\n"
    b"Date: Wed, 3 Dec 2025 11:02:00 +0000\r\n"
    b"Message-ID: <DB9PR01MB0001@DB9PR01MB0001.eurprd01.prod.outlook.com>\r\n"
    b'Content-Type: text/html; charset="windows-1251"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    + b64(
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<style>p.MsoNormal{margin:0cm}</style></head><body lang=UK>"
        "<p class=MsoNormal>Доброго дня!</p><p class=MsoNormal>Цікавить лізинг для&nbsp;<b>ТОВ «Фірма»</b>:</p>"
        "<ul><li>2 вантажівки</li><li>термін 36 місяців</li></ul>"
        "<div>З повагою,<br>Петро Іваненко<br>+380 44 555 12 34</div><script>track()</script></body></html>",
        "windows-1251",
    )
)


def test_an_html_only_message_is_turned_into_text() -> None:
    item = message(OUTLOOK_HTML_ONLY)
    assert item.sender == "p.ivanenko@firm.example.com.ua" and item.name == "Петро Іваненко"
    assert item.meta["subject"] == "Запит щодо лізингу"
    assert item.text == (
        "Доброго дня!\n\nЦікавить лізинг для ТОВ «Фірма»:\n\n- 2 вантажівки\n- термін 36 місяців\n\n"
        "З повагою,\nПетро Іваненко\n+380 44 555 12 34"
    )
    assert "MsoNormal" not in (item.text or "") and "track()" not in (item.text or "")


ALTERNATIVE_WITH_ATTACHMENT = (
    b"From: Andrii <andrii@ukr.net>\r\n"
    b"To: sales@bank.example.ua\r\n"
    b"Subject: Re: " + word("Ваша пропозиція", "utf-8").encode() + b"\r\n"
    b"Message-ID: <1733150000.123456@ukr.net>\r\n"
    b"In-Reply-To: <reply.1@bank.example.ua>\r\n"
    b"References: <first@ukr.net> <reply.1@bank.example.ua>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + b64("Надсилаю документи.\n\n> Добрий день, чекаємо документи.\n", "utf-8") + b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<div>HTML copy that must not win over the plain part</div>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="passport.pdf"\r\n'
    b'Content-Disposition: attachment; filename="passport.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcTl8uXrp/Og0MTGCg==\r\n"
    b"--outer--\r\n"
)


def test_multipart_alternative_prefers_the_plain_part_and_names_attachments_and_the_message_answered() -> None:
    item = message(ALTERNATIVE_WITH_ATTACHMENT)
    assert item.text == "Надсилаю документи.\n\n> Добрий день, чекаємо документи."  # the quote stays
    assert item.meta["subject"] == "Re: Ваша пропозиція"
    assert item.meta["attachments"] == ["passport.pdf"]
    assert item.reply_to == "<reply.1@bank.example.ua>"  # In-Reply-To: joins the thread it answers
    assert item.name == "Andrii" and item.sender == "andrii@ukr.net"


def test_references_stand_in_for_a_missing_in_reply_to() -> None:
    raw = ALTERNATIVE_WITH_ATTACHMENT.replace(b"In-Reply-To: <reply.1@bank.example.ua>\r\n", b"")
    assert message(raw).reply_to == "<reply.1@bank.example.ua>"


KOI8R = (
    b"From: " + word("Сергей Петров", "koi8-r").encode() + b" <petrov@mail.example.ru>\r\n"
    b"To: sales@bank.example.ua\r\n"
    b"Subject: " + word("Вопрос по депозиту", "koi8-r").encode() + b"\r\n"
    b"Message-ID: <koi8@mail.example.ru>\r\n"
    b"Content-Type: text/plain; charset=koi8-r\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Здравствуйте! Какая ставка по депозиту на год?\r\n".encode("koi8-r")
)


@pytest.mark.parametrize(
    ("raw", "name", "subject", "text"),
    [
        (KOI8R, "Сергей Петров", "Вопрос по депозиту", "Здравствуйте! Какая ставка по депозиту на год?"),
        (
            b"From: =?windows-1251?B?" + base64.b64encode("Ірина Шевчук".encode("cp1251")) + b"?= <iryna@i.ua>\r\n"
            b"Subject: =?windows-1251?Q?" + quopri.encodestring("Ціна".encode("cp1251"), header=True) + b"?=\r\n"
            b"Message-ID: <cp1251@i.ua>\r\n"
            b"Content-Type: text/plain; charset=windows-1251\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n"
            b"\r\n" + qp("Скільки коштує доставка до Львова?\n", "cp1251"),
            "Ірина Шевчук", "Ціна", "Скільки коштує доставка до Львова?",
        ),
        (  # an old mailer: raw 8-bit windows-1251 headers and body, no charset declared anywhere
            "From: Микола Бондар <mykola@meta.ua>\r\nSubject: Потрібна консультація\r\nMessage-ID: <raw@meta.ua>\r\n"
            "\r\nПередзвоніть, будь ласка.\r\n".encode("cp1251"),
            "Микола Бондар", "Потрібна консультація", "Передзвоніть, будь ласка.",
        ),
        (  # the same in UTF-8, also undeclared
            "From: Марія <maria@example.com>\r\nSubject: Заявка\r\nMessage-ID: <raw8@example.com>\r\n"
            "\r\nПривіт!\r\n".encode(),
            "Марія", "Заявка", "Привіт!",
        ),
    ],
)  # fmt: skip
def test_cyrillic_in_every_encoding_mailers_use(raw: bytes, name: str, subject: str, text: str) -> None:
    item = message(raw)
    assert (item.name, item.meta["subject"], item.text) == (name, subject, text)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (b"Auto-Submitted: auto-replied\r\n", "auto-reply (Auto-Submitted: auto-replied)"),
        (b"Auto-Submitted: auto-generated; owner-email=x@y.z\r\n", "auto-reply (Auto-Submitted: auto-generated"),
        (b"X-Autoreply: yes\r\n", "auto-reply (X-Autoreply: yes)"),
        (b"X-Autorespond: Out of office\r\n", "auto-reply (X-Autorespond: Out of office)"),
        (b"Precedence: bulk\r\n", "auto-reply (Precedence: bulk)"),
        (b"Precedence: junk\r\n", "auto-reply (Precedence: junk)"),
        (b"Precedence: auto_reply\r\n", "auto-reply (Precedence: auto_reply)"),
        (b"X-Auto-Response-Suppress: OOF\r\n", "auto-reply (X-Auto-Response-Suppress: OOF)"),
        (b"X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\r\n", "auto-reply (X-Auto-Response-Suppress: DR"),
        (b"X-Auto-Response-Suppress: All\r\n", "auto-reply (X-Auto-Response-Suppress: All)"),
        (b"Return-Path: <>\r\n", "bounce or auto-reply (Return-Path: <>)"),
    ],
)
def test_auto_replies_are_told_apart_and_never_become_leads(headers: bytes, reason: str) -> None:
    raw = (b"From: Olena <olena@example.com>\r\nSubject: Out of office: Re: your offer\r\nMessage-ID: <ooo@x.y>\r\n"
           + headers + b"\r\nI am away until Monday.\r\n")  # fmt: skip
    item = refused(raw)
    assert item.reason.startswith(reason) and item.event_id == "<ooo@x.y>"
    assert item.raw["headers"]["From"] == "Olena <olena@example.com>"  # kept, so a person can look into it


def test_what_only_looks_automatic_is_a_person() -> None:
    raw = (b"From: Olena <olena@example.com>\r\nAuto-Submitted: no\r\nPrecedence: list\r\n"
           b"X-Auto-Response-Suppress: RN, NRN\r\nSubject: hi\r\n\r\nA real question.\r\n")  # fmt: skip
    assert message(raw).text == "A real question."


BOUNCE = (
    b"Return-Path: <>\r\n"
    b"From: Mail Delivery System <MAILER-DAEMON@mx.bank.example.ua>\r\n"
    b"To: sales@bank.example.ua\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <20251202091500.ABC@mx.bank.example.ua>\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
    b"--B\r\n"
    b"Content-Type: message/delivery-status\r\n"
    b"\r\n"
    b"Reporting-MTA: dns; mx.bank.example.ua\r\n"
    b"\r\n"
    b"Final-Recipient: rfc822; nobody@example.com\r\n"
    b"Action: failed\r\n"
    b"Status: 5.1.1\r\n"
    b"--B--\r\n"
)


def test_bounces_are_told_apart() -> None:
    assert refused(BOUNCE).reason == "bounce (multipart/report; report-type=delivery-status)"
    postmaster = b"From: postmaster@example.com\r\nSubject: Delivery failure\r\n\r\nCould not deliver.\r\n"
    assert refused(postmaster).reason == "bounce (from postmaster@example.com)"
    daemon = b"From: MAILER-DAEMON@mx.example.com\r\nSubject: failure\r\n\r\nNo.\r\n"
    assert refused(daemon).reason == "bounce (from mailer-daemon@mx.example.com)"
    receipt = (b"From: a@example.com\r\nSubject: Read: offer\r\n"
               b"Content-Type: multipart/report; report-type=disposition-notification; boundary=X\r\n\r\n"
               b"--X\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--X--\r\n")  # fmt: skip
    assert refused(receipt).reason.startswith("read receipt")
    # The SMTP listener knows the envelope: MAIL FROM:<> is the null sender of bounces and auto-replies.
    plain = b"From: someone@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    assert refused(plain, envelope_sender="").reason == "bounce or auto-reply (MAIL FROM:<>, the null sender)"
    assert isinstance(read_email(plain, envelope_sender="someone@example.com"), InboundMessage)


def test_a_message_without_message_id_is_known_by_its_bytes() -> None:
    raw = b"From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n"
    first, again = message(raw), message(raw)
    assert first.event_id == again.event_id and first.event_id.startswith("sha256:")
    assert first.thread is None
    other = message(raw.replace(b"body", b"other body"))
    assert other.event_id != first.event_id


def test_a_very_long_message_id_is_hashed_to_fit_and_still_threads() -> None:
    long_id = "<" + "x" * 300 + "@example.com>"
    item = message(f"From: a@example.com\r\nMessage-ID: {long_id}\r\n\r\nhi\r\n".encode())
    assert item.event_id.startswith("sha256:") and item.thread == long_id


def test_a_message_with_no_one_to_answer_is_unreadable_with_the_reason() -> None:
    assert refused(b"Subject: who?\r\n\r\nbody\r\n").reason == "no sender address in From: nobody to answer"
    assert refused(b"From: broken <<<@@\r\n\r\nx\r\n").reason == "no sender address in From: nobody to answer"
    local = refused(b"From: root@localhost\r\nSubject: cron\r\n\r\nx\r\n")
    assert local.reason.startswith("the sender's address cannot be answered: e-mail 'root@localhost' is not valid")
    garbage = read_email(b"\x00\xff\xfe garbage \x00")
    assert isinstance(garbage, Unreadable)


def test_an_empty_body_still_makes_a_message_and_the_subject_speaks_for_it() -> None:
    item = message(b"From: a@example.com\r\nSubject: Call me back\r\n\r\n")
    assert item.text is None and item.lead["message"] == "Call me back"


def test_the_leads_own_message_is_cut_to_its_limit_while_the_thread_keeps_the_whole_text() -> None:
    body = ("Рядок листа. " * 800).strip()
    item = message(b"From: a@example.com\r\nSubject: Long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                   + body.encode())  # fmt: skip
    assert item.text == body
    assert len(item.lead["message"]) == MAX_LEAD_MESSAGE and item.lead["message"].endswith("…")


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<div dir="ltr">Добрий день,<div><br></div><div>потрібна консультація.</div></div>',
         "Добрий день,\n\nпотрібна консультація."),  # Gmail: a div a line, <div><br></div> a blank line
        ("<p>one   two\nthree</p><p>four</p>", "one two three\n\nfour"),
        ("<table><tr><td>Ім'я:</td><td>Олег</td></tr><tr><td>Телефон:</td><td>+380501112233</td></tr></table>",
         "Ім'я: Олег\nТелефон: +380501112233"),  # a site form's notification
        ("<pre>  indented\n    code</pre>", "indented\n    code"),
        ("a &amp; b &lt;c&gt; &#1071;", "a & b <c> Я"),
        ("<head><title>T</title></head><body>x<!-- hidden --></body>", "x"),
        ("<p>unclosed <b>bold <i>and italic", "unclosed bold and italic"),
    ],
)  # fmt: skip
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_a_reply_is_threaded_under_the_clients_message_with_a_fresh_id_in_the_senders_domain() -> None:
    mail = reply_mail("Продажі <sales@bank.example.ua>", "olena.kovalenko@gmail.com", "Добрий день, Олено!",
                      "Re: Заявка на кредит", "<CAF7k2x0aBcD=9xQ@mail.gmail.com>")  # fmt: skip
    wire = BytesParser(policy=policy.default).parsebytes(mail.as_bytes())
    assert wire["In-Reply-To"] == "<CAF7k2x0aBcD=9xQ@mail.gmail.com>"
    assert wire["References"] == "<CAF7k2x0aBcD=9xQ@mail.gmail.com>"
    assert str(wire["Message-ID"]).endswith("@bank.example.ua>")
    assert wire["Subject"] == "Re: Заявка на кредит" and b"=?utf-8?" in mail.as_bytes()  # encoded on the wire
    assert wire.get_content().strip() == "Добрий день, Олено!"
    other = reply_mail("sales@bank.example.ua", "a@b.example", "x", "s", None)
    assert other["Message-ID"] != wire["Message-ID"] and "In-Reply-To" not in other


def test_a_reply_that_cannot_be_built_is_refused_for_good() -> None:
    with pytest.raises(DeliveryError) as refused_reply:
        reply_mail("sales@bank.example.ua", "not an address", "x", "s", None)
    assert refused_reply.value.retryable is False
    with pytest.raises(DeliveryError) as injected:
        reply_mail("sales@bank.example.ua", "a@b.example", "x", "s\r\nBcc: everyone@example.com", None)
    assert injected.value.retryable is False


def test_mailbox_names_in_modified_utf7_and_the_position_kept_between_runs() -> None:
    assert mailbox_name("INBOX") == '"INBOX"'
    assert mailbox_name("Заявки") == '"&BBcEMARPBDIEOgQ4-"'  # as Dovecot and every IMAP server spell it
    assert mailbox_name("Sales & Leads") == '"Sales &- Leads"'
    assert mailbox_name('a"b') == '"a\\"b"'
    kept = Position("INBOX", 1796563578, 42)
    assert Position.load(kept.dump()) == kept
    assert Position.load(None) is None and Position.load("12") is None
