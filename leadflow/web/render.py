"""Rendering the desk's pages: one Jinja2 environment, the viewer's language and formats in every template, the
labels of leadflow's own words (statuses, events, outcomes), and the answer a form post gets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from leadflow import __version__
from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.rules import RulesFile
from leadflow.services.context import Leadflow, utcnow
from leadflow.web.i18n import LANGUAGES, N_, NAMES, translations
from leadflow.web.pages import environment
from leadflow.web.viewer import Viewer, from_htmx

M = TypeVar("M", bound=BaseModel)

# leadflow's own words, translated where they are shown. A status the rules file labels itself shows that label.
STATUS_LABELS = {
    "new": N_("New"), "assigned": N_("Assigned"), "contacted": N_("Contacted"), "qualified": N_("Qualified"),
    "converted": N_("Converted"), "junk": N_("Junk"), "lost": N_("Lost"), "won": N_("Won"), "merged": N_("Merged"),
}  # fmt: skip
_DEFAULT_LABELS = {"new": "New", "assigned": "Assigned", "contacted": "Contacted", "qualified": "Qualified",
                   "converted": "Converted", "junk": "Junk", "lost": "Lost"}  # fmt: skip
EVENT_LABELS = {
    "lead.received": N_("Received"), "lead.scored": N_("Scored"), "lead.flagged": N_("Flagged"),
    "lead.junked": N_("Set aside as junk"), "lead.duplicate": N_("Matched to the client"),
    "lead.duplicate_suspected": N_("Possible duplicate"), "lead.merged": N_("Folded into the open lead"),
    "lead.repeat": N_("The client wrote again"), "lead.queued": N_("Queued at the quality desk"),
    "lead.left_desk": N_("Left the quality desk"), "lead.desk_overdue": N_("Waited too long at the desk"),
    "lead.assigned": N_("Assigned"), "lead.unassigned": N_("Left unassigned"), "lead.escalated": N_("Escalated"),
    "lead.chain_exhausted": N_("End of the chain"), "lead.reassigned": N_("Reassigned"),
    "lead.contacted": N_("First contact"), "lead.contact_attempt": N_("Contact attempt"),
    "lead.status_changed": N_("Status changed"), "lead.restored": N_("Restored"), "lead.note": N_("Note"),
    "lead.converted": N_("Converted"), "lead.erased": N_("Personal data erased"),
    "message.received": N_("The client wrote"), "message.sent": N_("Reply sent"),
    "client.email_opened": N_("The client opened the e-mail"), "client.link_clicked": N_("The client followed a link"),
    "client.page_visited": N_("The client visited a page"),
    "client.form_resubmitted": N_("The client sent the form again"),
    "client.meeting_booked": N_("The client booked a meeting"), "client.offer_viewed": N_("The client viewed the offer"),
    "task.created": N_("Task set"), "task.done": N_("Task done"), "task.cancelled": N_("Task cancelled"),
    "task.reassigned": N_("Task handed over"), "task.overdue": N_("Task overdue"),
    "automation.fired": N_("Automation"), "automation.waiting": N_("Automation scheduled"),
    "automation.cancelled": N_("Automation cancelled"), "automation.failed": N_("Automation not done"),
    "automation.stopped": N_("Chain of automations stopped"), "automation.notified": N_("Automation notice"),
    "automation.webhook": N_("Automation webhook"), "cadence.started": N_("Call cadence started"),
    "cadence.stopped": N_("Call cadence stopped"), "cadence.exhausted": N_("Call cadence ended unanswered"),
    "lead.tagged": N_("Tags changed"), "lead.updated": N_("Fields changed"),
}  # fmt: skip
MESSAGE_STATES = {
    "received": N_("received"), "queued": N_("sending"), "sent": N_("sent"), "delivered": N_("delivered"),
    "read": N_("read"), "failed": N_("not delivered"),
}  # fmt: skip
OUTCOME_LABELS = {
    "connected": N_("Connected"), "no_answer": N_("No answer"), "busy": N_("Busy"),
    "wrong_number": N_("Wrong number"), "sent": N_("Message sent"), "set": N_("Meeting set"),
}  # fmt: skip
KIND_LABELS = {"call": N_("Call"), "message": N_("Message"), "meeting": N_("Meeting")}
PHONE_TYPE_LABELS = {"mobile": N_("mobile"), "landline": N_("landline"), "other": N_("other")}
TEMPERATURE_LABELS = {"cold": N_("cold"), "warm": N_("warm"), "hot": N_("hot"), "red_hot": N_("red-hot")}
CHANNEL_LABELS = {
    "web": N_("website"), "form": N_("site form"), "webhook": N_("webhook"), "api": N_("API"), "csv": N_("file"), "email": N_("e-mail"),
    "telegram": "Telegram", "viber": "Viber", "whatsapp": "WhatsApp", "call": N_("call"), "chat": N_("chat"),
    "facebook_leads": N_("Facebook lead form"), "instagram_leads": N_("Instagram lead form"),
    "messenger": "Messenger", "instagram": "Instagram",
}  # fmt: skip


class Labels:
    """leadflow's words in one reader's language."""

    def __init__(self, viewer: Viewer, rules: RulesFile) -> None:
        self._ = viewer.gettext
        self.rules = rules
        self._statuses = {s.key: s for s in rules.funnel}

    def status(self, key: str | None) -> str:
        if key is None:
            return "—"
        status = self._statuses.get(key)
        if status is not None and status.label and status.label != _DEFAULT_LABELS.get(key):
            return status.label  # the team's own word
        return (
            self._(STATUS_LABELS[key]) if key in STATUS_LABELS else (status.label if status and status.label else key)
        )

    def event(self, type_: str) -> str:
        return self._(EVENT_LABELS[type_]) if type_ in EVENT_LABELS else type_

    def outcome(self, key: str | None) -> str:
        return self._(OUTCOME_LABELS[key]) if key in OUTCOME_LABELS else (key or "")

    def kind(self, key: str | None) -> str:
        return self._(KIND_LABELS[key]) if key in KIND_LABELS else (key or "")

    def phone_type(self, key: str | None) -> str:
        return self._(PHONE_TYPE_LABELS[key]) if key in PHONE_TYPE_LABELS else (key or "")

    def temperature(self, key: str | None) -> str:
        return self._(TEMPERATURE_LABELS[key]) if key in TEMPERATURE_LABELS else (key or "")

    def message_state(self, key: str | None) -> str:
        return self._(MESSAGE_STATES[key]) if key in MESSAGE_STATES else (key or "")

    def channel(self, key: str | None) -> str:
        label = CHANNEL_LABELS.get(key or "")
        return self._(label) if label and label[0].islower() else (label or key or "")


def iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else ""


def render_page(
    request: Request, viewer: Viewer, template: str, *, status: int = 200, section: str = "", **context: Any
) -> HTMLResponse:
    return HTMLResponse(render_fragment(request, viewer, template, section=section, **context), status_code=status)


def render_fragment(request: Request, viewer: Viewer, template: str, *, section: str = "", **context: Any) -> str:
    rules: RulesFile = request.app.state.leadflow.rules
    return environment().get_template(template).render(
        viewer=viewer, _=viewer.gettext, ngettext=translations(viewer.language).ngettext, lang=viewer.language,
        fmt=viewer.formats, labels=Labels(viewer, rules), rules=rules, section=section, iso=iso,
        now_iso=iso(utcnow()), version=__version__, languages=[(code, NAMES[code]) for code in LANGUAGES],
        path=request.url.path, **context,
    )  # fmt: skip


def after_change(request: Request, back: str, fragment: str | None = None) -> Response:
    """What a form post answers: the updated fragment to htmx (or, with none, a full page load of `back`: a 303
    would be followed inside the fragment); a redirect (post, redirect, get) to a plain form."""
    if from_htmx(request):
        if fragment is not None:
            return HTMLResponse(fragment)
        return Response(status_code=204, headers={"HX-Redirect": back})
    return RedirectResponse(back, status_code=303)


def form_value(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def form_model(model: type[M], values: Mapping[str, Any]) -> M:
    """An API body model from form fields: the same checks as the API's, each refusal naming its field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = [FieldProblem(".".join(str(part) for part in e["loc"]) or "form", e["msg"])
                    for e in exc.errors(include_url=False)]  # fmt: skip
        raise InvalidInput(problems) from None


def plain_number(text: str) -> str:
    """A number as people type it ("1 200,50") as Python reads it ("1200.50")."""
    return text.replace(" ", "").replace("\u00a0", "").replace(",", ".")


def shown_ids(text: str | None) -> set[int]:
    """The lead ids a live list says it shows (its hidden `shown` field), at most 500."""
    return {int(part) for part in (text or "").split(",")[:500] if part.strip().isdigit()}


def actor_name(actor: str | None) -> str:
    """An event's actor as people read it: "user:olena" reads "olena"; a key keeps its kind ("key:crm");
    leadflow's own processes ("sla", "batch") read as they are."""
    if not actor:
        return ""
    kind, _, name = actor.partition(":")
    return name if kind == "user" and name else actor


def app_of(request: Request) -> Leadflow:
    found: Leadflow = request.app.state.leadflow
    return found


def html_fragment(request: Request, viewer: Viewer, template: str, **context: Any) -> Response:
    """A fragment a live page or htmx asks for."""
    return HTMLResponse(render_fragment(request, viewer, template, **context))
