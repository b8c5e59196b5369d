"""The `leadflow` command."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from leadflow.cli_errors import CommandError, explain
from leadflow.core.policy import Principal
from leadflow.core.rules_text import RulesError
from leadflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from leadflow.services.context import Leadflow
    from leadflow.services.health import NotificationReach

console = Console(soft_wrap=True)
# Who the CLI is in the history and the audit: the operator of the host, who may do everything.
CLI = Principal("system", "cli")
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


class _Commands(typer.Typer):
    """Every command registered here answers a person's mistake with one line and exit code 1, not a traceback."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(function: F) -> F:
            register(_one_line_errors(function))
            return function

        return decorator


def _one_line_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # already said, or usage the parser explains
            raise
        except Exception as exc:
            files = [v for k, v in kwargs.items() if isinstance(v, Path) and k != "rules"]
            message = explain(exc, database_url=kwargs.get("database") or _configured_database(), files=files)
            if message is None:
                raise  # a fault in leadflow itself: the traceback is for whoever fixes it
            raise _fail(message) from None

    return run


def _configured_database() -> str | None:
    try:
        return get_settings().database_url
    except Exception:  # the settings themselves are broken; that error is the one to show
        return None


# Locals in a traceback would show database passwords and tokens.
app = _Commands(
    help="leadflow: every lead collected, cleaned, routed and called back.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

RulesOption = Annotated[Path | None, typer.Option("--rules", "-r", help="Rules file (default: LEADFLOW_RULES).")]
DbOption = Annotated[
    str | None, typer.Option("--database", "-d", help="Database URL (default: LEADFLOW_DATABASE_URL).")
]


def _settings(rules: Path | None = None, database: str | None = None) -> Settings:
    settings = get_settings()
    changes: dict[str, object] = {}
    if rules is not None:
        changes["rules"] = rules
    if database is not None:
        changes["database_url"] = database
    return settings.model_copy(update=changes) if changes else settings


def _fail(message: str) -> typer.Exit:
    err.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code=1)


def _read_request(file: Path) -> dict[str, Any]:
    """One lead from a JSON file, as a channel would send it; a broken file is named in the error."""
    from leadflow.core.errors import InvalidInput
    from leadflow.core.text import read_json

    try:
        data = read_json(file.read_bytes())
    except InvalidInput as exc:  # "the body is not valid JSON: ...": here the body is the file
        raise CommandError(f"{file}: {exc.problems[0].reason.removeprefix('the body is ')}") from None
    if not isinstance(data, dict):
        raise CommandError(f'{file}: a lead is a JSON object, like {{"name": ..., "phone": ...}}')
    return data


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _first_accounts(lf: Leadflow, settings: Settings) -> None:
    """With no account and no key, nobody could use the API: on loopback, make the first ones and show their
    secrets once; beyond loopback, refuse to start (anyone could be first)."""
    from leadflow.services.accounts import first_start
    from leadflow.services.context import utcnow

    beyond = settings.host not in _LOOPBACK and not settings.host.startswith("127.")
    if beyond:
        from leadflow.services.accounts import has_accounts

        with lf.engine.connect() as conn:
            if not has_accounts(conn):
                raise _fail(
                    f"--host {settings.host} serves beyond this machine, and no account or API key exists "
                    "yet: create one first (leadflow users create admin --role admin), or serve on 127.0.0.1"
                )
        err.print(Text.assemble(("warning: ", "bold yellow"), f"serving on {settings.host} over plain HTTP: put a "
                                "reverse proxy with TLS in front, and set LEADFLOW_ALLOWED_HOSTS (docs/network.md)"))  # fmt: skip
        return
    with lf.engine.begin() as conn:
        made = first_start(conn, utcnow(), CLI)
    if made is None:
        return
    people, key = made
    table = Table("user", "role", "password", title="First start: sign in at /login (shown once, never again)")
    for person in people:
        table.add_row(person.username, person.role, person.password)
    console.print(table)
    console.print(f"  API key 'first start' (admin, shown once): [bold]{key}[/]")
    console.print("  e.g. curl -H 'Authorization: Bearer <key>' ...; revoke it: leadflow api-keys revoke 'first start'")


