"""Read a rules file's text into a RulesFile; errors name the line and the field."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from leadflow.core.errors import LeadflowError
from leadflow.core.rules import RulesFile


class RulesError(LeadflowError):
    """A rules file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def parse_rules(text: str, source: str = "rules.yaml") -> RulesFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "somewhere"
        raise RulesError(source, [f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(source, ["line 1: the rules file must be a mapping (keys like teams:, managers:)"])
    try:
        rules = RulesFile.model_validate(data, context={"defer_cross_checks": True})
    except ValidationError as exc:
        found = [
            ([p for p in err["loc"] if p != "fields"], err["msg"].removeprefix("Value error, "))
            for err in exc.errors(include_url=False)
        ]
        raise RulesError(source, [_where(root, loc, message) for loc, message in found]) from None
    cross = rules.cross_check()
    if cross:
        raise RulesError(source, [_where(root, list(loc), message) for loc, message in cross])
    return rules


def _where(root: Any, loc: list[Any], message: str) -> str:
    line = _line_of(root, loc)
    field = ".".join(str(p) for p in loc) or "(top level)"
    return f"line {line}: {field}: {message}" if line else f"{field}: {message}"


def _line_of(node: Any, loc: list[Any]) -> int | None:
    """Walk the YAML node tree along a Pydantic error location; the deepest node found gives the line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line
