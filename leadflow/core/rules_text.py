"""Read a rules file's text into a RulesFile; errors name the line and the field."""

from __future__ import annotations

import copy
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
        raise RulesError(source, [EMPTY])
    if not isinstance(data, dict):
        raise RulesError(source, ["line 1: the rules file must be a mapping (keys like teams:, managers:)"])
    try:
        rules = RulesFile.model_validate(data, context=_DEFER)
    except ValidationError as exc:
        found = _one_per_union(data, _located(exc))
        # The references between sections are checked too, on the file without its broken fields, so one pass
        # shows every problem; a reference is only reported when the fields it depends on are sound.
        salvaged = _without_broken_fields(data, [loc for loc, _ in found])
        cross = salvaged.cross_check() if salvaged is not None else []
        problems = [_where(root, loc, message) for loc, message in found]
        problems += [p for p in (_where(root, list(loc), message) for loc, message in cross) if p not in problems]
        raise RulesError(source, sorted(problems, key=_line_number)) from None
    cross = rules.cross_check()
    if cross:
        raise RulesError(source, [_where(root, list(loc), message) for loc, message in cross])
    return rules


EMPTY = (
    "line 1: the rules file is empty: declare at least teams:, managers: and routing: "
    "(the bundled leadflow/examples/rules.yaml is a start; docs/rules.md describes every key)"
)
_DEFER = {"defer_cross_checks": True}
# Lists of keyed records other sections refer to: dropping one whole would make every reference to it look wrong.
_REFERENCED = {("teams",), ("managers",), ("funnel",), ("routing",), ("routing", "rules")}


def _located(exc: ValidationError) -> list[tuple[list[Any], str]]:
    return [
        ([p for p in err["loc"] if p != "fields"], err["msg"].removeprefix("Value error, "))
        for err in exc.errors(include_url=False)
    ]


def _one_per_union(data: dict[str, Any], found: list[tuple[list[Any], str]]) -> list[tuple[list[Any], str]]:
    """A value that fits none of a union's types fails once per type; keep the one that got furthest in."""
    deepest: dict[tuple[Any, ...], int] = {}
    for loc, _ in found:
        field = _field_of(data, loc) or ()
        if len(field) < len(loc):
            deepest[field] = max(deepest.get(field, 0), len(loc))
    return [(loc, m) for loc, m in found if len(loc) >= deepest.get(_field_of(data, loc) or (), 0)]


def _without_broken_fields(data: dict[str, Any], broken: list[list[Any]], rounds: int = 3) -> RulesFile | None:
    """The file with each broken field left out (so its default applies), or None when that does not validate.

    A required field left out stays an error: then None, and only the type errors are reported.
    """
    pruned = copy.deepcopy(data)
    for _ in range(rounds):
        found = {_field_of(pruned, loc) for loc in broken}
        targets = [t for t in found if t is not None and t not in _REFERENCED]
        if len(targets) < len(found):
            return None
        for path in sorted(targets, key=len, reverse=True):
            node: Any = pruned
            for part in path[:-1]:
                node = node[part]
            del node[path[-1]]
        try:
            return RulesFile.model_validate(pruned, context=_DEFER)
        except ValidationError as exc:
            broken = [loc for loc, _ in _located(exc)]
    return None


def _field_of(data: dict[str, Any], loc: list[Any]) -> tuple[Any, ...] | None:
    """The path of the deepest mapping key along an error's location: the field to leave out."""
    node: Any = data
    path: list[Any] = []
    found: tuple[Any, ...] | None = None
    for part in loc:
        if isinstance(node, dict) and part in node:
            found = (*path, part)
        elif not (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            break
        path.append(part)
        node = node[part]
    return found


def _line_number(problem: str) -> int:
    head = problem.split(":", 1)[0]
    return int(head.removeprefix("line ")) if head.startswith("line ") and head[5:].isdigit() else 0


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