def _warn_about_notifications(reach: NotificationReach) -> None:
    for warning in reach.warnings:
        err.print(Text.assemble(("warning: ", "bold yellow"), warning))


@app.command("check-rules")
def check_rules(file: Path) -> None:
    """Validate a rules file; every problem names its line and field."""
    from leadflow.bootstrap import read_rules

    try:
        rules = read_rules(file)
    except RulesError as exc:
        err.print(Text(f"{file}: {len(exc.problems)} problem(s)", "bold red"))
        for problem in exc.problems:
            err.print(Text(f"  {problem}"))
        raise typer.Exit(code=1) from None
    fallback = ", a fallback" if rules.routing.fallback else ", no fallback"
    triggers = rules.automations.triggers
    automations = (f", {len(triggers)} trigger(s) ({sum(t.enabled for t in triggers)} on)" if triggers else "") + (
        f", {len(rules.cadences)} call cadence(s)" if rules.cadences else ""
    )
    console.print(
        Text.assemble(
            (f"{file}: ok", "green"),
            f" — {len(rules.teams)} team(s), {len(rules.managers)} manager(s), "
            f"{len(rules.routing.rules)} routing rule(s){fallback}{automations}",
        )
    )


@app.command("init-db")
def init_db(rules: RulesOption = None, database: DbOption = None) -> None:
    """Create or upgrade the database schema and write the rules file's teams and managers."""
    from leadflow.bootstrap import open_app

    settings = _settings(rules, database)
    lf = open_app(settings)
    console.print(f"[green]database ready[/]: {lf.engine.url.render_as_string(hide_password=True)}")


# Stopping waits this long for answers in progress; a page's live stream never ends by itself (its browser
# reconnects to the next server).
GRACE_SECONDS = 3


@app.command("serve")
def serve(
    rules: RulesOption = None,
    database: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool, typer.Option(help="Also run the worker (deadlines, notifications) in this process.")
    ] = True,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Serving processes (PostgreSQL); the worker still runs once.")
    ] = 1,
    demo: Annotated[
        bool,
        typer.Option(
            help="The demo team on a throwaway database, with a new lead every --demo-pace seconds: sign "
            "in with the printed accounts and watch the queues and the chain."
        ),
    ] = False,
    demo_deadline: Annotated[str, typer.Option(help="With --demo: the first-contact deadline.")] = "2m",
    demo_pace: Annotated[float, typer.Option(min=1, help="With --demo: seconds between new leads.")] = 20.0,
) -> None:
    """Run the HTTP API and the web desk (sign in at /login; OpenAPI at /docs) and, by default, the worker."""
    import gc
    import os

    import uvicorn

    from leadflow.api.app import create_api
    from leadflow.bootstrap import open_app

    settings = _settings(rules, database)
    if host or port:
        settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    if demo:
        settings = _demo_settings(settings, database)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        # One process already keeps SQLite's one writer busy through its group writer; more processes would
        # only take turns at the same lock, polling for it.
        raise _fail("--workers needs PostgreSQL: SQLite has one writer, which one process keeps busy")
    lf = open_app(settings, serving=workers == 1)  # with --workers, the serving processes have the writers
    if demo:
        lf = _demo_app(lf, demo_deadline)
    _first_accounts(lf, settings)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold green]leadflow[/] on {lf.engine.dialect.name} with rules {settings.rules}")
    console.print(
        f"  desk: {url}/login    API: {url}/api/v1/leads    docs: {url}/docs"
        + (f"    {workers} processes" if workers > 1 else "")
    )
    api = create_api(lf, settings)
    if worker:
        from leadflow.worker import Worker

        in_process = Worker(lf, poll_seconds=settings.worker_poll_seconds, senders=_demo_senders() if demo else None)
        _warn_about_notifications(in_process.notification_reach())
        in_process.start()
        api.state.worker = in_process  # GET /api/v1/health reports on it
        console.print("  worker: first-contact deadlines and notifications run in this process")
    else:
        from leadflow.services.health import check_notifications

        _warn_about_notifications(check_notifications(lf))
    # uvicorn closes a connection idle between requests after keep_alive seconds, but times out nothing before a
    # request's headers are in (a proxy in front should); a body that stalls gets 408 from BodyLimit. Connections past
    # limit_concurrency get 503 rather than memory and file descriptors.
    keep_alive = 5
    if workers > 1:
        # The serving processes build their own apps from the same settings (leadflow/api/factory.py); this one
        # supervises them and runs the worker, once for the host.
        os.environ.update(LEADFLOW_DATABASE_URL=settings.database_url, LEADFLOW_RULES=str(settings.rules),
                          LEADFLOW_HOST=settings.host, LEADFLOW_PORT=str(settings.port))  # fmt: skip
        uvicorn.run("leadflow.api.factory:make_api", factory=True, workers=workers, host=settings.host,
                    port=settings.port, log_level="info", access_log=settings.access_log,
                    timeout_keep_alive=keep_alive, limit_concurrency=settings.limit_concurrency,
                    timeout_graceful_shutdown=GRACE_SECONDS)  # fmt: skip
        return
    if demo:
        from leadflow.demo.feeder import DemoFeeder

        DemoFeeder(lf, demo_pace).start()
        console.print(f"  demo: a new lead every {demo_pace:g} s; the deadline is {demo_deadline}. Sign in at "
                      f"{url}/login with an account above")  # fmt: skip
    # Everything built so far (the rules, the app, the imported modules) lives as long as the process: out of the
    # collector's sight, a full collection walks only what requests make, which keeps its pauses out of the tail.
    gc.freeze()
    uvicorn.run(api, host=settings.host, port=settings.port, log_level="info", access_log=settings.access_log,
                timeout_keep_alive=keep_alive, limit_concurrency=settings.limit_concurrency,
                    timeout_graceful_shutdown=GRACE_SECONDS)  # fmt: skip


