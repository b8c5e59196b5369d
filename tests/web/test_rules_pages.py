"""The rules page and its dry run, over real HTTP, as heads and admins see them; managers are refused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import events, leads
from tests.support import live_server, web_sign_in, web_user

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales Kyiv, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: vip, name: VIP desk, timezone: Europe/Warsaw, head: oleh, desk: true, desk_sla: 20m, hours: always}
managers:
  - {key: anna, name: Anna Koval, team: sales, products: [credit], capacity: 30, weight: 2}
  - {key: bohdan, name: Bohdan Melnyk, team: sales, products: [leasing], languages: [uk, en]}
  - {key: halyna, name: Halyna Head, team: sales}
  - {key: oleh, name: Oleh Vip, team: vip}
routing:
  rules:
    - {key: low-credit, priority: 5, team: sales, managers: [anna], when: {product: credit}}
    - {key: big-leasing, priority: 30, team: sales, managers: [bohdan], when: {product: leasing, budget: {gte: 1000}},
       strategy: least_loaded}
    - {key: yachts, priority: 10, team: vip, managers: [oleh], when: {product: [yacht, boat]}}
  fallback: {team: sales, managers: [anna, bohdan]}
sla:
  default: {first_contact: 15m, count: wall_clock, chain: {max_hops: 2}}
lost_reasons: [too expensive, went elsewhere]
"""


def _counts(app: Leadflow) -> tuple[int, int]:
    with app.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(leads)).scalar_one(),
                conn.execute(select(func.count()).select_from(events)).scalar_one())  # fmt: skip


def _rules_file(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_rules_page_shows_teams_people_and_rules_in_priority_order(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(RULES)
    password = web_user(app, "halyna", "head", manager="halyna", teams=["sales"])
    with live_server(app, rules=_rules_file(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        web_sign_in(client, "halyna", password)
        page = client.get("/rules")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'data-check="ok"' in html and "No problems." in html and "2 teams" in html
    assert "has changed since leadflow started" not in html
    assert 'data-team="sales"' in html and 'data-team="vip"' in html and "Europe/Warsaw" in html
    assert "Anna Koval" in html and "Bohdan Melnyk" in html and "uk, en" in html
    order = re.findall(r'<tr data-rule="([^"]+)"', html.split('id="routing-rules"')[1])
    assert order == ["big-leasing", "yachts", "low-credit", "fallback"]
    assert "product = leasing and budget ≥ 1000" in html and "product one of yacht, boat" in html
    assert "too expensive" in html and "went elsewhere" in html
    assert "<script>" not in html and "style=" not in html


def test_a_broken_rules_file_on_disk_is_listed_with_its_problems(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(RULES)
    password = web_user(app, "root", "admin")
    broken = _rules_file(tmp_path, RULES.replace("team: vip, managers: [oleh]", "team: nowhere, managers: [oleh]"))
    with live_server(app, rules=broken) as url, httpx.Client(base_url=url, timeout=30) as client:
        web_sign_in(client, "root", password)
        page = client.get("/rules")
    assert page.status_code == 200
    assert "1 problem" in page.text and "team &#39;nowhere&#39;, which is not declared" in page.text
    assert 'data-team="vip"' in page.text  # the rules in force are still shown


def test_a_dry_run_shows_where_the_lead_would_go_and_stores_nothing(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(RULES)
    password = web_user(app, "halyna", "head", manager="halyna", teams=["sales"])
    with live_server(app, rules=_rules_file(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "halyna", password)
        before = _counts(app)
        fields = {"csrf_token": csrf, "name": "Ivan", "phone": "+380671234567", "product": "leasing", "budget": "5000"}
        answer = client.post("/rules/dry-run", data=fields, headers={"HX-Request": "true"})
        assert answer.status_code == 200, answer.text
        assert 'data-picked="bohdan"' in answer.text and "Bohdan Melnyk" in answer.text
        assert 'data-rule="big-leasing"' in answer.text and "least_loaded" in answer.text
        assert 'data-candidate="bohdan"' in answer.text
        pasted = json.dumps({"phone": "+380671234568", "product": "yacht", "channel": "telegram"})
        plain = client.post("/rules/dry-run", data={"csrf_token": csrf, "lead_json": pasted})
        assert plain.status_code == 200 and "<h1>" in plain.text  # a plain form gets the whole page back
        assert 'data-picked="oleh"' in plain.text and 'data-team="sales"' in plain.text
        assert _counts(app) == before


def test_a_dry_run_of_bad_input_says_why_with_422_and_stores_nothing(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(RULES)
    password = web_user(app, "root", "admin")
    with live_server(app, rules=_rules_file(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "root", password)
        before = _counts(app)
        bad = client.post("/rules/dry-run", data={"csrf_token": csrf, "lead_json": '{"phone": "+38067'},
                          headers={"HX-Request": "true"})  # fmt: skip
        assert bad.status_code == 422
        assert 'data-dry-run="refused"' in bad.text and "not valid JSON" in bad.text
        listed = client.post("/rules/dry-run", data={"csrf_token": csrf, "lead_json": "[1, 2]"})
        assert listed.status_code == 422 and "a lead is a JSON object" in listed.text and "<h1>" in listed.text
        unusable = client.post("/rules/dry-run", data={"csrf_token": csrf, "name": "Nobody", "product": "credit"})
        assert unusable.status_code == 422 and 'data-dry-run="refused"' in unusable.text
        assert _counts(app) == before


def test_a_manager_or_the_desk_may_not_open_the_rules(make_app: Callable[[str], Leadflow], tmp_path: Path) -> None:
    app = make_app(RULES)
    anna = web_user(app, "anna", "manager", manager="anna")
    with live_server(app, rules=_rules_file(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "anna", anna)
        assert client.get("/rules").status_code == 403
        tried = client.post("/rules/dry-run", data={"csrf_token": csrf, "phone": "+380671234567"})
        assert tried.status_code == 403
        assert client.get("/admin/users").status_code == 403
        assert 'href="/rules"' not in client.get("/search").text  # not in the header either


AUTOMATED = (
    RULES
    + """
roles: {customer-success: [halyna]}
cadences: [{key: seven-calls, attempts: 7}]
automations:
  triggers:
    - key: review-after-win
      when: deal_won
      then: [{task: {title: "Ask {{ lead.name }} for a review", assignee: "role:customer-success", due: next_working_day}}]
    - key: not-contacted-2h
      when: lead_created
      after: 2h
      if: {contacted: false, open: true}
      then: [{notify: {to: head, text: "No contact for 2 hours"}}]
    - {key: keep-calling, when: {contact: {kind: call, outcome: no_answer}}, enabled: false, then: [{cadence: start}]}
"""
)


def test_the_rules_page_lists_the_automations_and_call_cadences(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    app = make_app(AUTOMATED)
    password = web_user(app, "halyna", "head", manager="halyna", teams=["sales"])
    with live_server(app, rules=_rules_file(tmp_path, AUTOMATED)) as url, httpx.Client(base_url=url, timeout=30) as c:
        web_sign_in(c, "halyna", password)
        html = c.get("/rules", headers={"Accept-Language": "uk"}).text
    section = html.split('id="automations-h"')[1]
    assert "Автоматизації" in html and "<code>review-after-win</code>" in section
    assert "<code>deal_won</code>" in section and "<code>contact call no_answer</code>" in section
    assert "contacted = False and open = True" in section and "(вимкнено)" in section
    assert "task: Ask {{ lead.name }} for a review (task, next_working_day, role:customer-success)" in section
    assert "notify head: No contact for 2 hours" in section and "<code>seven-calls</code>" in section
