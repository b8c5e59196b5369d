"""Automations: triggers in the rules file, what sets them off, what they do, and the loops they must not make.

A trigger is *when* something happens to a lead (it was created, entered a status, a call went unanswered, the
client opened the offer...), *if* the lead then matches a condition (the routing `when:` language, plus the lead's
state: status, owner, contacted, tags), *then* a list of actions in order (a task, a notification, a reply to the
client, a status, a field or a tag, an outgoing webhook, a call cadence). `after:` delays the actions: the condition
is checked again when the time comes, and the actions are cancelled when it no longer holds.

Pure: no I/O and no clock. The shell (services/automation.py) turns the event log into `Occurrence`s, asks
`fires()` which triggers fire, and carries out their steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from leadflow.core.lead import CleanLead
from leadflow.core.schedule import WorkingHours, format_duration, is_open, next_open, parse_duration

KEY_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
AutoKey = Annotated[str, Field(min_length=1, max_length=60, pattern=KEY_RE)]
AutoDuration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
TEMPERATURE_ORDER = ("cold", "warm", "hot", "red_hot")

# What can set a trigger off, and what each means (docs/automation.md has the long form).
EVENTS: dict[str, str] = {
    "lead_created": "a new lead arrived",
    "status_entered": "the lead entered a status",
    "status_left": "the lead left a status",
    "contact": "a contact or an attempt was recorded",
    "deal_won": "the lead was closed as won",
    "deal_lost": "the lead was closed as lost",
    "idle": "nothing happened on the lead for a while",
    "sla_breached": "the owner missed the first-contact deadline",
    "chain_ended": "the escalation chain ended",
    "temperature_reached": "the lead became at least this warm",
    "score_reached": "the lead's score rose to at least this",
    "client_event": "the client did something (opened, clicked, booked...)",
    "message_received": "the client wrote",
    "task_overdue": "a task of the lead is overdue",
}
EventName = Literal[
    "lead_created", "status_entered", "status_left", "contact", "deal_won", "deal_lost", "idle", "sla_breached",
    "chain_ended", "temperature_reached", "score_reached", "client_event", "message_received", "task_overdue",
]  # fmt: skip
# What a client does that leadflow hears of (POST /api/v1/events, its own tracked links and open pixel).
ClientEventType = Literal["email_opened", "link_clicked", "page_visited", "form_resubmitted", "meeting_booked",
                          "offer_viewed"]  # fmt: skip
CLIENT_EVENT_TYPES: tuple[str, ...] = get_args(ClientEventType)
CONTACT_KINDS = ("call", "message", "meeting")
CONTACT_OUTCOMES = ("connected", "no_answer", "busy", "wrong_number", "sent", "set")
# Fields a `set:` step may change (and extra.<name>); the rest are the client's own words or leadflow's verdicts.
SETTABLE_FIELDS = ("product", "region", "language", "budget", "company", "source")
# The lead's state, beside its fields, that a trigger's `if:` may test.
STATE_FIELDS = ("status", "open", "contacted", "owner", "team", "tags", "sla_state", "channel", "queue")
ASSIGNEE_HINT = "owner, head, role:<role>, manager:<key>"
DEFAULT_MAX_DEPTH = 5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


# --- when ----------------------------------------------------------------------------------------------------


class When(_Strict):
    """What sets a trigger off. Written `when: lead_created`, or with what it narrows to:
    `when: {status_entered: thinking}`, `{contact: {kind: call, outcome: [no_answer, busy]}}`, `{idle: 3d}`,
    `{temperature_reached: hot}`, `{score_reached: 15}`, `{client_event: offer_viewed}`."""

    event: EventName
    statuses: tuple[str, ...] = ()  # status_entered / status_left; empty: any
    kinds: tuple[Literal["call", "message", "meeting"], ...] = ()
    outcomes: tuple[Literal["connected", "no_answer", "busy", "wrong_number", "sent", "set"], ...] = ()
    period: AutoDuration | None = None  # idle
    temperature: Literal["cold", "warm", "hot", "red_hot"] | None = None
    score: int | None = None
    client_events: tuple[ClientEventType, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _written(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"event": value}
        if not isinstance(value, dict) or "event" in value:
            return value
        if len(value) != 1:
            raise ValueError(f"when: names one event ({', '.join(EVENTS)}), with what it narrows to")
        ((event, arg),) = value.items()
        if event in ("status_entered", "status_left"):
            return {"event": event, "statuses": _listify(arg)}
        if event == "contact":
            if isinstance(arg, dict):
                return {"event": event, "kinds": _listify(arg.get("kind", [])),
                        "outcomes": _listify(arg.get("outcome", [])),
                        **({"_unknown": arg} if set(arg) - {"kind", "outcome"} else {})}  # fmt: skip
            return {"event": event, "outcomes": _listify(arg)}
        if event == "idle":
            return {"event": event, "period": arg}
        if event == "temperature_reached":
            return {"event": event, "temperature": arg}
        if event == "score_reached":
            return {"event": event, "score": arg}
        if event == "client_event":
            return {"event": event, "client_events": _listify(arg)}
        return {"event": event}

    @model_validator(mode="after")
    def _complete(self) -> When:
        if self.event == "idle" and not self.period:
            raise ValueError("when: {idle: <period>} needs how long, like {idle: 3d}")
        if self.event == "temperature_reached" and self.temperature is None:
            raise ValueError("when: {temperature_reached: hot} needs the temperature")
        if self.event == "score_reached" and self.score is None:
            raise ValueError("when: {score_reached: 15} needs the score")
        return self

    def matches(self, occ: Occurrence) -> bool:
        if occ.event != self.event:
            return False
        if self.statuses and occ.status not in self.statuses:
            return False
        if self.kinds and occ.kind not in self.kinds:
            return False
        if self.outcomes and occ.outcome not in self.outcomes:
            return False
        if self.temperature is not None and occ.temperature != self.temperature:
            return False
        if self.score is not None and occ.score != self.score:
            return False
        return not (self.client_events and occ.client_event not in self.client_events)

    def describe(self) -> str:
        if self.event in ("status_entered", "status_left") and self.statuses:
            verb = "entered" if self.event == "status_entered" else "left"
            return f"the lead {verb} {' or '.join(self.statuses)}"
        if self.event == "idle" and self.period:
            return f"nothing happened on the lead for {format_duration(self.period)}"
        if self.event == "temperature_reached":
            return f"the lead became {self.temperature}"
        if self.event == "client_event" and self.client_events:
            return f"the client: {' or '.join(self.client_events)}"
        if self.event == "contact" and (self.kinds or self.outcomes):
            return f"a {'/'.join(self.kinds) or 'contact'} ended {' or '.join(self.outcomes) or 'any way'}"
        return EVENTS[self.event]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """Something that happened to a lead, as a trigger's `when:` sees it."""

    event: str
    status: str | None = None
    kind: str | None = None
    outcome: str | None = None
    temperature: str | None = None
    score: int | None = None
    client_event: str | None = None

    def describe(self) -> str:
        """In words: "the lead entered a status (thinking)", "a contact or an attempt was recorded (call, busy)"."""
        details = [d for d in (self.status, self.kind, self.outcome, self.temperature, self.client_event) if d]
        if self.score is not None:
            details.append(str(self.score))
        base = EVENTS.get(self.event, self.event)
        return f"{base} ({', '.join(details)})" if details else base


