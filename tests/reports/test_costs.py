"""Importing advertising spend from a CSV and reading it back, on SQLite and PostgreSQL: the accepted shapes of the
file, adding and replacing lines, every wrong line named with nothing written, the limits, who may do it, and the
import over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.core.errors import Forbidden, InvalidInput
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.reports import costs
from leadflow.services.reports.costs import import_costs, list_costs, parse_costs
from leadflow.store.tables import channel_costs
from tests.support import bearer, live_server, new_key, person

RULES = """
teams:
  - {key: sales, name: Sales}
managers:
  - {key: anna, name: Anna, team: sales}
"""
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 9, tzinfo=UTC)
HEAD = Principal("user", "head", grants=(Grant("head"),))


@pytest.fixture
def app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


def stored(app: Leadflow) -> list[tuple[str, str, str, str, Decimal]]:
    return [(r["day"].isoformat(), r["channel"], r["source"], r["campaign"], r["amount"])
            for r in list_costs(app, date(2026, 1, 1), date(2026, 12, 31), who=SYSTEM)]  # fmt: skip


def rows_in_table(app: Leadflow) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(channel_costs)).scalar_one())


def problems(error: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in error.value.problems]


def test_import_adds_then_replaces_and_lists_in_order(app: Leadflow) -> None:
    first = "day,channel,source,campaign,amount\n2026-11-03,web,google,black-friday,120.50\n2026-11-03,web,,,40\n" \
            "2026-11-04,,,black-friday,10.00\n"  # fmt: skip
    assert import_costs(app, first, NOW, who=HEAD) == {"added": 3, "replaced": 0, "rows": 3}
    # Again, with one line changed and one new: the same day, channel, source and campaign is replaced.
    second = "day,channel,source,campaign,amount\n2026-11-03,web,google,black-friday,99.99\n" \
             "2026-11-05,telegram,bot,,7\n"  # fmt: skip
    assert import_costs(app, second, LATER, who=HEAD) == {"added": 1, "replaced": 1, "rows": 2}
    # By day, then channel, source and campaign ('' sorts first).
    assert stored(app) == [
        ("2026-11-03", "web", "", "", Decimal("40.00")),
        ("2026-11-03", "web", "google", "black-friday", Decimal("99.99")),
        ("2026-11-04", "", "", "black-friday", Decimal("10.00")),
        ("2026-11-05", "telegram", "bot", "", Decimal("7.00")),
    ]
    listed = list_costs(app, date(2026, 11, 3), date(2026, 11, 3), who=HEAD)
    assert [(r["amount"], r["updated_at"], r["actor"]) for r in listed] == [
        (Decimal("40.00"), NOW, "user:head"), (Decimal("99.99"), LATER, "user:head")]  # fmt: skip
    assert list_costs(app, date(2026, 11, 6), date(2026, 11, 30), who=HEAD) == []


def test_the_shapes_a_spreadsheet_exports(app: Leadflow) -> None:
    # A byte-order mark, semicolons, the amount first, a decimal comma, spaces between thousands, a capitalised
    # channel and header, blank lines, and only the columns wanted (no source).
    text = '\ufeffAmount; Day ;Campaign;Channel\n"1 234,5";2026-11-03;spring;Web\n\n12;2026-11-04;;\n'
    assert import_costs(app, text, NOW, who=SYSTEM) == {"added": 2, "replaced": 0, "rows": 2}
    assert stored(app) == [("2026-11-03", "web", "", "spring", Decimal("1234.50")),
                           ("2026-11-04", "", "", "", Decimal("12.00"))]  # fmt: skip
    # Tab separated, quoted cells with the separator inside.
    tabs = 'day\tamount\tsource\n2026-11-05\t3.10\t"partner\tsite"\n'
    assert import_costs(app, tabs, NOW, who=SYSTEM)["added"] == 1
    assert stored(app)[-1] == ("2026-11-05", "", "partner\tsite", "", Decimal("3.10"))
    # Windows line ends.
    assert import_costs(app, "day,amount\r\n2026-11-06,1\r\n", NOW, who=SYSTEM)["added"] == 1


def test_every_wrong_line_is_named_and_nothing_is_written(app: Leadflow) -> None:
    import_costs(app, "day,amount\n2026-11-01,5\n", NOW, who=SYSTEM)
    text = (
        "day,channel,amount\n"
        "2026-11-03,web,10\n"  # line 2: fine, but not written while others are wrong
        "03.11.2026,web,10\n"  # line 3
        "2026-02-30,web,10\n"  # line 4: no such day
        "2026-11-04,web,ten\n"  # line 5
        "2026-11-05,web,-3\n"  # line 6
        "2026-11-06,web,1.005\n"  # line 7
        '2026-11-07,web,"1,234.50"\n'  # line 8
        "2026-11-08,Web Ads,1\n"  # line 9
        "2026-11-03,web,11\n"  # line 10: line 2 again
        ",web,1\n"  # line 11
        "2026-11-09,web,1,extra\n"  # line 12
        "2026-11-10,web,1e3\n"  # line 13
    )
    with pytest.raises(InvalidInput) as error:
        import_costs(app, text, NOW, who=SYSTEM)
    assert problems(error) == [
        ("day", "line 3: '03.11.2026' is not a day: write it as 2026-11-03"),
        ("day", "line 4: '2026-02-30' is not a day: write it as 2026-11-03"),
        ("amount", "line 5: amount 'ten' is not a number"),
        ("amount", "line 6: amount -3 is negative"),
        ("amount", "line 7: amount '1.005' has more than 2 decimals"),
        ("amount", "line 8: amount '1,234.50' has both '.' and ',': write one decimal mark and no thousands separator"),
        ("channel", "line 9: channel 'web ads' is not a channel name (lower-case letters, digits, '_', '.', '-')"),
        ("day", "line 10: the same day, channel, source and campaign as line 2"),
        ("day", "line 11: the day is missing"),
        ("file", "line 12: 4 cells under 3 columns"),
        ("amount", "line 13: amount '1e3' is not a number"),
    ]
    assert stored(app) == [("2026-11-01", "", "", "", Decimal("5.00"))]  # the earlier import, untouched


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("file", "the file is empty: the first line names the columns (day, amount, and any of channel, "
                       "source, campaign)")]),
        ("day,amount\n", [("file", "the file has a header but no lines of spend")]),
        ("day,cost\n2026-11-03,1\n", [("file", "line 1: unknown column 'cost': the columns are day, amount, channel, "
                                               "source, campaign"), ("file", "line 1: the column 'amount' is missing")]),
        ("day,amount,day\n", [("file", "line 1: the column 'day' is named twice")]),
        ("day,amount\n2026-11-03,1\x00\n", [("file", "line 2: a NUL character: the file is not text; export it as CSV")]),
        ("day,amount,source\n2026-11-03,1,\"" + "x" * 200_000 + "\"\n",
         [("file", "line 2: the line cannot be read as CSV (field larger than field limit (131072))")]),
    ],
)  # fmt: skip
def test_a_header_that_does_not_fit(app: Leadflow, text: str, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidInput) as error:
        import_costs(app, text, NOW, who=SYSTEM)
    assert problems(error) == expected
    assert rows_in_table(app) == 0


def test_the_limits(app: Leadflow, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100,000 lines are taken (all in one transaction); one more is refused before anything is written.
    days = [date.fromordinal(date(2000, 1, 1).toordinal() + i).isoformat() for i in range(10_000)]
    lines = [f"{d},c{n},1.5" for n in range(10) for d in days]
    assert len(lines) == 100_000
    text = "day,channel,amount\n" + "\n".join(lines) + "\n"
    assert import_costs(app, text, NOW, who=SYSTEM) == {"added": 100_000, "replaced": 0, "rows": 100_000}
    with pytest.raises(InvalidInput, match="more than 100,000 lines: split it"):
        import_costs(app, text + "2030-01-01,web,1\n", NOW, who=SYSTEM)
    # 5 MB of text at most, counted in UTF-8 bytes.
    big = "day,amount\n" + "2026-11-03,1\n" * (5 * 1024 * 1024 // 13 + 1)
    with pytest.raises(InvalidInput, match="the file is over 5 MB"):
        parse_costs(big)
    monkeypatch.setattr(costs, "MAX_PROBLEMS", 2)
    with pytest.raises(InvalidInput) as error:
        parse_costs("day,amount\nx,1\ny,1\nz,1\nw,1\n")
    assert [p.reason for p in error.value.problems][-1] == "and 2 more line(s) with a problem"
    assert rows_in_table(app) == 100_000


def test_who_may_import_and_read(app: Leadflow) -> None:
    anna = Principal("user", "anna", grants=(Grant("manager"),), manager_id=1)
    desk = Principal("user", "dana", grants=(Grant("desk"),))
    reader = Principal("key", "bi", scope="read")
    writer = Principal("key", "crm", scope="write")
    text = "day,amount\n2026-11-03,1\n"
    for refused in (anna, desk, reader):
        with pytest.raises(Forbidden, match="may not import advertising costs: it takes the role admin or head"):
            import_costs(app, text, NOW, who=refused)
    assert import_costs(app, text, NOW, who=writer)["added"] == 1
    assert len(list_costs(app, date(2026, 11, 1), date(2026, 11, 30), who=anna)) == 1  # reports.read
    with pytest.raises(Forbidden, match="may not read advertising costs"):
        list_costs(app, date(2026, 11, 1), date(2026, 11, 30), who=desk)
    with pytest.raises(InvalidInput, match=r"the period ends \(2026-11-01\) before it starts \(2026-11-30\)"):
        list_costs(app, date(2026, 11, 30), date(2026, 11, 1), who=anna)
    with pytest.raises(InvalidInput, match="a list covers at most 400 days; this asks for 401"):
        list_costs(app, date(2025, 1, 1), date(2026, 2, 5), who=anna)


def test_import_over_http(app: Leadflow) -> None:
    head = person(app, "halyna", "head")
    reader = bearer(new_key(app, "read"))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = "day,channel,amount\n2026-11-03,web,12.5\n2026-11-04,web,7\n"
        sent = client.post("/api/v1/reports/costs", content=body, headers=head | {"Content-Type": "text/csv"})
        assert (sent.status_code, sent.json()) == (200, {"added": 2, "replaced": 0, "rows": 2})
        again = client.post("/api/v1/reports/costs", json={"csv": "day,channel,amount\n2026-11-03,web,13\n"},
                            headers=head)  # fmt: skip
        assert again.json() == {"added": 0, "replaced": 1, "rows": 1}
        wrong = client.post("/api/v1/reports/costs", content="day,amount\n2026-11-03,x\n",
                            headers=head | {"Content-Type": "text/csv"})  # fmt: skip
        assert wrong.status_code == 422
        assert "line 2: amount 'x' is not a number" in wrong.text
        assert client.post("/api/v1/reports/costs", content=body,
                           headers=reader | {"Content-Type": "text/csv"}).status_code == 403  # fmt: skip
        listed = client.get("/api/v1/reports/costs", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=reader)
        assert listed.status_code == 200, listed.text
        assert [(r["day"], r["channel"], r["amount"]) for r in listed.json()] == [
            ("2026-11-03", "web", "13.00"), ("2026-11-04", "web", "7.00")]  # fmt: skip
