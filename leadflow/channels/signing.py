"""Signatures on outgoing webhooks, so a receiver can tell leadflow's calls from forged or replayed ones.

The header reads ``t=<unix seconds>,v2=<hex HMAC-SHA256>``; the MAC covers ``f"{t}.{delivery_id}."`` followed by
the exact body bytes, where delivery_id is the request's ``X-Leadflow-Delivery`` header. So neither the body, the
time nor the delivery id can be changed without the secret. A receiver recomputes it with the shared secret,
refuses timestamps too far from its own clock (an old, captured request cannot be sent again later), and drops a
delivery id it has already seen (a captured request cannot be sent again now, under its own id or another).
Several ``v2=`` entries may appear (one per secret while a secret is being rotated).

v1, which covered the time and the body but not the delivery id, is no longer made or accepted.

Pure: the caller supplies the time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Leadflow-Signature"
TOLERANCE_SECONDS = 300
_MAX_HEADER = 2048  # a longer header is not ours; do not spend time parsing it
_SCHEME = "v2"
# No dot in a delivery id: "t.id.body" then splits one way only, so no id and body can pass for another pair.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(secret: str | bytes, body: bytes, timestamp: int, delivery_id: str) -> str:
    return hmac.new(_key(secret), f"{timestamp}.{delivery_id}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int, delivery_id: str | int) -> str:
    """The X-Leadflow-Signature header value for this body, sent at this Unix time under this delivery id."""
    if not _key(secret):
        raise ValueError("the webhook secret is empty; a signature made with it would prove nothing")
    if not _DELIVERY_ID.fullmatch(str(delivery_id)):
        raise ValueError(f"delivery id {str(delivery_id)!r} must be 1 to 64 letters, digits, '-' or '_'")
    return f"t={int(timestamp)},{_SCHEME}={_mac(secret, body, int(timestamp), str(delivery_id))}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    delivery_id: str | int | None,
    now_unix: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True when header (X-Leadflow-Signature) is a valid signature, made with secret within tolerance seconds of
    now, of this body sent under this delivery_id (X-Leadflow-Delivery).

    Pass both headers as received (None when absent). A true answer proves the request is leadflow's and recent;
    it is a repeat when its delivery id was seen before, which only the receiver can tell.
    """
    if not header or len(header) > _MAX_HEADER or not _key(secret):
        return False
    delivery = "" if delivery_id is None else str(delivery_id)
    if not _DELIVERY_ID.fullmatch(delivery):
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):  # not '²'
                return False
            timestamp = int(value)
        elif name == _SCHEME:
            candidates.append(value)
        # Other schemes (the retired v1, a future v3) are skipped, so receivers keep working while one is added.
    if timestamp is None or not candidates:
        return False
    # Both directions: a timestamp far in the future would otherwise stay replayable for a long time.
    if abs(now_unix - timestamp) > tolerance:
        return False
    expected = _mac(secret, body, timestamp, delivery)
    # Check every candidate so the time taken does not depend on which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