# --- if ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadState(CleanLead):
    """A lead as a trigger's `if:` sees it: its fields and where it stands."""

    id: int | None = None
    status: str | None = None
    open: bool = True
    contacted: bool = False
    owner: str | None = None
    team: str | None = None
    tags: tuple[str, ...] = ()
    sla_state: str | None = None
    queue: str | None = None


class Check(_Strict):
    """`if:` of a trigger: the routing `when:` language over the lead's fields and state. `tags: vip` holds when
    the lead has the tag (a list: any of them); `open`, `contacted` are true or false."""

    fields: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        return {"fields": value} if isinstance(value, dict) and "fields" not in value else value

    @cached_property
    def _parts(self) -> tuple[Any, frozenset[str]]:
        from leadflow.core.rules import Condition

        rest = {k: v for k, v in self.fields.items() if k != "tags"}
        tags = self.fields.get("tags")
        wanted = frozenset(str(t).casefold() for t in _listify(tags)) if tags is not None else frozenset()
        return Condition(fields=rest), wanted

    def holds(self, lead: LeadState) -> bool:
        condition, tags = self._parts
        if tags and not tags & {t.casefold() for t in lead.tags}:
            return False
        return bool(condition.matches(lead))

    def miss(self, lead: LeadState) -> str:
        """Why the lead fails the check ("contacted True, accepts contacted False"); "" if it holds."""
        condition, tags = self._parts
        if tags and not tags & {t.casefold() for t in lead.tags}:
            return f"tags {', '.join(lead.tags) or 'none'}, wants one of {', '.join(sorted(tags))}"
        return str(condition.miss(lead))

    def problems(self) -> list[str]:
        from leadflow.core.rules import CONDITION_FIELDS, Condition, check_condition

        unknown = [n for n in self.fields if n not in CONDITION_FIELDS and n not in STATE_FIELDS
                   and not n.startswith("extra.")]  # fmt: skip
        if unknown:
            known = ", ".join(sorted({*CONDITION_FIELDS, *STATE_FIELDS}))
            return [f"if: names {unknown[0]!r}, which is no lead field or state; use one of {known}, or extra.<name>"]
        rest = {k: v for k, v in self.fields.items() if k not in STATE_FIELDS}
        try:
            check_condition(Condition(fields=rest))
        except ValueError as exc:
            return [f"if: {exc}"]
        return []


