"""The real `leadflow` console script in a subprocess, and the CSV import behind `leadflow import`."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadflow.services.context import Leadflow, utcnow
from leadflow.services.importing import import_csv
from leadflow.store.tables import leads, managers
from tests.support import THREE_MANAGERS


def _leadflow_script() -> str:
    # The script installed beside the interpreter running the tests is the one under test; PATH is a fallback.
    beside = Path(sys.executable).parent / "leadflow"
    if beside.exists():
        return str(beside)
    found = shutil.which("leadflow")
    if found is None:
        pytest.fail("the leadflow console script is not installed (pip install -e .)")
    return found


LEADFLOW = _leadflow_script()

RULES = """\
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 1000}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 1000}
  - {key: chrystia, name: Chrystia, team: sales, capacity: 1000}
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
junk:
  keywords: [casino]
"""

# The problem is on line 7: a capacity that is not a number.
BROKEN_RULES = """\
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales, capacity: lots}
routing:
  rules:
    - {key: all, team: sales}
"""

# Four good rows, one bad phone on line 4 (the header is line 1); `city` is no lead field.
LEADS_CSV = """\
name,phone,email,product,city
Ivan Petrenko,+380 (67) 123-45-67,Ivan.Petrenko@Ukr.net,credit,Lviv
Olha Koval,050 111 22 33,,leasing,Kyiv
Bad Phone,12,,credit,Odesa
Petro Bondar,0631234567,petro@gmail.com,credit,Kharkiv
Maria Shevchenko,0671112233,maria@gmail.com,,Dnipro
"""


class Cli:
    """Runs `leadflow ...` with its own database and rules file, from an empty directory (no stray .env)."""

    def __init__(self, tmp_path: Path, rules_text: str = RULES) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "x.db"
        self.rules = self.write("rules.yaml", rules_text)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        self.env.update(LEADFLOW_DATABASE_URL=f"sqlite:///{self.db}", LEADFLOW_RULES=str(self.rules))

    def write(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        path = self.dir / name
        path.write_bytes(text.encode(encoding))
        return path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LEADFLOW, *args], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db)) as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
            return rows

    def count(self, table: str) -> int:
        return int(self.query(f"select count(*) from {table}")[0][0])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def one_line(text: str) -> str:
    """The output with rich's line wrapping (80 columns when not a terminal) undone."""
    return re.sub(r"\s+", " ", text)


# --------------------------------------------------------------------------------------------------------------
# check-rules


def test_check_rules_says_ok_for_a_good_file(cli: Cli) -> None:
    r = cli("check-rules", str(cli.rules))
    assert r.returncode == 0, r.stderr
    assert f"{cli.rules}: ok" in one_line(r.stdout)
    assert "1 team(s), 3 manager(s), 1 routing rule(s), no fallback" in one_line(r.stdout)
    assert not cli.db.exists()  # checking a file touches no database


def test_check_rules_accepts_the_bundled_example(cli: Cli) -> None:
    example = Path(__file__).parents[1] / "leadflow" / "examples" / "rules.yaml"
    r = cli("check-rules", str(example))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "a fallback" in r.stdout


def test_check_rules_names_the_line_and_field_of_a_problem(cli: Cli) -> None:
    broken = cli.write("broken.yaml", BROKEN_RULES)
    r = cli("check-rules", str(broken))
    assert r.returncode == 1
    assert "ok" not in r.stdout
    err = one_line(r.stderr)
    assert f"{broken}: 1 problem(s)" in err
    assert "line 7: managers.1.capacity:" in err
    assert "valid integer" in err


def test_check_rules_reports_every_problem_with_its_line(cli: Cli) -> None:
    text = BROKEN_RULES.replace("{key: all, team: sales}", "{key: all, team: sales, respect_hours: sometimes}")
    broken = cli.write("broken.yaml", text)
    r = cli("check-rules", str(broken))
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert "2 problem(s)" in err
    assert "line 7: managers.1.capacity" in err
    assert "line 10: routing.rules.0.respect_hours: Input should be a valid boolean" in err


def test_check_rules_names_the_line_of_a_yaml_syntax_error(cli: Cli) -> None:
    broken = cli.write("broken.yaml", "teams:\n  - {key: sales, name: Sales\nmanagers: []\n")
    r = cli("check-rules", str(broken))
    assert r.returncode == 1
    assert "line 3: not valid YAML" in one_line(r.stderr)


def test_check_rules_on_a_missing_file_fails(cli: Cli) -> None:
    r = cli("check-rules", "nowhere.yaml")
    assert r.returncode == 1
    assert "cannot read the file" in one_line(r.stderr)


