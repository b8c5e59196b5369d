"""Pydantic types for what management requests send: text refused when it holds what `text.scrub` would remove,
and money amounts documented as they are checked.

A lead is taken in whatever it carries (intake scrubs it and flags the lead); a manager's name, a status reason or
a contact note is typed by someone who can send it again, so a control character there is refused with 422 naming
the field. The rule is a JSON-schema pattern, so the OpenAPI document states it and clients can check it first.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from leadflow.core.text import unsafe_character

# The characters `text.scrub` removes: C0 controls except tab and line breaks, DEL, C1 controls. A lone surrogate
# (JSON "\ud800") is refused before the pattern runs, since it is not Unicode text at all.
CLEAN_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"

CleanText = Annotated[str, Field(pattern=CLEAN_TEXT_PATTERN)]


def _refuse_unsafe(value: Any) -> Any:
    """Every string in a JSON value, keys too, must be clean; the error says where the first bad one is."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found = unsafe_character(item)
            if found:
                at = f" at {where}" if where else ""
                raise PydanticCustomError(
                    "unsafe_character", "contains the character {char}{at}, which text cannot hold",
                    {"char": found, "at": at},
                )  # fmt: skip
        elif isinstance(item, dict):
            for key, inner in item.items():
                stack.append((where, key))
                stack.append((f"{where}.{key}" if where else str(key), inner))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", inner) for i, inner in enumerate(item))
    return value


CleanJson = Annotated[dict[str, Any], AfterValidator(_refuse_unsafe)]


# Pydantic documents a Decimal as any number or any string; an amount is at most 10^12 with at most two decimals.
Money = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("1e12"), max_digits=16, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 10**12, "multipleOf": 0.01},
                {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$"},
            ]
        }
    ),
]