# --- then ----------------------------------------------------------------------------------------------------


def _assignee(value: str) -> str:
    if value in ("owner", "head") or re.fullmatch(r"(role|manager):[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        return value
    raise ValueError(f"'{value}' is not someone a task or a message can go to: use {ASSIGNEE_HINT}")


Assignee = Annotated[str, BeforeValidator(lambda v: _assignee(str(v)))]
DUE_WORDS = ("next_working_hour", "next_working_day")
_AT_TIME = re.compile(r"^(?:at\s+)?(\d{1,2}):(\d{2})$")


def _due(value: Any) -> str:
    text = str(value).strip()
    if text in DUE_WORDS or _AT_TIME.match(text):
        if (m := _AT_TIME.match(text)) and not (int(m[1]) < 24 and int(m[2]) < 60):
            raise ValueError(f"due '{text}': a time of day is 00:00 to 23:59")
        return text
    try:
        parse_duration(text)
    except ValueError:
        raise ValueError(f"due '{text}' is not understood: write a duration (2h, 2d), a time of day (at 10:00), "
                         "next_working_hour or next_working_day") from None  # fmt: skip
    return text


Due = Annotated[str, BeforeValidator(_due)]


class TaskStep(_Strict):
    title: str = Field(..., min_length=1, max_length=200, description="A template: {{ lead.name }} and the like.")
    assignee: Assignee = "owner"
    due: Due | None = None
    kind: Literal["task", "call"] = "task"
    note: str | None = Field(None, max_length=2000)


class NotifyStep(_Strict):
    to: Annotated[str, BeforeValidator(lambda v: "team" if v == "team" else _assignee(str(v)))] = "owner"
    text: str = Field(..., min_length=1, max_length=2000, description="A template.")


class StatusStep(_Strict):
    to: AutoKey
    reason: str | None = Field(None, max_length=500)


class WebhookStep(_Strict):
    url: str = Field(..., pattern=r"^https?://\S+$", max_length=2000)


class CadenceStep(_Strict):
    start: bool = True
    policy: AutoKey | None = None  # the first cadence for the lead's team or rule when absent


class Step(_Strict):
    """One action, written as a one-key mapping: `- task: {...}`, `- status: thinking`, `- tag: vip`..."""

    task: TaskStep | None = None
    notify: NotifyStep | None = None
    reply: AutoKey | None = None
    status: StatusStep | None = None
    set: dict[str, str | int | float | bool | None] | None = None
    tag: tuple[str, ...] | None = None
    untag: tuple[str, ...] | None = None
    webhook: WebhookStep | None = None
    cadence: CadenceStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError("each step of then: is one action: task, notify, reply, status, set, tag, untag, "
                             "webhook or cadence")  # fmt: skip
        ((name, arg),) = value.items()
        if name == "status" and isinstance(arg, str):
            return {"status": {"to": arg}}
        if name in ("tag", "untag"):
            return {name: _listify(arg)}
        if name == "webhook" and isinstance(arg, str):
            return {"webhook": {"url": arg}}
        if name == "cadence" and isinstance(arg, str):
            if arg not in ("start", "stop"):
                raise ValueError(f"cadence: {arg} is not understood: use start, stop or {{start: <policy>}}")
            return {"cadence": {"start": arg == "start"}}
        if name == "cadence" and isinstance(arg, dict) and "start" in arg and not isinstance(arg["start"], bool):
            return {"cadence": {"start": True, "policy": arg["start"]}}
        return value

    @property
    def action(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


class Trigger(_Strict):
    key: AutoKey
    when: When
    check: Check = Field(default_factory=Check, alias="if")
    after: AutoDuration | None = Field(None, description="Wait this long, then act if the condition still holds.")
    then: tuple[Step, ...] = Field(..., min_length=1)
    enabled: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReplyTemplate(_Strict):
    """A message to the client. Several with one key are its variants: the one whose channel, language and
    temperature fit the lead best is sent (a variant that names none of them fits every lead)."""

    key: AutoKey
    channel: str | None = None
    language: Literal["uk", "ru", "en"] | None = None
    temperature: Literal["cold", "warm", "hot", "red_hot"] | None = None
    subject: str | None = Field(None, max_length=300)
    text: str = Field(..., min_length=1, max_length=4096)


class Automations(_Strict):
    triggers: tuple[Trigger, ...] = ()
    max_depth: int = Field(DEFAULT_MAX_DEPTH, ge=1, le=20, description="Automations set off by automations: at "
                           "most this many in a row, then the chain stops with an event saying so.")  # fmt: skip

    @cached_property
    def enabled(self) -> tuple[Trigger, ...]:
        return tuple(t for t in self.triggers if t.enabled)

    @cached_property
    def idle(self) -> tuple[Trigger, ...]:
        return tuple(t for t in self.enabled if t.when.event == "idle")

    @cached_property
    def by_event(self) -> Mapping[str, tuple[Trigger, ...]]:
        found: dict[str, list[Trigger]] = {}
        for t in self.enabled:
            found.setdefault(t.when.event, []).append(t)
        return {k: tuple(v) for k, v in found.items()}

    def fires(self, occ: Occurrence, lead: LeadState) -> list[Trigger]:
        """The triggers this occurrence sets off: their `if:` holds now (a delayed one checks it again then)."""
        return [t for t in self.by_event.get(occ.event, ()) if t.when.matches(occ) and t.check.holds(lead)]


# --- templates -----------------------------------------------------------------------------------------------

_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, auto_reload=False)
TEMPLATE_LEAD_KEYS = ("id", "name", "phone", "email", "company", "product", "region", "language", "budget",
                      "channel", "source", "status", "temperature", "score", "message")  # fmt: skip


@lru_cache(maxsize=512)
def compile_template(source: str) -> Template:
    return _ENV.from_string(source)


def template_context(lead: LeadState, owner_name: str | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    card = {k: getattr(lead, k, None) for k in TEMPLATE_LEAD_KEYS}
    card["budget"] = str(lead.budget) if lead.budget is not None else None
    return {"lead": card, "owner": {"name": owner_name}, "extra": dict(lead.extra), **(extra or {})}


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """A template with the lead's fields; a field with no value renders as nothing."""
    shown = {k: ({kk: ("" if vv is None else vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
             for k, v in context.items()}  # fmt: skip
    return compile_template(source).render(shown).strip()


_SAMPLE = LeadState(channel="form", id=1, name="Sample", phone="+380501234567", email="a@example.com",
                    company="Sample", product="credit", region="UA", language="uk", status="new")  # fmt: skip


def template_problem(source: str) -> str | None:
    """Why a template cannot be used (a syntax error, a field leadflow does not have), or None."""
    try:
        render_text(source, template_context(_SAMPLE, "Manager") | {"trigger": "sample"})
    except TemplateError as exc:
        return f"template does not render: {exc.message or exc}"
    return None


def pick_template(templates: Sequence[ReplyTemplate], key: str, channel: str, language: str | None,
                  temperature: str | None) -> ReplyTemplate | None:  # fmt: skip
    """The variant of `key` that fits the lead best: each of channel, language, temperature it names must match,
    and the more it names the better; the file's order breaks ties."""
    best: tuple[int, ReplyTemplate] | None = None
    for t in templates:
        if t.key != key:
            continue
        wanted = ((t.channel, channel), (t.language, language), (t.temperature, temperature))
        if any(want is not None and (have or "").casefold() != want.casefold() for want, have in wanted):
            continue
        fit = sum(want is not None for want, _ in wanted)
        if best is None or fit > best[0]:
            best = (fit, t)
    return best[1] if best else None


# --- due times -----------------------------------------------------------------------------------------------


def due_at(spec: str | None, now: datetime, hours: WorkingHours) -> tuple[datetime | None, str]:
    """When a task is due, in the assignee's working hours and time zone, with how it was worked out."""
    if spec is None:
        return None, "no due time"
    zone = ZoneInfo(hours.timezone)
    if spec == "next_working_hour":
        at = next_open(hours, now)
        if at is None:
            return now, "due now: the assignee has no working time ahead"
        return at, "due now, on shift" if at == now else "due when the assignee's shift opens"
    if spec == "next_working_day":
        local = now.astimezone(zone)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
        at = next_open(hours, tomorrow)
        if at is None:
            return tomorrow, "due tomorrow: the assignee has no working time ahead"
        if is_open(hours, tomorrow) and hours.always_open:
            at = datetime.combine(local.date() + timedelta(days=1), time(9), zone)
            return at.astimezone(now.tzinfo), "due at 09:00 next day (the assignee's hours are always open)"
        return at.astimezone(now.tzinfo), f"due when the assignee's next working day starts ({hours.timezone})"
    if m := _AT_TIME.match(spec):
        local = now.astimezone(zone)
        at = datetime.combine(local.date(), time(int(m[1]), int(m[2])), zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), time(int(m[1]), int(m[2])), zone)
        return at.astimezone(now.tzinfo), f"due at {m[1].zfill(2)}:{m[2]} {hours.timezone}"
    period = parse_duration(spec)
    return now + period, f"due in {format_duration(period)}"


# --- loops ---------------------------------------------------------------------------------------------------


def produces(step: Step, outcomes: Mapping[str, str | None], cadence_status: Mapping[str | None, str | None]
             ) -> list[Occurrence]:  # fmt: skip
    """What a step can set off in turn (for the loop check): a status change enters one status and leaves another,
    a task can fall overdue, a reply by e-mail can be opened and clicked, a cadence schedules tasks and ends in
    a status."""
    found: list[Occurrence] = []

    def status(to: str) -> None:
        found.extend([Occurrence("status_entered", status=to), Occurrence("status_left")])
        if outcomes.get(to) == "won":
            found.append(Occurrence("deal_won"))
        if outcomes.get(to) == "lost":
            found.append(Occurrence("deal_lost"))

    if step.status is not None:
        status(step.status.to)
    if step.task is not None and step.task.due is not None:
        found.append(Occurrence("task_overdue"))
    if step.reply is not None:
        found += [Occurrence("client_event", client_event=e) for e in ("email_opened", "link_clicked")]
    if step.cadence is not None and step.cadence.start:
        found.append(Occurrence("task_overdue"))
        to = cadence_status.get(step.cadence.policy)
        if to:
            status(to)
    return found


def _could_fire(when: When, occ: Occurrence) -> bool:
    """Whether an occurrence of this shape may set `when` off (a status left is any status)."""
    if occ.event != when.event:
        return False
    if occ.event == "status_left":
        return True
    return when.matches(occ) or (occ.event == "client_event" and not when.client_events)


def find_loop(triggers: Iterable[Trigger], outcomes: Mapping[str, str | None],
              cadence_status: Mapping[str | None, str | None]) -> list[str] | None:  # fmt: skip
    """A chain of triggers whose actions set each other off forever, as the words that name it, or None."""
    enabled = [t for t in triggers if t.enabled]
    edges: dict[str, list[tuple[str, str]]] = {}
    for t in enabled:
        for step in t.then:
            for occ in produces(step, outcomes, cadence_status):
                for other in enabled:
                    if _could_fire(other.when, occ):
                        edges.setdefault(t.key, []).append((other.key, f"{step.action} → {occ.describe()}"))
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[tuple[str, str]] = []

    def visit(key: str) -> list[str] | None:
        state[key] = 1
        for nxt, how in edges.get(key, ()):
            path.append((key, how))
            if state.get(nxt) == 1:
                start = next(i for i, (k, _) in enumerate(path) if k == nxt)
                return [f"{k} ({h})" for k, h in path[start:]] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
            path.pop()
        state[key] = 2
        return None

    for t in enabled:
        if t.key not in state and (cycle := visit(t.key)):
            return cycle
    return None
