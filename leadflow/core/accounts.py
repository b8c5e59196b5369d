"""Lead-to-account matching: which company a new lead belongs to, by its company name or its corporate e-mail.

A person at a company the team already works with belongs to that account and its owner, even when nobody has
recorded the company yet: an open lead or a contact with the same company (by name, fuzzily) or the same
corporate e-mail domain is enough. Free-mail domains say nothing about a company and never match.
"""

from __future__ import annotations

from collections.abc import Iterable

# Public mailbox providers common in Ukraine, the region and worldwide; the rules file can add more
# (dedupe.free_mail_domains).
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "rocketmail.com", "hotmail.com",
        "hotmail.co.uk", "outlook.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "aim.com",
        "proton.me", "protonmail.com", "pm.me", "tutanota.com", "tuta.io", "zoho.com", "zohomail.com", "gmx.com",
        "gmx.net", "gmx.de", "web.de", "t-online.de", "mail.com", "email.com", "inbox.com", "fastmail.com", "hey.com",
        "yandex.com", "yandex.ru", "yandex.ua", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru",
        "rambler.ru", "lenta.ru", "autorambler.ru", "myrambler.ru", "ro.ru", "ukr.net", "i.ua", "meta.ua", "bigmir.net",
        "email.ua", "online.ua", "ua.fm", "gala.net", "e-mail.ua", "3g.ua", "football.ua", "tut.by", "mail.by",
        "onet.pl", "wp.pl", "o2.pl", "interia.pl", "op.pl", "gazeta.pl", "seznam.cz", "centrum.cz", "libero.it",
        "virgilio.it", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "qq.com", "163.com", "126.com",
        "naver.com",
    }
)  # fmt: skip


def corporate_domain(email: str | None, extra_free: Iterable[str] = ()) -> str | None:
    """The e-mail's domain when it can name a company; None for free mail or no e-mail."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].lower()
    if domain in FREE_MAIL_DOMAINS or domain in extra_free:
        return None
    return domain