def test_check_rules_refuses_an_empty_file(cli: Cli) -> None:
    empty = cli.write("empty.yaml", "# the rules will go here\n")
    r = cli("check-rules", str(empty))
    assert r.returncode == 1
    assert "ok" not in r.stdout
    assert "line 1: the rules file is empty" in one_line(r.stderr)


def test_check_rules_lists_type_and_reference_problems_in_one_pass(cli: Cli) -> None:
    text = BROKEN_RULES.replace("{key: all, team: sales}", "{key: all, team: sales, managers: [anna, zenon]}")
    broken = cli.write("broken.yaml", text)
    r = cli("check-rules", str(broken))
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert "2 problem(s)" in err
    assert "line 7: managers.1.capacity" in err
    assert "line 10: routing.rules.0.managers: rule 'all' names manager 'zenon', who is not declared" in err


# --------------------------------------------------------------------------------------------------------------
# init-db


def test_init_db_creates_the_schema_and_writes_the_files_people(cli: Cli) -> None:
    r = cli("init-db")
    assert r.returncode == 0, r.stderr
    assert "database ready" in r.stdout and str(cli.db) in one_line(r.stdout)
    tables = {row[0] for row in cli.query("select name from sqlite_master where type = 'table'")}
    assert {"teams", "managers", "leads", "assignments", "events", "alembic_version"} <= tables
    assert cli.query("select key from teams") == [("sales",)]
    assert cli.query("select key, capacity, open_leads from managers order by id") == [
        ("anna", 1000, 0), ("bohdan", 1000, 0), ("chrystia", 1000, 0),
    ]  # fmt: skip
    assert cli.count("leads") == 0

    again = cli("init-db")  # upgrading an up-to-date database changes nothing
    assert again.returncode == 0, again.stderr
    assert cli.count("managers") == 3


def test_init_db_refuses_a_broken_rules_file(cli: Cli) -> None:
    cli.write("rules.yaml", BROKEN_RULES)
    r = cli("init-db")
    assert r.returncode == 1
    assert "line 7" in one_line(r.stderr)


# --------------------------------------------------------------------------------------------------------------
# import


def test_import_reports_new_and_rejected_rows_and_keeps_unknown_columns(cli: Cli) -> None:
    csv_file = cli.write("leads.csv", LEADS_CSV)
    r = cli("import", str(csv_file))
    assert r.returncode == 2, r.stdout + r.stderr  # a rejected row makes the exit code say so
    assert "4 new, 0 already here, 0 junk, 0 unassigned, 1 rejected" in one_line(r.stdout)
    rejected = [line for line in r.stderr.splitlines() if "too short" in line]
    assert re.search(r"\b4\b", rejected[0]), r.stderr
    assert "phone '12' is too short for region UA (field: phone)" in one_line(r.stderr)

    rows = cli.query("select name, phone, email, status, channel, raw from leads order by id")
    assert [(n, p, e, s, c) for n, p, e, s, c, _ in rows] == [
        ("Ivan Petrenko", "+380671234567", "ivan.petrenko@ukr.net", "assigned", "import"),
        ("Olha Koval", "+380501112233", None, "assigned", "import"),
        ("Petro Bondar", "+380631234567", "petro@gmail.com", "assigned", "import"),
        ("Maria Shevchenko", "+380671112233", "maria@gmail.com", "assigned", "import"),
    ]
    raws = [json.loads(str(row[5])) for row in rows]
    assert [raw["city"] for raw in raws] == ["Lviv", "Kyiv", "Kharkiv", "Dnipro"]
    assert raws[0]["phone"] == "+380 (67) 123-45-67"  # raw is what the file said
    assert cli.query("select key, open_leads from managers order by id") == [
        ("anna", 2),
        ("bohdan", 1),
        ("chrystia", 1),
    ]
    assert cli.count("assignments") == 4


def test_importing_the_same_file_again_creates_nothing(cli: Cli) -> None:
    csv_file = cli.write("leads.csv", LEADS_CSV)
    assert cli("import", str(csv_file)).returncode == 2
    tables = ("leads", "assignments", "events", "rr_pointers")
    before = {t: cli.count(t) for t in tables}
    loads = cli.query("select key, open_leads from managers order by id")

    r = cli("import", str(csv_file))
    assert r.returncode == 2  # the bad row is still bad
    assert "0 new, 4 already here, 0 junk, 0 unassigned, 1 rejected" in one_line(r.stdout)
    assert {t: cli.count(t) for t in tables} == before
    assert before["leads"] == 4
    assert cli.query("select key, open_leads from managers order by id") == loads


