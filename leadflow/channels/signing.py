"""Signatures on outgoing webhooks, so a receiver can tell leadflow's calls from forged or replayed ones.

The header reads ``t=<unix seconds>,v1=<hex HMAC-SHA256>``; the MAC covers ``f"{t}."`` followed by the exact body
bytes, so neither the body nor the time can be changed without the secret. A receiver recomputes it with the
shared secret and refuses timestamps too far from its own clock, which stops an old, captured request from being
sent again. Several ``v1=`` entries may appear (one per secret while a secret is being rotated).

Pure: the caller supplies the time.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Leadflow-Signature"
TOLERANCE_SECONDS = 300
_MAX_HEADER = 2048  # a longer header is not ours; do not spend time parsing it


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(secret: str | bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The X-Leadflow-Signature header value for this body sent at this Unix time."""
    if not _key(secret):
        raise ValueError("the webhook secret is empty; a signature made with it would prove nothing")
    return f"t={int(timestamp)},v1={_mac(secret, body, int(timestamp))}"


def verify_signature(
    secret: str | bytes, body: bytes, header: str | None, now_unix: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """True when the header is a valid signature of body made with secret within tolerance seconds of now."""
    if not header or len(header) > _MAX_HEADER or not _key(secret):
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
        # Unknown schemes (a future v2) are skipped, so old receivers keep working when one is added.
    if timestamp is None or not candidates:
        return False
    # Both directions: a timestamp far in the future would otherwise stay replayable for a long time.
    if abs(now_unix - timestamp) > tolerance:
        return False
    expected = _mac(secret, body, timestamp)
    # Check every candidate so the time taken does not depend on which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