def _demo_settings(settings: Settings, database: str | None) -> Settings:
    """The demo's rules and, unless a database is named, a new SQLite file (its accounts are printed each time)."""
    import tempfile

    from leadflow.channels.config import NotifyConfig
    from leadflow.demo.run import DEMO_RULES

    url = database or f"sqlite:///{Path(tempfile.mkdtemp(prefix='leadflow-demo-')) / 'demo.db'}"
    # Nothing from the environment's notification settings: the demo must not message anyone.
    return settings.model_copy(update={"database_url": url, "rules": DEMO_RULES, "notify": NotifyConfig()})


def _demo_app(lf: Leadflow, deadline: str) -> Leadflow:
    from dataclasses import replace

    from leadflow.core.schedule import ScheduleError, parse_duration
    from leadflow.demo.run import demo_rules

    try:
        window = parse_duration(deadline)
    except ScheduleError as exc:
        raise _fail(f"--demo-deadline: {exc}") from None
    return replace(lf, rules=demo_rules(window))


def _demo_senders() -> dict[str, Any]:
    from leadflow.demo.run import demo_senders

    return dict(demo_senders())


@app.command("worker")
def run_worker(
    rules: RulesOption = None,
    database: DbOption = None,
    drain: Annotated[bool, typer.Option(help="Escalate and automate what is due now, then exit.")] = False,
    batch: Annotated[int, typer.Option(help="Deadlines claimed per transaction.")] = 100,
) -> None:
    """Act on passed first-contact deadlines, run the automations and deliver notifications (several may run on
    PostgreSQL)."""
    import logging
    import signal

    from leadflow.bootstrap import open_app
    from leadflow.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings(rules, database)
    lf = open_app(settings)
    w = Worker(lf, poll_seconds=settings.worker_poll_seconds, batch=batch)
    _warn_about_notifications(w.notification_reach())
    if drain:
        console.print(f"escalated {w.drain()} lead(s)")
        read, fired, timed = w.drain_automations()
        console.print(f"automations: {read} event(s) read, {fired} trigger(s) fired, {timed} timer(s) due")
        return
    signal.signal(signal.SIGTERM, lambda *_: w.stop.set())
    threads = w.start()
    console.print(f"[green]worker running[/] on {lf.engine.dialect.name}; Ctrl-C stops it")
    try:
        while any(t.is_alive() for t in threads):
            threads[0].join(timeout=0.5)
    except KeyboardInterrupt:
        w.stop.set()


