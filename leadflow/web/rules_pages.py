"""The rules in force, for heads of sales and admins: the teams, people, routing, SLA, scoring, junk and funnel of
the rules file the app runs, what `leadflow check-rules` says of the file on disk, and a dry run: where a pasted lead
would go now, and why (the same dry run as the API's and the CLI's; nothing is stored)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from leadflow.bootstrap import read_rules
from leadflow.core.automation import Step, When
from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.lead import read_lead
from leadflow.core.policy import Action
from leadflow.core.rules import Condition, Range, RulesFile, wanted_text
from leadflow.core.rules_text import RulesError
from leadflow.core.schedule import format_duration
from leadflow.core.text import read_json
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.explain import dry_run
from leadflow.web.render import app_of, form_value, render_fragment, render_page
from leadflow.web.viewer import Viewer, WebRoute, from_htmx, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Reader = Annotated[Viewer, page(Action.RULES_READ)]

# The simple fields of the dry-run form, in the order they are shown (the rest of a lead goes in as JSON).
LEAD_INPUTS = ("name", "phone", "email", "product", "region", "language", "budget", "channel", "message")


# -- Reading the rules file as people do --------------------------------------------------------------------------


def condition_text(condition: Condition | None, anything: str) -> str:
    """A `when:` as a sentence: "product = leasing and budget ≥ 1000"; `anything` when it has no test."""
    if condition is None or not condition.fields:
        return anything
    parts = []
    for name, want in condition.fields.items():
        plain = not isinstance(want, Range | list) and want is not None
        parts.append(f"{name} = {want}" if plain else f"{name} {wanted_text(want)}")  # the engine's own wording
    return " and ".join(parts)


def hours_text(spec: Mapping[str, Any] | str | None, always: str) -> str:
    """Working hours as the file writes them, on one line ("mon-fri 09:00-18:00; sat 10:00-14:00")."""
    if spec is None:
        return always
    if isinstance(spec, str):
        return always if spec.strip().lower() in ("always", "24/7") else spec
    return "; ".join(f"{day} {', '.join(map(str, v)) if isinstance(v, list) else v}" for day, v in spec.items())


def check_file(path: Path, running: RulesFile) -> dict[str, Any]:
    """What `leadflow check-rules` says of the rules file: its problems (each names its line and field), or none;
    and whether the file on disk is still the one the app runs (a changed file takes effect at the next start)."""
    try:
        found = read_rules(path)
    except RulesError as exc:
        return {"path": str(path), "problems": exc.problems, "rules": None, "differs": True}
    return {"path": str(path), "problems": [], "rules": found, "differs": found != running}


def when_text(when: When) -> str:
    """A trigger's `when:` as the rules file writes it: "status_entered thinking", "idle 3d"."""
    detail = [*when.statuses, *when.kinds, *when.outcomes, *when.client_events]
    if when.period is not None:
        detail.append(format_duration(when.period))
    if when.temperature is not None:
        detail.append(when.temperature)
    if when.score is not None:
        detail.append(str(when.score))
    return " ".join((when.event, *detail))


def step_text(step: Step) -> str:
    """A step as the rules file writes it: "task: Call back (call, 2d, owner)", "status: qualified"."""
    if step.task is not None:
        return f"task: {step.task.title} ({step.task.kind}, {step.task.due or '—'}, {step.task.assignee})"
    if step.notify is not None:
        return f"notify {step.notify.to}: {step.notify.text}"
    if step.status is not None:
        return f"status: {step.status.to}"
    if step.cadence is not None:
        return f"cadence: {'start' if step.cadence.start else 'stop'}" + (
            f" {step.cadence.policy}" if step.cadence.policy else ""
        )
    if step.webhook is not None:
        return f"webhook: {step.webhook.url.split('?')[0]}"  # a query may carry the receiver's token
    value = getattr(step, step.action)
    shown = ", ".join(map(str, value)) if isinstance(value, tuple) else value
    return f"{step.action}: {shown}"


def _rules_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    _ = viewer.gettext
    rules = app_of(request).rules
    return {
        "check": check_file(Path(request.app.state.settings.rules), rules),
        "ordered": rules.ordered_rules,
        "when": lambda c: condition_text(c, _("any lead")),
        "when_text": when_text,
        "step_text": step_text,
        "check_text": lambda check: condition_text(
            Condition(fields=check.fields) if check.fields else None, _("any lead")
        ),
        "hours": lambda spec: hours_text(spec, _("always")),
        "lead_inputs": LEAD_INPUTS,
        "values": {},
        "result": None,
        "problems": [],
    }


@router.get("/rules")
def rules_page(request: Request, viewer: Reader) -> Response:
    return render_page(request, viewer, "app/rules.html", section="rules", **_rules_context(request, viewer))


# -- The dry run --------------------------------------------------------------------------------------------------


def lead_data(form: Mapping[str, Any]) -> dict[str, Any]:
    """The lead the form describes: the JSON pasted (an object, as a channel posts it), else the simple fields."""
    pasted = form_value(form, "lead_json")
    if pasted:
        data = read_json(pasted)
        if not isinstance(data, dict):
            raise InvalidInput.one("body", 'a lead is a JSON object, like {"name": ..., "phone": ...}')
        return data
    return {name: form_value(form, name) for name in LEAD_INPUTS if form_value(form, name)}


def _try(app: Leadflow, form: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """The dry run's answer, or the problems that stop it (as intake would refuse the lead: nothing is stored)."""
    try:
        lead, problems, _ = read_lead(lead_data(form))
        return dry_run(app, lead, utcnow(), problems), []
    except InvalidInput as exc:
        return None, exc.problems


@router.post("/rules/dry-run")
async def try_a_lead(request: Request, viewer: Reader) -> Response:
    form = await request.form()
    app = app_of(request)
    result, problems = await to_thread.run_sync(_try, app, form)
    status = 422 if problems else 200
    found: dict[str, Any] = {
        "result": result,
        "problems": problems,
        "names": {m.key: m.name for m in app.rules.managers},
    }
    if from_htmx(request):
        return HTMLResponse(render_fragment(request, viewer, "app/_dry_run.html", **found), status_code=status)
    context = await to_thread.run_sync(_rules_context, request, viewer)
    values = {name: form_value(form, name) for name in (*LEAD_INPUTS, "lead_json")}
    return render_page(request, viewer, "app/rules.html", status=status, section="rules",
                       **{**context, **found, "values": values})  # fmt: skip