def test_a_clean_file_imports_with_exit_code_0(cli: Cli) -> None:
    good = "\n".join(line for line in LEADS_CSV.splitlines() if "Bad Phone" not in line) + "\n"
    r = cli("import", str(cli.write("good.csv", good)), "--channel", "fair-2026")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 new" in r.stdout and "0 rejected" in r.stdout
    assert cli.query("select distinct channel from leads") == [("fair-2026",)]


def test_a_semicolon_separated_excel_export_works(cli: Cli) -> None:
    # What Excel writes in a Ukrainian locale: a byte-order mark, semicolons, CRLF, commas inside fields.
    text = (
        "\ufeffName;Phone;Product;City;Message\r\n"
        "Ivan Petrenko;067 123 45 67;credit;Lviv;call me after 18:00, please\r\n"
        "Olha Koval;+380501112233;leasing;Kyiv;\r\n"
        "Petro Bondar;0631234567;credit;Kharkiv;a, b, c\r\n"
    )
    r = cli("import", str(cli.write("excel.csv", text)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 new, 0 already here, 0 junk, 0 unassigned, 0 rejected" in one_line(r.stdout)
    rows = cli.query("select name, phone, product, message, raw from leads order by id")
    assert [row[:4] for row in rows] == [
        ("Ivan Petrenko", "+380671234567", "credit", "call me after 18:00, please"),
        ("Olha Koval", "+380501112233", "leasing", None),
        ("Petro Bondar", "+380631234567", "credit", "a, b, c"),
    ]
    assert [json.loads(str(row[4]))["city"] for row in rows] == ["Lviv", "Kyiv", "Kharkiv"]


def test_import_sets_junk_aside_and_counts_it(cli: Cli) -> None:
    text = "name,phone\nCasino Royale,0671234567\nNo Contact,\nIvan,0501112233\n"
    r = cli("import", str(cli.write("mixed.csv", text)))
    assert r.returncode == 2, r.stdout + r.stderr  # a row with no way to reach the client is refused, and named
    assert "2 new, 0 already here, 1 junk, 0 unassigned, 1 rejected" in one_line(r.stdout)
    assert "no way to reach the client" in one_line(r.stderr)
    assert cli.query("select status, junk_reason from leads order by id") == [
        ("junk", "name contains the junk keyword 'casino'"),
        ("assigned", None),
    ]


def test_import_of_a_missing_file_fails(cli: Cli) -> None:
    r = cli("import", "nowhere.csv")
    assert r.returncode == 1
    assert "does not exist" in one_line(r.stderr)
    assert not cli.db.exists()


# --------------------------------------------------------------------------------------------------------------
# post


def test_post_prints_the_decision_as_json(cli: Cli) -> None:
    lead = {"name": "Oksana Lysenko", "phone": "+380 (67) 765-43-21", "product": "credit", "utm_source": "google",
            "message": "Please call me back tomorrow morning about a credit line for my shop"}  # fmt: skip
    path = cli.write("lead.json", json.dumps(lead))
    r = cli("post", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "id": 1,
        "created": True,
        "merged": False,
        "status": "assigned",
        "manager": "anna",
        "reason": "rule 'all' matched any lead; round robin among 3 eligible",
        "problems": [],
    }
    [(phone, utm, manager_id)] = cli.query("select phone, utm, manager_id from leads")
    assert (phone, json.loads(utm), manager_id) == ("+380677654321", {"utm_source": "google"}, 1)

    # The same client again, while the lead is open, is folded into it: one lead, one owner.
    again = cli("post", str(path))
    assert again.returncode == 0, again.stderr
    decision = json.loads(again.stdout)
    assert (decision["id"], decision["merged"], decision["manager"]) == (1, True, "anna")
    assert decision["reason"].startswith("folded into open lead #1: the same client (phone +380677654321)")


def test_post_with_an_external_id_twice_creates_one_lead(cli: Cli) -> None:
    path = cli.write("lead.json", json.dumps({"phone": "0671234567", "channel": "crm", "external_id": "CRM-7"}))
    first = json.loads(cli("post", str(path)).stdout)
    second = json.loads(cli("post", str(path)).stdout)
    assert first["created"] is True and second["created"] is False
    assert second["id"] == first["id"] and second["manager"] == first["manager"]
    assert cli.count("leads") == 1


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"name": "Ivan", "phone": "12"}', "phone"),
        ('{"phnoe": "0671234567"}', "empty"),
        ("{not json", "json"),
        ("[1, 2]", "json object"),
    ],
    ids=["bad phone", "only an unknown field", "broken JSON", "not an object"],
)
def test_post_of_a_bad_lead_fails_and_stores_nothing(cli: Cli, content: str, field: str) -> None:
    r = cli("post", str(cli.write("lead.json", content)))
    assert r.returncode == 1
    assert "error:" in r.stderr and field in one_line(r.stderr).lower()
    assert not cli.db.exists() or cli.count("leads") == 0


