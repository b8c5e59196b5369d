"""The shape of an inbound lead, before and after cleaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Limits that keep one careless integration from filling the database.
MAX_TEXT = 4000
MAX_SHORT = 200


class LeadIn(BaseModel):
    """A lead as a channel delivers it: every field optional except that junk rules later ask for a contact."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: str = Field("web", min_length=1, max_length=40, pattern=r"^[a-z0-9_.-]+$")
    source: str | None = Field(None, max_length=MAX_SHORT)
    external_id: str | None = Field(None, max_length=MAX_SHORT)
    name: str | None = Field(None, max_length=MAX_SHORT)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
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
    extra: dict[str, Any] | None = Field(None, description="Anything else the channel sent; kept verbatim.")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        # HTML forms send empty strings for untouched inputs.
        if isinstance(value, str) and not value.strip():
            return None
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
    # Qualification, filled in after cleaning so rules can route on it.
    score: int | None = None
    temperature: str | None = None
    department: str | None = None
    win_probability: float | None = None

    def value_of(self, name: str) -> Any:
        """A lead field by name, for rule conditions (utm_* included)."""
        if name.startswith("utm_"):
            return self.utm.get(name)
        return getattr(self, name, None)
