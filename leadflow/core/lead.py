"""The shape of an inbound lead, before and after cleaning, and the lenient reading of what a channel sent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.text import scrub_json

# Limits that keep one careless integration from filling the database.
MAX_TEXT = 4000
MAX_SHORT = 200
# Fields that say how to reach the client; a lead needs one of them, valid, to be worth a call.
CONTACT_FIELDS = ("phone", "email", "messenger_id")
# A lead with none of these has nothing in it at all.
CONTENT_FIELDS = ("name", "phone", "email", "messenger_id", "company", "message", "external_id")


class LeadIn(BaseModel):
    """A lead as a channel delivers it. Every field is optional; fields it does not know go to `extra`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: str = Field("web", min_length=1, max_length=40, pattern=r"^[a-z0-9_.-]+$")
    source: str | None = Field(None, max_length=MAX_SHORT)
    external_id: str | None = Field(None, max_length=MAX_SHORT)
    name: str | None = Field(None, max_length=MAX_SHORT)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
    messenger_id: str | None = Field(
        None, max_length=MAX_SHORT, description="The client's id in the channel: a Telegram or Viber user id, ..."
    )
    company: str | None = Field(None, max_length=MAX_SHORT)
    region: str | None = Field(None, max_length=60)
    product: str | None = Field(None, max_length=MAX_SHORT)
    language: str | None = Field(None, max_length=10)
    budget: Decimal | None = Field(None, ge=0, le=Decimal("1e12"), max_digits=16, decimal_places=2)
    message: str | None = Field(None, max_length=MAX_TEXT)
    utm_source: str | None = Field(None, max_length=MAX_SHORT)
    utm_medium: str | None = Field(None, max_length=MAX_SHORT)
    utm_campaign: str | None = Field(None, max_length=MAX_SHORT)
    utm_term: str | None = Field(None, max_length=MAX_SHORT)
    utm_content: str | None = Field(None, max_length=MAX_SHORT)
    extra: dict[str, Any] | None = Field(
        None, description="Anything else the channel sent (unknown fields land here too); kept verbatim."
    )

    @model_validator(mode="before")
    @classmethod
    def _unknown_to_extra(cls, data: Any) -> Any:
        # Integrations send what they send: a field leadflow has no column for is kept, not refused.
        if not isinstance(data, dict):
            return data
        unknown = {k: v for k, v in data.items() if k not in LEAD_FIELDS}
        if not unknown:
            return data
        known = {k: v for k, v in data.items() if k in LEAD_FIELDS}
        given = known.get("extra")
        known["extra"] = {**unknown, **given} if isinstance(given, dict) else unknown if given is None else given
        return known

    @field_validator("*", mode="before")
    @classmethod
    def _text_of(cls, value: Any, info: Any) -> Any:
        if info.field_name == "extra":
            return value
        # A number where text is meant ("phone": 380671234567) is the text of its digits.
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and info.field_name != "budget":
            return _number_text(value)
        # HTML forms send empty strings for untouched inputs.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_name(cls, value: Any) -> Any:
        # "Telegram Bot" and "telegram-bot" are one channel; only the characters a key may hold are kept.
        if isinstance(value, str):
            return re.sub(r"[^a-z0-9_.-]+", "-", value.strip().casefold()).strip("-") or None
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _decimal_comma(cls, value: Any) -> Any:
        # Spreadsheets in Ukraine and Russia write 1 500,50; people type 1,500.50 too.
        if isinstance(value, str):
            text = value.replace("\u00a0", "").replace(" ", "")
            if "," in text and "." not in text:
                text = text.replace(",", ".")
            elif "," in text:
                text = text.replace(",", "")
            return text
        return value

    @field_validator("region", "language")
    @classmethod
    def _upper_or_lower(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        return value.upper() if info.field_name == "region" else value.lower()


LEAD_FIELDS = frozenset(LeadIn.model_fields)


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_lead(data: Mapping[str, Any]) -> tuple[LeadIn, list[FieldProblem], dict[str, Any]]:
    """Read what a channel sent as leniently as a person would: keep every field that can be kept.

    Text is made safe to store (control characters removed), over-long text is cut to its limit, and a field that
    cannot be read at all (a budget of "lots") is left out. Each of these is returned as a problem naming the
    field, so the lead can be flagged for the desk. Returns the lead, the problems, and the request as it will
    be stored (as it came, but safe to store).
    """
    payload, changed = scrub_json(dict(data), cut=True)
    stored = payload
    payload = dict(payload)
    problems: list[FieldProblem] = []
    if changed:
        problems.append(FieldProblem("body", "control characters or broken text were removed from the request"))
    for _ in range(len(LEAD_FIELDS) + 1):
        try:
            return LeadIn.model_validate(payload), problems, stored
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "body"
                if name not in payload:
                    raise InvalidInput.one(name, error["msg"]) from None
                value = payload.pop(name)
                limit = (error.get("ctx") or {}).get("max_length")
                if error["type"] == "string_too_long" and isinstance(value, str) and limit:
                    payload[name] = value.strip()[:limit]
                    problems.append(FieldProblem(name, f"{name} was longer than {limit} characters and was cut"))
                elif name == "extra":
                    payload["extra"] = {"value": value}
                    problems.append(FieldProblem(name, "extra was not an object; kept under extra.value"))
                else:
                    problems.append(FieldProblem(name, f"{name} '{_shown(value)}' was not kept: {error['msg']}"))
    raise InvalidInput.one("body", "the lead could not be read")  # pragma: no cover - every pass removes a field


def extra_of(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `extra` of a stored request: its extra object and the fields leadflow has no column for."""
    if not raw:
        return {}
    given = raw.get("extra")
    unknown = {k: v for k, v in raw.items() if k not in LEAD_FIELDS}
    return {**unknown, **given} if isinstance(given, dict) else unknown


@dataclass(frozen=True, slots=True)
class CleanLead:
    """A lead after normalisation: what routing, dedupe and junk rules look at."""

    channel: str
    source: str | None = None
    external_id: str | None = None
    name: str | None = None
    phone: str | None = None  # E.164
    phone_type: str | None = None  # mobile, landline, other
    email: str | None = None  # normalised, lower case
    company: str | None = None
    company_key: str | None = None
    region: str | None = None
    product: str | None = None
    language: str | None = None
    budget: Decimal | None = None
    message: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    messenger_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # What could not be kept as given (a mistyped phone beside a good e-mail): shown to the desk, never dropped.
    problems: tuple[FieldProblem, ...] = ()
    # Qualification, filled in after cleaning so rules can route on it.
    score: int | None = None
    temperature: str | None = None
    department: str | None = None
    win_probability: float | None = None

    @property
    def reachable(self) -> bool:
        """There is a valid way to reach the client."""
        return bool(self.phone or self.email or self.messenger_id)

    def value_of(self, name: str) -> Any:
        """A lead field by name, for rule conditions (utm_* and extra.* included)."""
        if name.startswith("utm_"):
            return self.utm.get(name)
        if name.startswith("extra."):
            return self.extra.get(name[6:])
        return getattr(self, name, None)
