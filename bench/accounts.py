"""Routing one lead with account matching on: 500 managers, 50 rules, a base of 100,000 contacts, on SQLite.

What intake does between cleaning a lead and writing it, timed one lead at a time on a read connection (so the
figures are the routing step's, not the commit's):

* find the client and their account: ``find_matches`` with account matching off, and on (the team's
  ``match_accounts: true``: open leads with a company name like the lead's, contacts and open leads with its
  corporate e-mail domain);
* decide: to the account's or the client's owner under the sticky policy, or by the rules (``route_now``: the
  teams' state read from the database, then ``route``);
* the decision alone, ``route`` on a state in memory (the figure bench/routing.py part (a) reports).

The base: 100,000 contacts (a third with a company), 10,000 companies, 5,000 open leads of single people and
20,000 open leads of people at known companies with corporate e-mail domains. The probes: a third name a known
company as people type it, a third write from a known company's domain, a third are new. Baseline in the same run:
one ``SELECT`` of a manager by primary key through SQLAlchemy.

    .venv/bin/python -m bench.accounts [--probes 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bench.common import console, machine_info, median, percentile, print_table
from bench.intake import BASE_CREATED, DataGen, fill_base, fill_open_leads
from bench.routing import NOW, PRODUCTS, REGIONS, SEED, decision_rules
from leadflow.core.cleaning import clean_lead, company_block, company_key
from leadflow.core.dedupe import choose_duplicate
from leadflow.core.lead import CleanLead, LeadIn
from leadflow.core.routing import FALLBACK, TeamState, route, sticky_choice, sticky_policy
from leadflow.core.rules import RulesFile
from leadflow.services.intake import route_now
from leadflow.store.db import READ_ONLY, make_engine, migrate
from leadflow.store.matching import find_matches
from leadflow.store.tables import leads, managers
from leadflow.store.team_state import apply_rules_people, load_manager, load_team_state

TARGET_P99_MS = 1.0


def rules_with_accounts() -> RulesFile:
    """bench/routing.py's 500 managers and 50 rules (round robin), every team matching leads to accounts."""
    rules = decision_rules("round_robin", random.Random(SEED))
    teams = tuple(t.model_copy(update={"match_accounts": True}) for t in rules.teams)
    return rules.model_copy(update={"teams": teams})


def fill_accounts(engine: Engine, gen: DataGen, owner_ids: Sequence[int], count: int) -> list[tuple[str, str]]:
    """Open leads of people at known companies, as intake stores them (company keys, corporate e-mail domain).
    Returns (company name, domain) of each account."""
    rng = gen.rng
    accounts = []
    rows: list[dict[str, Any]] = []
    for i in range(count):
        name = gen.companies[i % len(gen.companies)]
        key = company_key(name)
        domain = f"{key.replace(' ', '-')[:30]}.com.ua" if key else f"firm{i}.com.ua"
        first, last = gen.person()
        email = gen.new_email(first, last, domain)
        accounts.append((name, domain))
        rows.append({
            "channel": "web", "name": f"{first} {last}", "phone": gen.new_phone(), "email": email, "company": name,
            "company_key": key, "company_block": company_block(key) if key else None, "email_domain": domain,
            "utm": {}, "raw": {}, "status": rng.choice(("assigned", "contacted", "qualified")),
            "manager_id": rng.choice(owner_ids), "created_at": BASE_CREATED, "updated_at": BASE_CREATED,
        })  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(leads.insert(), rows[start : start + 20_000])
    return accounts


def probes(gen: DataGen, accounts: Sequence[tuple[str, str]], n: int, region: str) -> list[CleanLead]:
    rng = gen.rng
    found = []
    for i in range(n):
        first, last = gen.person()
        name, domain = rng.choice(accounts)
        where = {"region": rng.choice(REGIONS), "product": rng.choice(PRODUCTS), "budget": rng.randint(0, 100_000)}
        if i % 3 == 0:  # a known company, as people type it
            lead = LeadIn(name=f"{first} {last}", phone=gen.new_phone(), company=gen.company_variant(name), **where)
        elif i % 3 == 1:  # from a known company's domain
            lead = LeadIn(name=f"{first} {last}", email=gen.new_email(first, last, domain), **where)
        else:  # nobody known
            lead = LeadIn(name=f"{first} {last}", phone=gen.new_phone(), email=gen.new_email(first, last), **where)
        found.append(clean_lead(lead, region))
    return found


