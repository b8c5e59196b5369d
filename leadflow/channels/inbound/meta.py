"""What WhatsApp and Lead Ads share, both being Meta's: the webhook's signature, the subscription handshake, and how
the Graph API says it refused a call.

Meta signs every webhook call with the app's secret: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
body>`. Before sending any, it checks the address once with a GET (`hub.mode=subscribe`, `hub.verify_token`,
`hub.challenge`), which must answer the challenge as it came. Meta retries a call not answered 2xx for days, so a
call is refused only when it is not Meta's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from leadflow.channels.senders import DeliveryError, retry_after
from leadflow.core.conversation import prove
from leadflow.core.errors import InvalidInput

SIGNATURE_HEADER = "x-hub-signature-256"
SIGNATURE_PREFIX = "sha256="
MAX_CHALLENGE = 200  # Meta's challenge is a number; anything much longer is not Meta

Check = Callable[[bytes, Mapping[str, str]], None]

# Graph API error codes after which the same call may succeed later: Meta is busy or down, or a rate limit.
TRANSIENT_CODES = frozenset({
    1, 2, 4, 17, 32, 341, 613,  # unknown, temporarily unavailable, app, user, page and account rate limits
    80001, 80004, 80007,  # page and WhatsApp Business Account rate limits
    130429, 131000, 131016, 131048, 131056, 131057, 133004,  # WhatsApp: throughput, something went wrong,
})  # fmt: skip  # ... service unavailable, spam rate limit, pair rate limit, maintenance, server unavailable
# Graph API error codes that mean the token is refused or lacks a permission: a person must act.
TOKEN_CODES = frozenset({102, 190, 10, 200, 299})


def signature(app_secret: str, body: bytes) -> str:
    """The value Meta puts in X-Hub-Signature-256 for this body."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(channel: str, app_secret: str) -> Check:
    """The webhook's check: the body's HMAC with the app's secret, compared in constant time.

    The signature covers the body only (there is no signed timestamp), so a replayed call is a repeat of events
    already taken, which the dedupe by the services' own ids drops."""

    def check(body: bytes, headers: Mapping[str, str]) -> None:
        prove(channel, headers.get(SIGNATURE_HEADER, "").strip().lower(), signature(app_secret, body), "signature")

    return check


def check_handshake(channel: str, verify_token: str, params: Mapping[str, str]) -> str:
    """The subscription handshake: the challenge to echo when Meta gave the right verify token.

    Raises Refusal without a token (401) or with a wrong one (403), and InvalidInput when the call is no handshake."""
    prove(channel, params.get("hub.verify_token"), verify_token, "verify token")
    if params.get("hub.mode") != "subscribe":
        raise InvalidInput.one("hub.mode", "Meta's handshake says hub.mode=subscribe")
    challenge = params.get("hub.challenge", "")
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        raise InvalidInput.one("hub.challenge", "Meta's handshake sends a short challenge to echo")
    return challenge


# -- The Graph API's refusals ---------------------------------------------------------------------------------------


def graph_error(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a Graph API answer (empty when the answer has none)."""
    try:
        answer = response.json()
    except ValueError:
        return {}
    error = answer.get("error") if isinstance(answer, dict) else None
    return error if isinstance(error, dict) else {}


def graph_failure(service: str, response: httpx.Response, token_setting: str) -> DeliveryError:
    """What went wrong, said for people, and whether trying again later may help.

    `token_setting` is the variable to check when the token is refused (the token itself is never quoted)."""
    error = graph_error(response)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    said = " ".join(str(error.get("message") or response.reason_phrase or "no description").split())
    if isinstance(details, str) and details.strip() and details.strip() not in said:
        said += f": {details.strip()}"
    retryable = (
        response.status_code >= 500 or response.status_code == 429 or code in TRANSIENT_CODES
        or error.get("is_transient") is True
    )  # fmt: skip
    hint = f"; the token was refused: check {token_setting}" if code in TOKEN_CODES else ""
    label = f"{response.status_code}, code {code}" if code is not None else str(response.status_code)
    return DeliveryError(f"{service} refused ({label}): {said[:500]}{hint}", retryable=retryable,
                         retry_after=retry_after(response))  # fmt: skip


def unreachable(service: str, exc: httpx.HTTPError) -> DeliveryError:
    """A call that got no answer: tried again later. Only the exception's kind is kept (its text may quote the URL)."""
    return DeliveryError(f"{service} did not answer: {type(exc).__name__}", retryable=True)
