"""Meta Lead Ads: the forms of Facebook and Instagram ads. The page's `leadgen` webhook names a new lead by its id
only; its answers are fetched from the Graph API (`GET /{leadgen_id}`) with a page token.

Nothing is lost when the Graph API is slow or down: the webhook keeps each lead's id (committed before Meta is
answered), then the answers are fetched. The webhook's own process tries at once, after answering; the worker's
poller takes whatever is still kept, trying again with a growing pause until the Graph API gives the answers. Only
then is the id let go, so a crash anywhere between fetches again, and the dedupe by the lead's id takes it once.

A lead from Facebook and one from Instagram are both the `facebook_leads` channel (one setting, one line in the
channels' status, one `sla.channels` key); the Graph API's `platform` says which, and goes to the lead's `source`
and `utm_source` for rules and reports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.meta import graph_failure, unreachable
from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.senders import DeliveryError
from leadflow.core.conversation import Inbound, InboundMessage, Unreadable

log = logging.getLogger("leadflow.channels.lead_ads")

CHANNEL = "facebook_leads"
OBJECT = "page"
FIELD = "leadgen"
# What is asked of a lead: its answers and where it came from (ad fields need an ads permission; the webhook has
# the ad's ids already).
LEAD_FIELDS = "id,created_time,field_data,form_id,platform,is_organic"
GRACE_SECONDS = 15.0  # the poller leaves a just-kept form this long to the webhook's own fetch
FIRST_PAUSE_SECONDS = 15.0  # after a failed fetch; doubled at each failure
POLL_SECONDS = 5.0  # how often the worker looks for kept forms
MAX_PAUSE_SECONDS = 900.0  # a form the Graph API keeps refusing is asked again at least every 15 minutes
MAX_ID = 40
MAX_TEXT = 4000  # a lead's message (core.lead.MAX_TEXT)

# Meta's standard questions that are a lead's own fields; first_name and last_name make the name together.
STANDARD = {"full_name": "name", "phone_number": "phone", "email": "email", "company_name": "company"}
SPARE = {"work_phone_number": "phone", "work_email": "email"}  # used when the standard one was not asked
# A custom question whose key is a lead field's name fills that field (a form can ask `product` or `budget`).
DIRECT = ("name", "phone", "email", "company", "product", "budget", "region", "language", "message")
PLATFORMS = {"fb": "facebook", "facebook": "facebook", "ig": "instagram", "instagram": "instagram"}


@dataclass(frozen=True, slots=True)
class LeadgenNotice:
    """What the webhook says of a new lead: its id, and the page, form and ad it came through."""

    leadgen_id: str
    page_id: str | None = None
    form_id: str | None = None
    ad_id: str | None = None
    adgroup_id: str | None = None
    created_time: int | None = None

    def kept(self, held_at: float) -> str:
        """The notice as it is kept until its answers are fetched, with when it was kept (epoch seconds)."""
        return orjson.dumps({**asdict(self), "held_at": held_at}).decode()

    @classmethod
    def from_kept(cls, value: str) -> tuple[LeadgenNotice, float]:
        data = orjson.loads(value)
        held_at = float(data.pop("held_at", 0.0))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}), held_at


# -- Reading the webhook --------------------------------------------------------------------------------------------


def read_body(body: bytes) -> tuple[list[LeadgenNotice], list[Inbound]]:
    """A webhook call: the new leads it names, and its parts that are no lead (kept as not understood)."""
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("a notification is a JSON object")
    if payload.get("object") != OBJECT:
        return [], [Unreadable(CHANNEL, f"not a page notification: object is {str(payload.get('object'))[:60]!r}, "
                                        f"not '{OBJECT}'", raw=payload)]  # fmt: skip
    notices: list[LeadgenNotice] = []
    others: list[Inbound] = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            found = read_change(change, entry)
            if isinstance(found, LeadgenNotice):
                notices.append(found)
            else:
                others.append(found)
    if not notices and not others:
        others.append(Unreadable(CHANNEL, "a page notification without changes", raw=payload))
    return notices, others


def read_change(change: Mapping[str, Any], entry: Mapping[str, Any]) -> LeadgenNotice | Unreadable:
    value = change.get("value")
    if change.get("field") != FIELD or not isinstance(value, dict):
        return Unreadable(CHANNEL, f"ignored: the page's '{str(change.get('field'))[:60]}' field is not {FIELD}",
                          raw=change)  # fmt: skip
    leadgen_id = _id(value.get("leadgen_id"))
    if leadgen_id is None:
        return Unreadable(CHANNEL, "a leadgen change without a valid leadgen_id (digits)", raw=change)
    created = value.get("created_time")
    return LeadgenNotice(
        leadgen_id, _id(value.get("page_id")) or _id(entry.get("id")), _id(value.get("form_id")),
        _id(value.get("ad_id")), _id(value.get("adgroup_id")),
        created if isinstance(created, int) and not isinstance(created, bool) else None,
    )  # fmt: skip


def _id(value: Any) -> str | None:
    """A Graph API id: digits only (it goes into a URL path, so nothing else may pass)."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if text.isascii() and text.isdigit() and len(text) <= MAX_ID else None


