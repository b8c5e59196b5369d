"""The rules file: teams, managers, the funnel, junk and routing rules. One schema, validated with Pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadflow.core.automation import SETTABLE_FIELDS, Automations, ReplyTemplate, find_loop, template_problem
from leadflow.core.cadence import CadencePolicy
from leadflow.core.lead import LEAD_FIELDS, CleanLead
from leadflow.core.messages import check_overrides
from leadflow.core.schedule import WorkingHours, format_duration, parse_duration, parse_working_hours
from leadflow.core.strategies import STRATEGIES

Key = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
EXTENSION_PATTERN = r"^[A-Za-z0-9*#+._-]+$"  # what phone systems call an internal number: 101, 2*5, sip-anna
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
MATCH_FIELDS = ("region", "product", "language")
CONDITION_FIELDS = (LEAD_FIELDS - {"extra"}) | {"phone_type", "score", "temperature", "department", "win_probability"}
NUMERIC_FIELDS = frozenset({"budget", "score", "win_probability"})


def _is_extra(name: str) -> bool:
    """`extra.<name>`: a field the channel sent that leadflow keeps under `extra`."""
    return name.startswith("extra.") and len(name) > 6


TEMPERATURES = ("cold", "warm", "hot", "red_hot")
Temperature = Literal["cold", "warm", "hot", "red_hot"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(_Strict):
    key: Key
    label: str | None = None
    open: bool = Field(True, description="Counts toward a manager's load while the lead has this status.")
    outcome: Literal["won", "lost"] | None = Field(None, description="A closed lead's result, for conversion.")


DEFAULT_FUNNEL = (
    Status(key="new", label="New"),
    Status(key="assigned", label="Assigned"),
    Status(key="contacted", label="Contacted"),
    Status(key="qualified", label="Qualified"),
    Status(key="converted", label="Converted", open=False, outcome="won"),
    Status(key="junk", label="Junk", open=False),
    Status(key="lost", label="Lost", open=False, outcome="lost"),
)
REQUIRED_STATUSES = ("new", "assigned", "contacted", "junk")


Sticky = Literal["always", "available", "never"]


class Team(_Strict):
    key: Key
    name: str | None = None
    timezone: str | None = None
    head: Key | None = Field(None, description="Manager key of the head of the team.")
    hours: dict[str, Any] | str | None = Field(None, description="Default working hours of its managers.")
    telegram_chat_id: str | None = Field(None, description="The team chat: escalations are announced here.")
    slack_webhook_url: str | None = Field(None, description="A Slack-compatible incoming webhook for the team.")
    scoring: bool = Field(True, description="false: this team's leads are not scored (no score, no temperature).")
    desk: bool = Field(False, description="New leads for this team wait in the quality desk queue first.")
    desk_sla: Duration = Field(timedelta(minutes=15), description="How long a lead may wait at the desk.")
    sticky: Sticky = Field("available", description="A repeat lead of a client who has an owner: always to the owner, "
                           "to the owner when available (else by the rules), or never (always by the rules).")  # fmt: skip
    sticky_wait: Duration = Field(timedelta(0), description="sticky: available also waits for an owner who is off "
                                  "shift when their shift opens within this long.")  # fmt: skip
    match_accounts: bool = Field(False, description="Match leads to the company accounts the team already has.")


class Manager(_Strict):
    key: Key
    name: str
    team: Key
    email: str | None = None
    telegram_chat_id: str | None = None
    regions: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int = Field(50, ge=0, le=100_000, description="Most open leads at once.")
    hours: dict[str, Any] | str | None = Field(None, description="Working hours; the team's when absent.")
    active: bool = True
    absent: bool = False
    vacations: tuple[Vacation, ...] = Field((), description="Days off, inclusive: no new leads then.")
    on_call: bool = Field(False, description="Takes leads off-shift where a rule says out_of_hours: on_call.")
    weight: int = Field(1, ge=1, le=100, description="Share in weighted round robin.")
    tier: int = Field(2, ge=1, le=9, description="1 = the best (senior) managers; for best-to-best routing.")
    role: Literal["manager", "desk"] = Field("manager", description="desk: a quality-desk operator, never routed to.")
    accepts: Condition | None = Field(None, description="Only leads that match, in the language of a rule's when:.")
    extension: str | None = Field(None, min_length=1, max_length=40, pattern=EXTENSION_PATTERN,
                                  description="Their extension (internal number) in the phone system: calls answered "
                                  "or made from it are their contacts.")  # fmt: skip

    @field_validator("extension", mode="before")
    @classmethod
    def _extension_text(cls, value: Any) -> Any:
        # `extension: 101` in YAML is a number; the phone system reports it as text.
        return str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else value

    @field_validator("accepts", mode="before")
    @classmethod
    def _wrap_accepts(cls, value: Any) -> Any:
        return {"fields": value} if isinstance(value, dict) and "fields" not in value else value

    @field_validator("accepts")
    @classmethod
    def _known_accepts(cls, value: Condition | None) -> Condition | None:
        return check_condition(value) if value is not None else None

    @field_validator("regions")
    @classmethod
    def _upper(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.upper() for v in values)

    @field_validator("languages", "products")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.lower() for v in values)


class Vacation(_Strict):
    start: date = Field(..., alias="from")
    end: date = Field(..., alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Range(_Strict):
    """A test on one field: numeric bounds, or `contains` (any of these words, for text like the message)."""

    gte: Decimal | None = None
    gt: Decimal | None = None
    lte: Decimal | None = None
    lt: Decimal | None = None
    contains: tuple[str, ...] = ()

    @field_validator("contains", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


ConditionValue = str | int | float | bool | None | list[str | int | float] | Range


class Condition(_Strict):
    """`when:` of a rule: every field must match; a list means any of; a range compares numbers."""

    fields: dict[str, ConditionValue]

    @cached_property
    def _compiled(self) -> tuple[tuple[str, ConditionValue | frozenset[object]], ...]:
        # Lists become sets of folded values once, not on every lead.
        return tuple(
            (name, frozenset(_norm(w) for w in want) if isinstance(want, list) else want)
            for name, want in self.fields.items()
        )

    @cached_property
    def _tests(self) -> tuple[tuple[str, int, ConditionValue | frozenset[object]], ...]:
        # (field, where it is read from, wanted): what CleanLead.value_of and _match_one would do on every lead.
        return tuple(
            (name[6:], _EXTRA, want) if name.startswith("extra.") else (name, int(name.startswith("utm_")), want)
            for name, want in self._compiled
        )

    def matches(self, lead: CleanLead) -> bool:
        # _match_one, with the common case (a list of values: a set lookup) inline; this runs for every rule and lead.
        for name, source, want in self._tests:
            if source == _ATTR:
                have = getattr(lead, name, None)
            elif source == _UTM:
                have = lead.utm.get(name)
            else:
                have = _extra_value(lead.extra.get(name), want)
            if type(want) is frozenset:
                if (have.casefold() if isinstance(have, str) else have) not in want:
                    return False
            elif not _match_one(have, want):
                return False
        return True

    def describe(self, lead: CleanLead) -> str:
        return " and ".join(f"{name}={lead.value_of(name)}" for name in self.fields) or "any lead"

    def as_json(self) -> dict[str, Any]:
        """The condition as the rules file writes it, for a JSON column: ranges keep only their bounds."""
        return {name: _json_value(want) for name, want in self.fields.items()}

    def miss(self, lead: CleanLead) -> str:
        """Why the lead does not match, the first field that fails ("score 12, accepts score ≥ 20"); "" if it does."""
        for name, want in self._compiled:
            have = lead.value_of(name)
            if name.startswith("extra."):
                have = _extra_value(have, want)
            if not _match_one(have, want):
                return f"{name} {'none' if have is None else have}, accepts {name} {wanted_text(self.fields[name])}"
        return ""


_ATTR, _UTM, _EXTRA = 0, 1, 2


def _extra_value(value: object, want: object) -> object:
    """A field the channel sent beyond leadflow's own: numbers in text compare as numbers in a range."""
    if isinstance(want, Range) and not want.contains and isinstance(value, str):
        try:
            return Decimal(value.replace(",", ".").replace(" ", ""))
        except ArithmeticError:
            return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None if isinstance(value, dict | list) else value
    return value


