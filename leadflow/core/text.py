"""Text from outside, made safe to store: the same answer on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text, and no database driver can encode a lone UTF-16 surrogate (JSON's "\\ud800")
as UTF-8, while SQLite would keep both. Control characters other than tab and line breaks carry nothing a person
typed, so they are removed; a lone surrogate becomes U+FFFD, the replacement character.
"""

from __future__ import annotations

import json
import re
from typing import Any

from leadflow.core.errors import InvalidInput

# C0 controls except \t \n \r, DEL, C1 controls; and lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|[\ud800-\udfff]")
MAX_DEPTH = 32  # nesting levels kept from a channel's payload; deeper is not a lead, it is an attack


def _replace(match: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= match.group() <= "\udfff" else ""


def scrub(value: str) -> str:
    """The text without control characters, with lone surrogates replaced (unchanged when already clean)."""
    return _UNSAFE.sub(_replace, value) if _UNSAFE.search(value) else value


def is_clean(value: str) -> bool:
    return _UNSAFE.search(value) is None


def unsafe_character(value: str) -> str | None:
    """The first character `scrub` would remove or replace, as U+XXXX, for error messages."""
    found = _UNSAFE.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


TOO_DEEP = "(nested too deep)"


class TooDeep(ValueError):
    """A JSON value nested deeper than MAX_DEPTH."""


def scrub_json(value: Any, depth: int = 0, *, cut: bool = False) -> tuple[Any, bool]:
    """A JSON value with every string (keys too) scrubbed; returns (value, changed).

    Deeper than MAX_DEPTH raises TooDeep, or with `cut` the deeper part is replaced by the text TOO_DEEP.
    """
    if depth > MAX_DEPTH:
        if cut:
            return TOO_DEEP, True
        raise TooDeep(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        clean = scrub(value)
        return clean, clean is not value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for k, v in value.items():
            key = scrub(k) if isinstance(k, str) else k
            item, item_changed = scrub_json(v, depth + 1, cut=cut)
            out[key] = item
            changed = changed or item_changed or key is not k
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [scrub_json(v, depth + 1, cut=cut) for v in value]
        if any(c for _, c in items):
            return [v for v, _ in items], True
        return value, False
    return value, False


_INT64 = 2**63 - 1


def _int_or_text(digits: str) -> int | str:
    # Python refuses to read ints of over 4,300 digits, and no database column holds more than 64 bits: a number
    # that large is kept as the text it was sent as.
    value = int(digits) if len(digits) <= 20 else None
    return value if value is not None and -_INT64 - 1 <= value <= _INT64 else digits


def read_json(body: bytes | str) -> Any:
    """JSON as a client sent it; anything that cannot be read is an InvalidInput naming the body."""
    try:
        return json.loads(body, parse_int=_int_or_text)
    except json.JSONDecodeError as exc:
        raise InvalidInput.one(
            "body", f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput.one("body", "the body is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise InvalidInput.one("body", "the body is nested too deep to be read") from None