# -- The lead's answers -----------------------------------------------------------------------------------------------


def lead_message(notice: LeadgenNotice, answer: Mapping[str, Any]) -> InboundMessage:
    """A form's answers as the message that makes (or joins) the client's lead.

    Meta's standard questions fill the lead's fields (full_name or first_name and last_name, phone_number, email,
    company_name, a two-letter country); a custom question whose key is a lead field fills it; every other answer
    is kept in the lead's `extra` and shown in its message."""
    answers = _answers(answer.get("field_data"))
    lead: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in answers.items():
        target = STANDARD.get(key) or (key if key in DIRECT else None)
        if target and target not in lead:
            lead[target] = value
        elif key == "country" and len(value) == 2 and value.isalpha():
            lead["region"] = value.upper()
        elif key not in ("first_name", "last_name"):
            extra[key] = value
    for key, target in SPARE.items():
        if key in extra and target not in lead:
            lead[target] = extra.pop(key)
    name = lead.pop("name", None) or " ".join(answers[k] for k in ("first_name", "last_name") if answers.get(k))
    platform = _platform(answer.get("platform"))
    lead.update(source=platform, utm_source=platform, utm_medium="organic" if answer.get("is_organic") else "lead_ads")
    form_id = _id(answer.get("form_id")) or notice.form_id
    ids = {"meta_form_id": form_id, "meta_ad_id": notice.ad_id, "meta_adgroup_id": notice.adgroup_id,
           "meta_page_id": notice.page_id}  # fmt: skip
    extra.update({k: v for k, v in ids.items() if v})
    lead["extra"] = extra
    shown = [f"{key.replace('_', ' ')}: {value}" for key, value in answers.items()
             if key not in STANDARD and key not in ("first_name", "last_name")]  # fmt: skip
    text = "\n".join(shown) if shown else "sent a lead form"
    return InboundMessage(
        CHANNEL, notice.leadgen_id, None, text[:MAX_TEXT], name=name or None, at=_created(answer, notice),
        kind="form", lead=lead, meta={"platform": platform, **{k: v for k, v in ids.items() if v}},
        raw={"notice": asdict(notice), "lead": dict(answer)},
    )  # fmt: skip


def _answers(field_data: Any) -> dict[str, str]:
    """Each question's key and its answer (several chosen options joined by commas), in the form's order."""
    found: dict[str, str] = {}
    for item in _dicts(field_data):
        key = str(item.get("name") or "").strip()[:100]
        given = item.get("values")
        values: list[Any] = given if isinstance(given, list) else [given]
        value = ", ".join(str(v).strip() for v in values if v not in (None, "") and str(v).strip())
        if key and value:
            found[key] = value
    return found


def _platform(value: Any) -> str:
    text = str(value or "").strip().casefold()
    return PLATFORMS.get(text, text[:40] if text.isidentifier() else "facebook")


