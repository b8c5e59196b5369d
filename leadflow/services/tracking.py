"""Tracked links and an open pixel in the e-mail replies leadflow sends.

Each http(s) address in a reply goes out as `{base_url}/r/<token>`, and the HTML part ends with a 1x1 image at
`{base_url}/r/<token>.gif`; the originals are kept in the message row's meta ("links"), and the stored body stays
what the manager wrote. A token names the message (and the link) and carries an HMAC-SHA256 of that name with a key
derived from the installation's secret, so nobody can make one for another message or another address: the
redirect goes only to an address leadflow itself sent (never an open redirect).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from html import escape
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from leadflow.services.accounts import key_secret
from leadflow.services.context import Leadflow

# An address as people write it in a message; what ends a sentence after it is not part of it.
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}»"
MAX_LINKS = 50  # distinct addresses tracked in one reply; the rest go out as written
MAX_URL = 2000  # longer addresses go out as written
MAC_CHARS = 16  # 12 bytes of the HMAC, base64url: 96 bits nobody guesses
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
_NAME = re.compile(r"m([1-9][0-9]{0,18})(?:l([0-9]{1,4}))?")
_PURPOSE = b"leadflow tracked links"  # the tracking key is not the key that hashes API keys

_keys: WeakKeyDictionary[Engine, bytes] = WeakKeyDictionary()


def tracking_key(app: Leadflow, conn: Connection | None = None) -> bytes:
    """The key tokens are signed with: derived from the installation's secret (the `instance` table's
    key_secret), read once per app. `conn`: the caller's transaction, when it has one."""
    found = _keys.get(app.engine)
    if found is None:
        if conn is not None:
            secret = key_secret(conn)
        else:
            with app.engine.begin() as own:  # a secret it has to make (a restore lost it) must be kept
                secret = key_secret(own)
        found = _keys[app.engine] = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
    return found


def _mac(key: bytes, name: str) -> str:
    digest = hmac.new(key, name.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[: MAC_CHARS * 3 // 4]).decode()


def make_token(key: bytes, message_id: int, link: int | None = None) -> str:
    """The token of a message's open pixel (link None) or of its link number `link` (0-based)."""
    signed = f"m{message_id}" if link is None else f"m{message_id}:l{link}"
    return signed.replace(":", "") + _mac(key, signed)


def read_token(key: bytes, token: str) -> tuple[int, int | None] | None:
    """(message id, link number or None for the pixel) of a token leadflow made; None for anything else."""
    name, mac = token[:-MAC_CHARS], token[-MAC_CHARS:]
    found = _NAME.fullmatch(name)
    if found is None:
        return None
    message_id, link = int(found.group(1)), int(found.group(2)) if found.group(2) is not None else None
    signed = f"m{message_id}" if link is None else f"m{message_id}:l{link}"
    if signed.replace(":", "") != name or not hmac.compare_digest(_mac(key, signed), mac):
        return None
    return message_id, link


@dataclass(frozen=True, slots=True)
class TrackedMail:
    """A reply as it goes out: the text with tracked addresses, its HTML part, and the originals by number."""

    text: str
    html: str
    links: list[str]


def track_reply(conn: Connection, app: Leadflow, message_id: int, text: str) -> TrackedMail | None:
    """The tracked form of an e-mail reply; None when tracking is off (LEADFLOW_CHANNELS__EMAIL_TRACKING=false)."""
    if not app.channels.email_tracking:
        return None
    return tracked_mail(app.base_url, tracking_key(app, conn), message_id, text)


def tracked_mail(base_url: str, key: bytes, message_id: int, text: str) -> TrackedMail:
    links: list[str] = []
    pieces: list[tuple[str, str | None]] = []  # (text, its tracked address when it is a link)
    at = 0
    for url, start, end in find_links(text):
        if url not in links and len(links) >= MAX_LINKS:
            continue
        if url not in links:
            links.append(url)
        pieces += [(text[at:start], None), (url, f"{base_url}/r/{make_token(key, message_id, links.index(url))}")]
        at = end
    pieces.append((text[at:], None))
    plain = "".join(tracked or piece for piece, tracked in pieces)
    body = "".join(
        f'<a href="{escape(tracked)}">{escape(piece)}</a>' if tracked else escape(piece).replace("\n", "<br>\n")
        for piece, tracked in pieces
    )  # fmt: skip
    pixel = f"{base_url}/r/{make_token(key, message_id)}.gif"
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
        f"<div>{body}</div>\n"
        f'<img src="{escape(pixel)}" width="1" height="1" alt="" style="display:block;border:0">\n'
        "</body></html>\n"
    )
    return TrackedMail(plain, html, links)


def find_links(text: str) -> list[tuple[str, int, int]]:
    """Every http(s) address in the text: (address, start, end), without the punctuation that ends a sentence."""
    found = []
    for match in _URL.finditer(text):
        url = match.group(0)
        while url and url[-1] in _TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
            url = url[:-1]
        if len(url) > len("https://") and len(url) <= MAX_URL:
            found.append((url, match.start(), match.start() + len(url)))
    return found