# --------------------------------------------------------------------------------------------------------------
# The import service on both databases


def test_a_bulk_file_is_shared_fairly_on_both_databases(make_app: Callable[[str], Leadflow], tmp_path: Path) -> None:
    lf = make_app(THREE_MANAGERS)
    path = tmp_path / "bulk.csv"
    rows = [f"Client {i},+38067{i:07d},credit,Kyiv" for i in range(300)]
    path.write_text("name,phone,product,city\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ticks: list[int] = []

    report = import_csv(lf, path, utcnow, progress=lambda: ticks.append(1))
    assert (report.created, report.repeated, report.junk, report.unassigned, report.rejected) == (300, 0, 0, 0, [])
    assert len(ticks) == 300
    with lf.engine.connect() as conn:
        per_manager = Counter(
            conn.execute(select(managers.c.key).join(leads, leads.c.manager_id == managers.c.id)).scalars()
        )
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    assert per_manager == {"anna": 100, "bohdan": 100, "chrystia": 100}
    assert loads == {"anna": 100, "bohdan": 100, "chrystia": 100, "head": 0}

    again = import_csv(lf, path, utcnow)
    assert (again.created, again.repeated, again.rejected) == (0, 300, [])
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == 300


def test_import_reports_bad_rows_with_their_line_on_both_databases(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(THREE_MANAGERS)
    path = tmp_path / "mixed.csv"
    path.write_text(
        "name,phone,budget\nIvan,0671234567,1500\nOlha,0501112233,a lot\nPetro,12,\nMaria,0631234567,\n",
        encoding="utf-8",
    )
    report = import_csv(lf, path, utcnow)
    assert (report.created, report.flagged) == (3, 1)  # Olha is kept: her phone works, her budget is named
    assert [line for line, _ in report.rejected] == [4]
    assert report.rejected[0][1].startswith("phone '12' is too short for region UA (field: phone); ")
    with lf.engine.connect() as conn:
        problems = conn.execute(select(leads.c.problems).where(leads.c.name == "Olha")).scalar_one()
    assert problems == [{"field": "budget", "reason": "budget 'a lot' was not kept: Input should be a valid decimal"}]


# --------------------------------------------------------------------------------------------------------------
# Regression tests for bugs found while writing this file (fixed since)


def test_a_reexported_row_with_the_same_external_id_does_not_stop_the_import(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(THREE_MANAGERS)
    path = tmp_path / "crm.csv"
    path.write_text(
        "external_id,name,phone,note\nCRM-1,Ivan,0671234567,first\nCRM-1,Ivan,0671234567,updated\n"
        "CRM-2,Olha,0501112233,\n",
        encoding="utf-8",
    )
    report = import_csv(lf, path, utcnow, channel="crm")
    assert report.created == 2
    assert report.repeated + len(report.rejected) == 1
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == 2


def test_unquoted_closed_dates_in_a_rules_file_work_at_start(cli: Cli) -> None:
    cli.write(
        "rules.yaml",
        RULES.replace(
            "timezone: Europe/Kyiv}", "timezone: Europe/Kyiv, hours: {mon-fri: '09:00-18:00', closed: [2026-12-25]}}"
        ),
    )
    check = cli("check-rules", str(cli.rules))
    assert check.returncode == 0, check.stderr
    r = cli("init-db")
    assert r.returncode == 0, r.stderr


def test_check_rules_names_the_line_of_a_manager_in_an_undeclared_team(cli: Cli) -> None:
    broken = cli.write(
        "broken.yaml",
        RULES.replace("{key: chrystia, name: Chrystia, team: sales", "{key: chrystia, name: Chrystia, team: marketing"),
    )
    r = cli("check-rules", str(broken))
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert "manager 'chrystia' is in team 'marketing'" in err
    assert "line 8: managers.2.team" in err


def test_a_range_on_a_text_field_is_refused_or_harmless(cli: Cli) -> None:
    rules = RULES.replace(
        "    - {key: all,", "    - {key: big, team: sales, when: {region: {gte: 10}}}\n    - {key: all,"
    )
    cli.write("rules.yaml", rules)
    check = cli("check-rules", str(cli.rules))
    if check.returncode == 1:  # refused up front, naming the rule's line: fine
        assert "line 11" in one_line(check.stderr)
        return
    r = cli("post", str(cli.write("lead.json", '{"phone": "+48 601 234 567", "region": "PL"}')))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["manager"] == "anna"


def test_check_rules_refuses_bad_hours_of_a_team_without_managers(cli: Cli) -> None:
    broken = cli.write("broken.yaml", "teams:\n  - {key: night, name: Night shift, hours: 'mon-fri 9 to 6'}\n")
    r = cli("check-rules", str(broken))
    assert r.returncode == 1, r.stdout
    assert "cannot read hours '9 to 6'" in one_line(r.stderr)


# --------------------------------------------------------------------------------------------------------------
# route --dry-run, contact, assign --unassigned, train-scoring


def test_route_dry_run_explains_and_stores_nothing(cli: Cli) -> None:
    lead = cli.write("lead.json", '{"name": "Ivan", "phone": "0671234567"}')
    r = cli("route", "--dry-run", str(lead))
    assert r.returncode == 0, r.stderr
    out = one_line(r.stdout)
    assert "pick: anna" in out and "reason: rule 'all' matched any lead; round robin among 3 eligible" in out
    assert cli.count("leads") == 0
    assert cli("route", "--dry-run", str(cli.write("bad.json", '{"phone": "12"}'))).returncode == 1


def test_contact_stops_the_clock_from_the_command_line(cli: Cli) -> None:
    assert cli("post", str(cli.write("lead.json", '{"phone": "0671234567"}'))).returncode == 0
    wrong = cli("contact", "1", "--manager", "bohdan")
    assert wrong.returncode == 1 and "Bohdan has never owned lead 1: it is with Anna" in one_line(wrong.stderr)
    r = cli("contact", "1", "--manager", "anna", "--kind", "message", "--outcome", "sent")
    assert r.returncode == 0, r.stderr
    assert '"sla_state": "met"' in r.stdout and '"status": "contacted"' in r.stdout
    assert cli.query("select sla_state, response_band from leads") == [("met", "≤20m")]


def test_assign_unassigned_plans_then_routes_the_backlog(cli: Cli) -> None:
    # The rules file wins for the managers it declares, so the team is switched off and on there.
    cli.write("rules.yaml", RULES.replace("capacity: 1000}", "capacity: 1000, active: false}"))
    for i in range(6):
        assert cli("post", str(cli.write(f"l{i}.json", f'{{"phone": "+38067000000{i}"}}'))).returncode == 0
    assert cli.query("select count(*) from leads where manager_id is null") == [(6,)]
    cli.write("rules.yaml", RULES)
    assert cli("assign").returncode == 1  # says which leads to route
    plan = cli("assign", "--unassigned", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "would assign 6" in one_line(plan.stdout)
    assert cli.query("select count(*) from leads where manager_id is null") == [(6,)]
    done = cli("assign", "--unassigned")
    assert done.returncode == 0 and "assigned 6" in one_line(done.stdout)
    assert cli.query("select manager_id, count(*) from leads group by manager_id") == [(1, 2), (2, 2), (3, 2)]


def test_train_scoring_says_why_it_cannot_train_yet(cli: Cli) -> None:
    r = cli("train-scoring")
    assert r.returncode == 1
    assert "closed" in one_line(r.stderr)
    assert cli("train-scoring", "--csv", str(cli.dir / "missing.csv")).returncode == 1


TRIGGER_LOOP = """
teams: [{key: t}]
managers: [{key: a, name: A, team: t}]
funnel: [{key: new}, {key: assigned}, {key: contacted}, {key: qualified}, {key: thinking}, {key: junk, open: false}]
automations:
  triggers:
    - {key: ask, when: {status_entered: qualified}, then: [{status: thinking}]}
    - {key: answer, when: {status_entered: thinking}, then: [{task: {title: call}}, {status: qualified}]}
"""


def test_check_rules_refuses_triggers_that_set_each_other_off_naming_the_loop(cli: Cli) -> None:
    looping = cli.write("loop.yaml", TRIGGER_LOOP)
    r = cli("check-rules", str(looping))
    assert r.returncode == 1
    said = one_line(r.stdout + r.stderr)
    assert "line 7: automations.triggers: these triggers set each other off without end: ask" in said
    assert "answer (status → the lead entered a status (qualified)) → ask" in said