def _created(answer: Mapping[str, Any], notice: LeadgenNotice) -> datetime | None:
    given = answer.get("created_time")
    if isinstance(given, str):
        try:
            return datetime.strptime(given, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        except ValueError:
            pass
    if notice.created_time is not None:
        try:
            return datetime.fromtimestamp(notice.created_time, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# -- Fetching from the Graph API --------------------------------------------------------------------------------------


class GraphLeads:
    """Reads a lead's answers with the page token (sent in the Authorization header: never in a URL or a log)."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None) -> None:
        if config.meta_page_access_token is None:
            raise ValueError(f"Lead Ads need a page token: set {env_name('meta_page_access_token')}")
        self._base = config.graph_api_base
        self._headers = {"Authorization": f"Bearer {config.meta_page_access_token.get_secret_value()}"}
        self._client = client or httpx.Client(timeout=10)

    def lead(self, leadgen_id: str) -> dict[str, Any]:
        """The lead's answers; raises DeliveryError saying what the Graph API answered."""
        try:
            response = self._client.get(f"{self._base}/{leadgen_id}", params={"fields": LEAD_FIELDS},
                                        headers=self._headers)  # fmt: skip
        except httpx.HTTPError as exc:
            raise unreachable("the Graph API", exc) from None
        if response.status_code >= 300:
            raise graph_failure("the Graph API", response, env_name("meta_page_access_token"))
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError("the Graph API answered without JSON", retryable=True) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("field_data"), list):
            raise DeliveryError("the Graph API's answer has no field_data", retryable=True)
        return answer

    def close(self) -> None:
        self._client.close()


class LeadFetcher:
    """Fetches the answers of the kept forms, takes each, and only then lets its id go. A form whose fetch fails
    stays kept and is asked again after a pause that doubles up to 15 minutes (remembered by this process only: a
    restart asks again at once)."""

    def __init__(self, config: ChannelsConfig, services: PollerServices, graph: GraphLeads | None = None,
                 clock: Callable[[], float] = time.time, grace: float = GRACE_SECONDS) -> None:  # fmt: skip
        if services.held is None or services.release is None:
            raise ValueError("Lead Ads need the kept events (PollerServices.held and .release)")
        self.held = services.held
        self.release = services.release
        self.take = services.take
        self.note_error = services.note_error
        self.clear_error = services.clear_error
        self.graph = graph or GraphLeads(config)
        self.clock = clock
        self.grace = grace
        self._pause: dict[str, tuple[int, float]] = {}  # leadgen id -> (failures, not before)

    def fetch(self, only: Collection[str] | None = None) -> int:
        """Fetch and take the kept forms that are due (or exactly `only`, at once); returns how many were taken."""
        kept = self.held(CHANNEL)
        failed: list[tuple[str, DeliveryError]] = []
        taken = 0
        for leadgen_id, value in kept.items():
            notice, held_at = LeadgenNotice.from_kept(value)
            wanted = leadgen_id in only if only is not None else self._due(leadgen_id, held_at)
            if not wanted:
                continue
            try:
                answer = self.graph.lead(leadgen_id)
            except DeliveryError as exc:
                failed.append((leadgen_id, exc))
                continue
            self._take(notice, answer)
            self.release(CHANNEL, leadgen_id)
            self._pause.pop(leadgen_id, None)
            taken += 1
        if failed:
            self._failed(failed, len(kept) - taken)
        elif taken and self.clear_error is not None:
            self.clear_error(CHANNEL)  # the Graph API answers again: the error shown is no longer true
        return taken

    def _due(self, leadgen_id: str, held_at: float) -> bool:
        _, not_before = self._pause.get(leadgen_id, (0, held_at + self.grace))
        return self.clock() >= not_before

    def _take(self, notice: LeadgenNotice, answer: Mapping[str, Any]) -> None:
        # A form intake will not have (no way to reach the client) is kept by the service, with why.
        self.take([lead_message(notice, answer)])

    def _failed(self, failed: Sequence[tuple[str, DeliveryError]], waiting: int) -> None:
        now = self.clock()
        for leadgen_id, _ in failed:
            failures = self._pause.get(leadgen_id, (0, now))[0] + 1
            pause = min(FIRST_PAUSE_SECONDS * 2 ** (failures - 1), MAX_PAUSE_SECONDS)
            self._pause[leadgen_id] = (failures, now + pause)
        leadgen_id, error = failed[-1]
        self.note_error(CHANNEL, f"lead {leadgen_id} could not be fetched ({error.message}); {waiting} lead form(s) "
                                 "kept, asked again later")  # fmt: skip
        log.warning("Lead Ads: %d lead(s) could not be fetched, kept for later: %s", len(failed), error.message)

    def close(self) -> None:
        self.graph.close()


class LeadAdsPoller:
    """The worker's loop: every few seconds, the forms still kept are fetched."""

    name = "lead-ads"

    def __init__(self, fetcher: LeadFetcher, every: float = POLL_SECONDS) -> None:
        self.fetcher = fetcher
        self.every = every

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.fetcher.fetch()
            except Exception as exc:  # the database, most likely: the forms stay kept, asked again next round
                log.exception("Lead Ads: fetching the kept forms failed")
                try:
                    self.fetcher.note_error(CHANNEL, f"fetching the kept forms failed: {type(exc).__name__}")
                except Exception:
                    log.exception("Lead Ads: the error could not be noted")
            stop.wait(self.every)
        self.fetcher.close()


def lead_ads_poller(config: ChannelsConfig, services: PollerServices) -> LeadAdsPoller:
    return LeadAdsPoller(LeadFetcher(config, services))