def timed(fn: Callable[[CleanLead], object], leads_: Sequence[CleanLead], rounds: int) -> dict[str, float]:
    """p50, p99 and max in ms of fn per lead: the median over `rounds` of each, after a warm round."""
    p50s, p99s, maxes = [], [], []
    clock = time.perf_counter_ns
    for r in range(rounds + 1):
        times = []
        for lead in leads_:
            t0 = clock()
            fn(lead)
            times.append(clock() - t0)
        if r:
            p50s.append(percentile(times, 50) / 1e6)
            p99s.append(percentile(times, 99) / 1e6)
            maxes.append(max(times) / 1e6)
    return {"p50_ms": round(median(p50s), 4), "p99_ms": round(median(p99s), 4), "max_ms": round(median(maxes), 3)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.accounts", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument("--probes", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    rules = rules_with_accounts()
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'accounts.db'}"
        migrate(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            owner_ids = list(apply_rules_people(conn, rules, BASE_CREATED).values())
        gen = DataGen(SEED + 5)
        console.print(f"[dim]filling {args.contacts:,} contacts, {args.contacts // 10:,} companies ...[/dim]")
        fill_base(engine, gen, owner_ids, args.contacts, args.contacts // 10)
        fill_open_leads(engine, gen, owner_ids, args.contacts // 20)
        accounts = fill_accounts(engine, gen, owner_ids, args.contacts // 5)
        sample = probes(gen, accounts, args.probes, rules.default_region)
        statuses, similarity = rules.open_statuses, rules.dedupe.company_similarity
        free_mail = rules.dedupe.free_mail_domains
        results: dict[str, dict[str, float]] = {}
        matched = Counter()  # the probes by what they matched: account, contact, company, nothing
        with engine.connect().execution_options(**READ_ONLY) as conn:
            teams = sorted({t.key for t in rules.teams})
            state: TeamState = load_team_state(conn, teams, [r.key for r in rules.routing.rules] + [FALLBACK],
                                               rules.default_timezone)  # fmt: skip

            def routing_step(lead: CleanLead) -> object:
                # What intake does from the look-up to the decision (services/intake.py, receive).
                duplicate = choose_duplicate(find_matches(conn, lead, statuses, similarity, free_mail))
                if duplicate is not None and duplicate.match.owner_id is not None:
                    owner = load_manager(conn, duplicate.match.owner_id, rules.default_timezone)
                    policy, wait = sticky_policy(lead, rules, owner.team if owner is not None else None)
                    decision = sticky_choice(owner, duplicate.reason, policy, NOW, wait).decision
                    if decision is not None:
                        return decision
                return route_now(conn, lead, rules, NOW)[0]

            for lead in sample:
                d = choose_duplicate(find_matches(conn, lead, statuses, similarity, free_mail))
                matched[d.match.kind if d is not None else "nothing"] += 1
            query = select(managers).where(managers.c.id == 1)
            ids = [random.Random(SEED).randint(1, 500) for _ in sample]
            at = iter(ids * (args.rounds + 2))
            measures: list[tuple[str, Callable[[CleanLead], object]]] = [
                ("baseline: one SQLAlchemy SELECT by primary key",
                 lambda _lead: conn.execute(query.where(managers.c.id == next(at))).first()),
                ("route() alone, state in memory", lambda lead: route(lead, rules, state, NOW)),
                ("find_matches, account matching off", lambda lead: find_matches(conn, lead, statuses, similarity)),
                ("find_matches, account matching on",
                 lambda lead: find_matches(conn, lead, statuses, similarity, free_mail)),
                ("route_now (state read + route)", lambda lead: route_now(conn, lead, rules, NOW)),
                ("routing step: matching on, then owner or rules", routing_step),
            ]  # fmt: skip
            for name, fn in measures:
                results[name] = timed(fn, sample, args.rounds)
                console.print(f"  [dim]{name}: p99 {results[name]['p99_ms']:.3f} ms[/dim]")
        engine.dispose()
    load = os.getloadavg()[0]
    step = results["routing step: matching on, then owner or rules"]
    print_table(
        f"one lead, 500 managers × 50 rules, account matching on, {args.contacts:,} contacts, "
        f"{len(accounts):,} account leads; probes matched: {', '.join(f'{k} {v:,}' for k, v in matched.most_common())}"
        f" (load {load:.1f})",
        ["measure", "p50 ms", "p99 ms", "max ms"],
        [[k, f"{v['p50_ms']:.3f}", f"{v['p99_ms']:.3f}", f"{v['max_ms']:.2f}"] for k, v in results.items()],
        caption=f"Target: routing step p99 under {TARGET_P99_MS} ms: "
        + ("met" if step["p99_ms"] < TARGET_P99_MS else "NOT met"),
    )
    if args.json:
        payload = {"machine": machine_info(), "matched": dict(matched), "probes": len(sample), "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