def _json_value(want: ConditionValue) -> Any:
    if not isinstance(want, Range):
        return want
    found: dict[str, Any] = {}
    for name in ("gte", "gt", "lte", "lt"):
        bound = getattr(want, name)
        if bound is not None:
            found[name] = int(bound) if bound == bound.to_integral_value() else float(bound)
    if want.contains:
        found["contains"] = list(want.contains)
    return found


def wanted_text(want: ConditionValue) -> str:
    """A condition's value as a person reads it: "≥ 20", "one of credit, leasing", "containing urgent"."""
    if isinstance(want, Range):
        if want.contains:
            return "containing " + " or ".join(want.contains)
        bounds = (("≥", want.gte), (">", want.gt), ("≤", want.lte), ("<", want.lt))
        return " and ".join(f"{sign} {bound}" for sign, bound in bounds if bound is not None) or "any"
    if isinstance(want, list):
        return "one of " + ", ".join(map(str, want))
    return "none" if want is None else str(want)


def check_condition(value: Condition) -> Condition:
    """Every field of a condition is a lead field, and ranges compare numbers."""
    unknown = sorted(n for n in value.fields if n not in CONDITION_FIELDS and not _is_extra(n))
    if unknown:
        fields = ", ".join(sorted(CONDITION_FIELDS))
        raise ValueError(f"unknown lead field {unknown[0]!r}; use one of {fields}, or extra.<name>")
    for name, want in value.fields.items():
        if isinstance(want, Range) and not want.contains and name not in NUMERIC_FIELDS and not _is_extra(name):
            raise ValueError(f"{name} is text: compare it with a value or a list, not a range like {{gte: ...}}")
    return value