@app.command("assign")
def assign(
    unassigned: Annotated[
        bool, typer.Option("--unassigned", help="Route every lead waiting in the unassigned queue.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the planned distribution; write nothing.")] = False,
    chunk: Annotated[int, typer.Option(help="Leads per transaction.")] = 500,
    limit: Annotated[int | None, typer.Option(help="Only the first N leads of the queue (in the batch order).")] = None,
    order: Annotated[
        str | None,
        typer.Option(
            help="The batch order, most important first, e.g. 'score desc, budget desc' (fields: score, "
            "win_probability, budget, created_at); the rules file's routing.batch_order by default."
        ),
    ] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Route the unassigned backlog: as many leads as fit, the most important first, fair, within caps."""
    from leadflow.bootstrap import open_app
    from leadflow.services.batch import assign_backlog, count_backlog
    from leadflow.services.context import utcnow

    if not unassigned:
        raise _fail("say which leads to route: --unassigned routes the whole unassigned queue")
    lf = open_app(_settings(rules, database))
    total = count_backlog(lf)
    total = min(total, limit) if limit is not None else total
    label = "planning" if dry_run else "assigning"
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total)
        keys = [k.strip() for k in order.split(",")] if order is not None else None
        report = assign_backlog(lf, utcnow(), dry_run=dry_run, chunk=chunk, limit=limit, order=keys,
                                progress=lambda n: bar.advance(task, n), who=CLI)  # fmt: skip
    console.print(report.table())
    if report.unassigned:
        console.print(report.reasons_table())
    verb = "would assign" if dry_run else "assigned"
    note = " (dry run: nothing was written)" if dry_run else ""
    console.print(f"[green]{verb} {report.assigned}[/], {report.left_unassigned} left in the queue, "
                  f"{report.chunks} chunk(s), {report.elapsed:.2f} s{note}")  # fmt: skip


@app.command("train-scoring")
def train_scoring(
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Train from a CSV of past leads (lead columns + outcome won/lost), not the database."
        ),
    ] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Train the win-probability model on closed leads, check it on a held-out quarter, and make it active."""
    from leadflow.bootstrap import open_app
    from leadflow.core.errors import InvalidInput
    from leadflow.services.context import utcnow
    from leadflow.services.training import train_and_store

    if csv is not None and not csv.exists():
        raise _fail(f"{csv} does not exist: check the path")
    lf = open_app(_settings(rules, database))
    try:
        report = train_and_store(lf.engine, lf.rules, utcnow(), csv_path=csv)
    except InvalidInput as exc:
        for problem in exc.problems:
            err.print(f"  {problem.reason} (field: {problem.field})", markup=False)
        raise _fail(f"{csv}: {len(exc.problems)} bad row(s); nothing was trained") from None
    console.print(report.summary(), markup=False, highlight=False)


@app.command("route")
def route_lead(
    file: Annotated[Path, typer.Argument(help="A JSON file with one lead, as it would be posted.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and explain; store nothing (the only mode).")
    ] = True,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Show what the rules would do with a lead right now: its score, the rules, every candidate, the pick."""
    from leadflow.bootstrap import open_app
    from leadflow.core.lead import read_lead
    from leadflow.services.context import utcnow
    from leadflow.services.explain import dry_run as explain_dry_run

    lead, problems, _ = read_lead(_read_request(file))
    result = explain_dry_run(open_app(_settings(rules, database)), lead, utcnow(), problems)
    q = result["qualification"]
    if q["score"] is not None or q["temperature"]:
        console.print(f"[bold]qualification[/]: {q['reason']}")
    table = Table("rule", "matched", "outcome", title="rules, in priority order")
    for r in result["rules"]:
        table.add_row(
            r["key"], "yes" if r["matched"] else "no", r["outcome"] or ("not reached" if r["matched"] else "")
        )
    console.print(table)
    candidates = Table("manager", "eligible", "why not", "load", "rank inputs", title="candidates")
    for c in result["candidates"]:
        inputs = ", ".join(f"{k}={v}" for k, v in c["inputs"].items())
        candidates.add_row(
            c["name"], "yes" if c["eligible"] else "no", c["why"], f"{c['load']}/{c['capacity']}", inputs
        )
    console.print(candidates)
    picked = result["picked"] or "[yellow]nobody: the unassigned queue[/]"
    console.print(f"[bold green]pick[/]: {picked}\n[bold]reason[/]: {result['reason']}")


@app.command("demo")
def demo(
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Database URL (default: a new SQLite file in a temp folder).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port of the demo's API; it must be free. Without it: LEADFLOW_PORT (8000), or a free port when "
            "that one is taken (by `leadflow serve`, say); the screen shows which."
        ),
    ] = None,
    deadline: Annotated[str, typer.Option(help="First-contact deadline, like 20s or 1m.")] = "20s",
    pace: Annotated[float, typer.Option(help="Seconds between two new leads.")] = 4.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    live: Annotated[bool, typer.Option(help="Live table; --no-live prints plain lines.")] = True,
) -> None:
    """Watch speed-to-lead work: leads arrive, simulated managers call some and miss others, leads move on."""
    import tempfile

    from leadflow.demo import run_demo

    url = database or f"sqlite:///{Path(tempfile.mkdtemp(prefix='leadflow-demo-')) / 'demo.db'}"
    run_demo(url, port=port if port is not None else get_settings().port, any_free_port=port is None,
             deadline=deadline, pace_seconds=pace, duration_seconds=duration, console=console, live=live)  # fmt: skip


@app.command("contact")
def contact(
    lead_id: int,
    manager: Annotated[str, typer.Option(help="Key of the manager who made the contact (the owner).")],
    kind: Annotated[str, typer.Option(help="call, message or meeting")] = "call",
    outcome: Annotated[str, typer.Option(help="connected, no_answer, busy, wrong_number, sent, set")] = "connected",
    note: Annotated[str | None, typer.Option(help="A few words for the history.")] = None,
    duration: Annotated[int | None, typer.Option(min=0, max=86400, help="A call's length in seconds.")] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Record a contact with a lead; a connected call, a sent message or a set meeting stops its SLA clock."""
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.sla import record_contact

    lf = open_app(_settings(rules, database))
    result = record_contact(lf, lead_id, manager, kind, outcome, utcnow(), note, who=CLI, duration_seconds=duration)
    console.print_json(json.dumps(result))


@app.command("import")
def import_leads(
    file: Path,
    channel: Annotated[str, typer.Option(help="Channel recorded for these leads.")] = "import",
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Import leads from a CSV file (header row; columns named like the API's fields; others kept as extra)."""
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.importing import count_rows, import_csv

    if not file.exists():
        raise _fail(f"{file} does not exist: check the path")
    lf = open_app(_settings(rules, database))
    total = count_rows(file)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("import", total=total)
        report = import_csv(lf, file, utcnow, channel=channel, progress=lambda: bar.advance(task))
    console.print(
        f"[green]{report.created} new[/], {report.repeated} already here, {report.junk} junk, "
        f"{report.unassigned} unassigned, [red]{len(report.rejected)} rejected[/]"
        + (f"; {report.merged} folded into the client's open lead" if report.merged else "")
        + (f"; {report.flagged} kept with fields to check" if report.flagged else "")
    )
    if report.rejected:
        table = Table("line", "reason", title="rejected rows")
        for line, reason in report.rejected[:50]:
            table.add_row(str(line), reason)
        err.print(table)
        raise typer.Exit(code=2)


@app.command("post")
def post_lead(
    file: Annotated[Path, typer.Argument(help="A JSON file with one lead.")],
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Take in one lead from a JSON file, as the API would, and print the decision."""
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.intake import receive

    result = receive(open_app(_settings(rules, database)), _read_request(file), utcnow())
    problems = [{"field": p.field, "reason": p.reason} for p in result.problems]
    console.print_json(json.dumps({"id": result.lead_id, "created": result.created, "merged": result.merged,
                                   "status": result.status, "manager": result.manager_key, "reason": result.reason,
                                   "problems": problems}))  # fmt: skip


def _register_account_commands() -> None:
    from leadflow.cli_accounts import keys_app, users_app

    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="api-keys")
    from leadflow.cli_channels import channels_app

    app.add_typer(channels_app, name="channels")
    from leadflow.cli_tasks import tasks_app

    app.add_typer(tasks_app, name="tasks")
    from leadflow.cli_backlog import backlog_app

    app.add_typer(backlog_app, name="backlog")
    from leadflow.cli_reports import report_app

    app.add_typer(report_app, name="report")


_register_account_commands()

if __name__ == "__main__":
    app()