def _norm(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _match_one(have: object, want: ConditionValue | frozenset[object]) -> bool:
    if isinstance(want, Range):
        if want.contains:
            text = have.casefold() if isinstance(have, str) else ""
            return any(word.casefold() in text for word in want.contains)
        if have is None or isinstance(have, str):
            return False
        number = have if type(have) is Decimal else Decimal(str(have))
        return (
            (want.gte is None or number >= want.gte)
            and (want.gt is None or number > want.gt)
            and (want.lte is None or number <= want.lte)
            and (want.lt is None or number < want.lt)
        )
    if isinstance(want, frozenset):
        return _norm(have) in want
    if isinstance(want, list):
        return _norm(have) in {_norm(w) for w in want}
    if want is None:
        return have is None
    return _norm(have) == _norm(want)


def _known_strategy(value: str) -> str:
    if value not in STRATEGIES:
        raise ValueError(f"strategy '{value}' is not known: use one of {', '.join(STRATEGIES)}")
    return value


# Any strategy module under leadflow/core/strategies/ is a strategy the rules may name.
Strategy = Annotated[str, AfterValidator(_known_strategy)]


class TierBand(_Strict):
    """best_to_best: leads with at least this score (or win probability) go to managers of these tiers."""

    min_score: int | None = None
    min_probability: float | None = Field(None, ge=0, le=1)
    tiers: tuple[int, ...] = Field(..., min_length=1)


DEFAULT_TIER_BANDS = (
    TierBand(min_score=15, tiers=(1,)),
    TierBand(min_score=9, tiers=(1, 2)),
    TierBand(min_score=0, tiers=(2, 3, 4, 5, 6, 7, 8, 9)),
)


class Target(_Strict):
    """Who may take a lead and how one of them is picked."""

    team: Key
    managers: tuple[Key, ...] = Field((), description="Only these managers of the team (all when empty).")
    strategy: Strategy = "round_robin"
    require: tuple[Literal["region", "product", "language"], ...] = Field(
        (),
        description="Lead fields the manager must serve (listed in the manager's regions/products/languages).",
    )
    require_strict: tuple[Literal["region", "product", "language"], ...] = Field(
        (),
        description="Like require, and a lead without the field goes only to managers who list no values for it.",
    )
    respect_hours: bool = True
    load: Literal["leads", "value", "deals"] = Field("leads", description="least_loaded counts open leads, "
                                                     "their total value, or open deals.")  # fmt: skip
    min_conversion: float | None = Field(
        None, ge=0, le=1, description="Managers below this conversion get no new leads (after their warm-up)."
    )
    warmup_leads: int = Field(20, ge=0, description="Closed leads a new manager needs before min_conversion applies.")
    tiers: tuple[TierBand, ...] = Field(DEFAULT_TIER_BANDS, description="best_to_best: score bands to tiers.")
    out_of_hours: str = Field(
        "next", description="When everyone is off shift: next (try the next rule), queue (wait for opening), "
        "on_call (on-call managers take it), or team:KEY (another team, e.g. in another time zone).",
    )  # fmt: skip

    @field_validator("out_of_hours")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value in ("next", "queue", "on_call") or (value.startswith("team:") and len(value) > 5):
            return value
        raise ValueError(f"out_of_hours '{value}' is not understood: use next, queue, on_call or team:KEY")


class Rule(Target):
    key: Key
    priority: int = Field(0, description="Higher first; equal priorities keep file order.")
    when: Condition = Field(default_factory=lambda: Condition(fields={}))
    sticky: Sticky | None = Field(None, description="Overrides the team's sticky policy for leads of this rule.")

    @field_validator("when", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        if isinstance(value, dict) and "fields" not in value:
            return {"fields": value}
        return value

    @field_validator("when")
    @classmethod
    def _known_fields(cls, value: Condition) -> Condition:
        return check_condition(value)


BATCH_ORDER_FIELDS = ("score", "win_probability", "budget", "created_at")


def batch_order_keys(items: tuple[str, ...] | list[str]) -> tuple[tuple[str, bool], ...]:
    """("score desc", "created_at") -> (("score", True), ("created_at", False)); a mistake says what is allowed."""
    keys: list[tuple[str, bool]] = []
    for item in items:
        words = item.split()
        if (
            not words
            or len(words) > 2
            or words[0] not in BATCH_ORDER_FIELDS
            or words[1:] not in ([], ["asc"], ["desc"])
        ):
            allowed = ", ".join(BATCH_ORDER_FIELDS)
            raise ValueError(f"'{item}' is not a batch order: use a field ({allowed}) and asc or desc")
        keys.append((words[0], words[1:] == ["desc"]))
    return tuple(keys)


class Routing(_Strict):
    rules: tuple[Rule, ...] = ()
    fallback: Target | None = None
    batch_order: tuple[str, ...] = Field(
        ("budget desc", "created_at asc"),
        description="The order a batch run takes the backlog in (highest priority first), e.g. "
        "[score desc, win_probability desc, budget desc, created_at asc]; ties go to the older lead id. "
        "Empty values come last.",
    )

    @field_validator("batch_order")
    @classmethod
    def _batch_order(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        batch_order_keys(items)
        return items


class Junk(_Strict):
    own_domains: tuple[str, ...] = Field((), description="Mail from these domains is the company's own.")
    keywords: tuple[str, ...] = Field((), description="A lead whose name, company or message has one is junk.")
    blocked_sources: tuple[str, ...] = Field((), description="Sources (or channels) never to take leads from.")
    no_contact: Literal["refuse", "junk", "route"] = Field(
        "refuse",
        description="A lead with no usable phone, e-mail or messenger id: refused with 422 (nothing stored), "
        "kept as junk, or routed like any other.",
    )
    require_contact: bool | None = Field(None, description="Older spelling: false is `no_contact: route`.")

    @model_validator(mode="before")
    @classmethod
    def _older_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("require_contact") is False and "no_contact" not in data:
            return {**data, "no_contact": "route"}
        return data

    @field_validator("own_domains", "keywords", "blocked_sources")
    @classmethod
    def _fold(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.casefold().strip() for v in values if v.strip())


class ScorePoints(_Strict):
    when: Condition
    points: int = Field(..., ge=0, le=5)
    why: str | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        return {"fields": value} if isinstance(value, dict) and "fields" not in value else value


class Criterion(_Strict):
    """One qualification criterion: the first matching line gives its points (1-5), else `default`."""

    key: Key
    label: str | None = None
    points: tuple[ScorePoints, ...] = ()
    default: int = Field(1, ge=0, le=5)


class TemperatureBand(_Strict):
    temperature: Temperature
    min_score: int = Field(0, ge=0)
    min_probability: float | None = Field(None, ge=0, le=1, description="Or at least this win probability.")
    window: Duration = Field(..., description="How long the lead may stay in processing.")
    department: str = Field(..., description="Who owns leads this warm: marketing nurture, sales, vip ...")


DEFAULT_TEMPERATURES = (
    TemperatureBand(temperature="red_hot", min_score=17, window=timedelta(hours=2), department="vip"),
    TemperatureBand(temperature="hot", min_score=13, window=timedelta(days=3), department="sales"),
    TemperatureBand(temperature="warm", min_score=9, window=timedelta(days=7), department="sales"),
    TemperatureBand(temperature="cold", min_score=0, window=timedelta(days=30), department="marketing"),
)


class Signal(_Strict):
    """A lead that matches is at least this warm, whatever its score (e.g. a very large budget)."""

    when: Condition
    at_least: Temperature
    why: str | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        return {"fields": value} if isinstance(value, dict) and "fields" not in value else value


class Scoring(_Strict):
    enabled: bool = True
    criteria: tuple[Criterion, ...] = ()
    temperatures: tuple[TemperatureBand, ...] = DEFAULT_TEMPERATURES
    signals: tuple[Signal, ...] = ()
    predictive: bool = Field(True, description="Use the trained win-probability model when there is one.")

    @model_validator(mode="after")
    def _bands(self) -> Scoring:
        named = [b.temperature for b in self.temperatures]
        if len(set(named)) != len(named):
            raise ValueError("each temperature may have one band")
        for signal in self.signals:
            if signal.at_least not in named:
                raise ValueError(f"signal raises leads to {signal.at_least}, which has no band under temperatures")
        return self


class Dedupe(_Strict):
    company_similarity: int = Field(90, ge=50, le=100, description="rapidfuzz score (0-100) for a company match.")
    fold_window: Duration | None = Field(
        timedelta(hours=24),
        description="A client's new request within this time of their open lead is folded into that lead as "
        "new activity instead of becoming a lead of its own; `off` turns folding off.",
    )

    free_mail_domains: tuple[str, ...] = Field(
        (), description="More mailbox providers whose domain names no company (leadflow ships the common ones)."
    )

    @field_validator("free_mail_domains")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().lstrip("@") for v in values if v.strip())

    @field_validator("fold_window", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        # YAML reads a bare `off` as false.
        return None if value is False or value == 0 or (isinstance(value, str) and value.lower() == "off") else value


TEAM_HEAD = "team_head"
CHAT_CHANNELS = ("chat", "telegram", "viber", "whatsapp", "instagram", "messenger", "facebook")


class Chain(_Strict):
    """Where a lead goes when its owner has not made first contact in time."""

    managers: tuple[Key, ...] = Field(
        (), description="Explicit order; empty means the next eligible manager by the rule's own strategy."
    )
    max_hops: int = Field(3, ge=0, le=50, description="Reassignments among managers before the final target.")
    final: Key = Field(TEAM_HEAD, description="Who gets the lead at the end: team_head or a manager key.")


class SlaPolicy(_Strict):
    first_contact: Duration = Field(timedelta(minutes=10), description="Deadline for first contact, like 10m.")
    count: Literal["working_hours", "wall_clock"] = Field(
        "working_hours", description="working_hours: the clock runs only while the owner is on shift."
    )
    chain: Chain = Chain()


class SlaOverride(_Strict):
    """A policy for some leads; the first override whose rule/team/channel all match wins."""

    rule: Key | None = None
    team: Key | None = None
    channel: str | None = None
    temperature: Temperature | None = None
    first_contact: Duration | None = None
    count: Literal["working_hours", "wall_clock"] | None = None
    chain: Chain | None = None


class Sla(_Strict):
    enabled: bool = True
    default: SlaPolicy = SlaPolicy()
    channels: dict[str, Duration] = Field(
        default_factory=lambda: {c: timedelta(minutes=5) for c in CHAT_CHANNELS},
        description="First-contact deadline per channel (chat channels: join the dialogue within 5 minutes).",
    )
    overrides: tuple[SlaOverride, ...] = ()


class Plan(_Strict):
    """A sales plan that stands every month: for a team or for one manager."""

    team: Key | None = None
    manager: Key | None = None
    deals_per_day: Decimal | None = Field(None, ge=0, description="Deals (won leads) planned per calendar day.")
    revenue_per_month: Decimal | None = Field(None, ge=0, description="Revenue planned for a calendar month.")

    @model_validator(mode="after")
    def _one_owner(self) -> Plan:
        if (self.team is None) == (self.manager is None):
            raise ValueError("a plan names either a team or a manager")
        return self


class Digest(_Strict):
    """The daily report each head of sales receives through their notification channels."""

    enabled: bool = False
    at: str = Field("09:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Local time (the team's zone).")


class Reports(_Strict):
    plans: tuple[Plan, ...] = ()
    digest: Digest = Digest()
    unowned_minutes: int = Field(15, ge=1, le=10080, description="Hand-off losses: a lead with no owner this long.")


class RulesFile(_Strict):
    version: Literal[1] = 1
    default_region: str = Field("UA", min_length=2, max_length=2, description="Region for phones without +code.")
    default_timezone: str = "UTC"
    funnel: tuple[Status, ...] = DEFAULT_FUNNEL
    teams: tuple[Team, ...] = ()
    managers: tuple[Manager, ...] = ()
    routing: Routing = Routing()
    junk: Junk = Junk()
    dedupe: Dedupe = Dedupe()
    sla: Sla = Sla()
    scoring: Scoring = Scoring()
    templates: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Your own message texts: event type → language → Jinja2 text whose first line is the subject.",
    )
    default_language: Literal["uk", "ru", "en"] = Field("uk", description="Language of notifications by default.")
    lost_reasons: tuple[str, ...] = Field(
        ("price", "chose a competitor", "no longer needed", "could not reach", "not our product"),
        min_length=1,
        description="Why a lead can be lost: the list a manager picks from when closing a lead as lost.",
    )
    automations: Automations = Automations()
    cadences: tuple[CadencePolicy, ...] = Field((), description="Call cadences: how many attempts, when, how often.")
    roles: dict[str, tuple[Key, ...]] = Field(
        default_factory=dict, description="Who does what beyond selling: role -> manager keys (tasks go to a role)."
    )
    reply_templates: tuple[ReplyTemplate, ...] = Field((), description="Messages to clients, sent by automations.")
    reports: Reports = Reports()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> RulesFile:
        # parse_rules() runs the cross-checks itself so it can point at the line of each problem.
        if not (info.context or {}).get("defer_cross_checks"):
            problems = self.cross_check()
            if problems:
                raise ValueError(problems[0][1])
        return self

    def cross_check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems between sections (unknown references, bad schedules), each with where it is."""
        problems: list[tuple[tuple[str | int, ...], str]] = []

        def unique(section: str, keys: list[str]) -> None:
            seen: set[str] = set()
            for i, key in enumerate(keys):
                if key in seen:
                    problems.append(((*section.split("."), i, "key"), f"key {key!r} is used twice"))
                seen.add(key)

        unique("funnel", [s.key for s in self.funnel])
        missing = [k for k in REQUIRED_STATUSES if k not in {s.key for s in self.funnel}]
        if missing:
            problems.append((("funnel",), f"funnel must have the statuses {', '.join(missing)}"))
        unique("teams", [t.key for t in self.teams])
        unique("managers", [m.key for m in self.managers])
        extensions: dict[str, str] = {}
        for i, m in enumerate(self.managers):
            if m.extension is not None and m.extension in extensions:
                problems.append((("managers", i, "extension"), f"extension {m.extension!r} is given to both "
                                 f"{extensions[m.extension]} and {m.key}: a call must name one manager"))  # fmt: skip
            elif m.extension is not None:
                extensions[m.extension] = m.key
        unique("routing.rules", [r.key for r in self.routing.rules])
        teams = {t.key for t in self.teams}
        managers = {m.key for m in self.managers}
        for i, m in enumerate(self.managers):
            if m.team not in teams:
                problems.append((("managers", i, "team"),
                                 f"manager {m.key!r} is in team {m.team!r}, which is not declared under teams"))  # fmt: skip
        for i, t in enumerate(self.teams):
            if t.head and t.head not in managers:
                problems.append((("teams", i, "head"),
                                 f"team {t.key!r} has head {t.head!r}, who is not declared under managers"))  # fmt: skip
            try:
                parse_working_hours(t.hours, t.timezone or self.default_timezone)
            except ValueError as exc:
                problems.append((("teams", i, "hours" if t.hours is not None else "timezone"), str(exc)))
        targets: list[tuple[tuple[str | int, ...], str, Target]] = [
            (("routing", "rules", i), f"rule {r.key!r}", r) for i, r in enumerate(self.routing.rules)
        ]
        if self.routing.fallback:
            targets.append((("routing", "fallback"), "fallback", self.routing.fallback))
        for loc, label, target in targets:
            if target.team not in teams:
                problems.append(((*loc, "team"), f"{label} sends leads to team {target.team!r}, which is not declared"))
            for key in target.managers:
                if key not in managers:
                    problems.append(((*loc, "managers"), f"{label} names manager {key!r}, who is not declared"))
        chains: list[tuple[tuple[str | int, ...], Chain]] = [(("sla", "default", "chain"), self.sla.default.chain)]
        chains += [(("sla", "overrides", i, "chain"), o.chain) for i, o in enumerate(self.sla.overrides) if o.chain]
        for loc, chain in chains:
            for key in (*chain.managers, *([chain.final] if chain.final != TEAM_HEAD else [])):
                if key not in managers:
                    problems.append((loc, f"sla chain names manager {key!r}, who is not declared"))
        rule_keys = {r.key for r in self.routing.rules} | {"fallback"}
        for i, o in enumerate(self.sla.overrides):
            if o.rule and o.rule not in rule_keys:
                problems.append(
                    (("sla", "overrides", i, "rule"), f"sla override names rule {o.rule!r}, which is not declared")
                )
            if o.team and o.team not in teams:
                problems.append(
                    (("sla", "overrides", i, "team"), f"sla override names team {o.team!r}, which is not declared")
                )
        problems += [(("templates",), p) for p in check_overrides(self.templates)]
        problems += self._automation_problems(managers, teams)
        for i, plan in enumerate(self.reports.plans):
            if plan.team is not None and plan.team not in teams:
                problems.append(
                    (("reports", "plans", i, "team"), f"plan names team {plan.team!r}, which is not declared")
                )
            if plan.manager is not None and plan.manager not in managers:
                problems.append((("reports", "plans", i, "manager"),
                                 f"plan names manager {plan.manager!r}, who is not declared"))  # fmt: skip
        # Every schedule is parsed here, so a typo fails at load time, not at the first lead.
        for i, m in enumerate(self.managers):
            if m.team in teams:
                try:
                    self.hours_of(m)
                except ValueError as exc:
                    problems.append((("managers", i, "hours"), str(exc)))
        return problems

    def _automation_problems(self, managers: set[str], teams: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Triggers, cadences, roles and reply templates: every name they use exists, every template renders, and
        no trigger sets itself off again through others."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        statuses = {s.key: s.outcome for s in self.funnel}
        for role, members in self.roles.items():
            for key in members:
                if key not in managers:
                    problems.append((("roles", role), f"role {role!r} names manager {key!r}, who is not declared"))
        for i, c in enumerate(self.cadences):
            if c.exhausted_status is not None and c.exhausted_status not in statuses:
                problems.append((("cadences", i, "exhausted_status"),
                                 f"cadence {c.key!r} ends in status {c.exhausted_status!r}, which is not in the funnel"))  # fmt: skip
            for t in c.teams:
                if t not in teams:
                    problems.append((("cadences", i, "teams"), f"cadence {c.key!r} names team {t!r}, not declared"))
        templates = {t.key for t in self.reply_templates}
        for i, reply in enumerate(self.reply_templates):
            for part, source in (("text", reply.text), ("subject", reply.subject)):
                if source is not None and (problem := template_problem(source)):
                    problems.append((("reply_templates", i, part), f"reply template {reply.key!r}: {problem}"))
        cadences = {c.key for c in self.cadences}
        seen: set[str] = set()
        for i, trigger in enumerate(self.automations.triggers):
            at: tuple[str | int, ...] = ("automations", "triggers", i)
            if trigger.key in seen:
                problems.append(((*at, "key"), f"key {trigger.key!r} is used twice"))
            seen.add(trigger.key)
            for status in trigger.when.statuses:
                if status not in statuses:
                    problems.append(((*at, "when"), f"trigger {trigger.key!r} waits for status {status!r}, which "
                                     "is not in the funnel"))  # fmt: skip
            for problem in trigger.check.problems():
                problems.append(((*at, "if"), f"trigger {trigger.key!r}: {problem}"))
            for j, step in enumerate(trigger.then):
                where = (*at, "then", j, step.action)
                for problem in self._step_problems(step, statuses, managers, templates, cadences):
                    problems.append((where, f"trigger {trigger.key!r}: {problem}"))
        outcomes = dict(statuses)
        ends: dict[str | None, str | None] = {c.key: c.exhausted_status for c in self.cadences}
        ends[None] = self.cadences[0].exhausted_status if self.cadences else "lost"
        loop = find_loop(self.automations.triggers, outcomes, ends)
        if loop:
            problems.append((("automations", "triggers"), "these triggers set each other off without end: "
                             + " → ".join(loop) + "; change a condition or an action so the chain stops"))  # fmt: skip
        return problems

    def _step_problems(self, step: Any, statuses: Mapping[str, Any], managers: set[str], templates: set[str],
                       cadences: set[str]) -> list[str]:  # fmt: skip
        found: list[str] = []
        for who in (step.task.assignee if step.task else None, step.notify.to if step.notify else None):
            if who and who.startswith("role:") and who[5:] not in self.roles:
                found.append(f"role {who[5:]!r} is not declared under roles")
            if who and who.startswith("manager:") and who[8:] not in managers:
                found.append(f"manager {who[8:]!r} is not declared")
        for source in (step.task.title if step.task else None, step.notify.text if step.notify else None):
            if source is not None and (problem := template_problem(source)):
                found.append(problem)
        if step.status is not None and step.status.to not in statuses:
            found.append(f"status {step.status.to!r} is not in the funnel")
        if step.reply is not None and step.reply not in templates:
            found.append(f"reply template {step.reply!r} is not declared under reply_templates")
        for name in step.set or {}:
            if name not in SETTABLE_FIELDS and not _is_extra(name):
                found.append(f"set: {name!r} cannot be set; use {', '.join(SETTABLE_FIELDS)} or extra.<name>")
        if step.cadence is not None and step.cadence.policy is not None and step.cadence.policy not in cadences:
            found.append(f"cadence {step.cadence.policy!r} is not declared under cadences")
        return found

    @cached_property
    def open_statuses(self) -> frozenset[str]:
        return frozenset(s.key for s in self.funnel if s.open)

    @cached_property
    def ordered_rules(self) -> list[Rule]:
        return sorted(self.routing.rules, key=lambda r: -r.priority)  # sort is stable: file order on ties

    def team(self, key: str) -> Team:
        return next(t for t in self.teams if t.key == key)

    def hours_of(self, manager: Manager) -> WorkingHours:
        team = self.team(manager.team)
        spec = manager.hours if manager.hours is not None else team.hours
        return parse_working_hours(spec, team.timezone or self.default_timezone)
