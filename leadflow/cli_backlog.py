"""`leadflow backlog ...`: a stale backlog selected, previewed, changed in chunks (resumable after a crash) and undone
by run, as leadflow itself (every team)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadflow.cli import CLI, DbOption, RulesOption, _Commands, _settings, console

if TYPE_CHECKING:
    from leadflow.core.backlog import Action, Selection
    from leadflow.services.context import Leadflow

backlog_app = _Commands(help="Triage a stale backlog: preview, apply in chunks, resume, undo.", no_args_is_help=True)

ActionOption = Annotated[str, typer.Option("--action", help="junk, lose, requeue or rescore.")]
ReasonOption = Annotated[str | None, typer.Option(help="Why (junk and lose need one): kept on every lead.")]
StatusOption = Annotated[list[str] | None, typer.Option("--status", help="Only leads in this status (repeatable).")]
OlderOption = Annotated[str | None, typer.Option("--older-than", help="Created longer ago than this, e.g. 90d.")]
BeforeOption = Annotated[
    datetime | None, typer.Option("--created-before", help="Created before this moment (UTC when no zone is given).")
]
IdleOption = Annotated[
    str | None, typer.Option("--idle-for", help="Nothing happened on the lead for this long, e.g. 30d.")
]
OwnerOption = Annotated[
    list[str] | None, typer.Option("--owner", help="Owned by this manager (their key), or 'none' (repeatable).")
]
ChannelOption = Annotated[list[str] | None, typer.Option("--channel", help="Came through this channel (repeatable).")]
MinOption = Annotated[int | None, typer.Option("--min-score", help="Score at least this.")]
MaxOption = Annotated[int | None, typer.Option("--max-score", help="Score at most this.")]
TemperatureOption = Annotated[
    list[str] | None, typer.Option("--temperature", help="cold, warm, hot or red_hot (repeatable).")
]
ChunkOption = Annotated[int, typer.Option(help="Leads per transaction.", min=1, max=20000)]
RunArgument = Annotated[int, typer.Argument(help="The run's id (leadflow backlog runs lists them).", min=1)]


def _read(
    app: Leadflow, action: str, reason: str | None, status: list[str] | None, older_than: str | None,
    created_before: datetime | None, idle_for: str | None, owner: list[str] | None, channel: list[str] | None,
    min_score: int | None, max_score: int | None, temperature: list[str] | None,
) -> tuple[Selection, Action]:  # fmt: skip
    from datetime import UTC

    from leadflow.core.backlog import Typed, read

    if created_before is not None and created_before.tzinfo is None:
        created_before = created_before.replace(tzinfo=UTC)
    typed = Typed(action, reason, status or (), created_before, older_than, idle_for, owner or (), channel or (),
                  min_score, max_score, temperature or ())  # fmt: skip
    lost = [s.key for s in app.rules.funnel if s.outcome == "lost"]
    return read(typed, [s.key for s in app.rules.funnel], lost)


def _print_preview(found: dict[str, Any]) -> None:
    console.print(f"[bold]{found['total']:,}[/] lead(s): {escape(found['selection'])}; action: "
                  f"{escape(found['action'])}")  # fmt: skip
    owners = Table("owner", "leads", "open", title="by owner")
    for r in found["by_owner"][:20]:
        name = f"{r['name']} ({r['owner']})" if r["name"] else r["owner"]
        owners.add_row(escape(name), f"{r['leads']:,}", f"{r['open']:,}")
    if len(found["by_owner"]) > 20:
        owners.add_row(f"... {len(found['by_owner']) - 20} more", "", "")
    console.print(owners)
    for title, key in (("by channel", "by_channel"), ("by temperature", "by_temperature")):
        table = Table(title.split()[-1], "leads", title=title)
        for r in found[key]:
            table.add_row(escape(str(r["value"] or "none")), f"{r['leads']:,}")
        console.print(table)
    for line in found["effect"]["lines"]:
        console.print(escape(line))


@backlog_app.command("preview")
def preview(
    action: ActionOption, reason: ReasonOption = None, status: StatusOption = None, older_than: OlderOption = None,
    created_before: BeforeOption = None, idle_for: IdleOption = None, owner: OwnerOption = None,
    channel: ChannelOption = None, min_score: MinOption = None, max_score: MaxOption = None,
    temperature: TemperatureOption = None, rules: RulesOption = None, database: DbOption = None,
) -> None:  # fmt: skip
    """What a run would take and do now: counts by owner, channel and temperature, and the action's effect."""
    from leadflow.bootstrap import open_app
    from leadflow.services import backlog
    from leadflow.services.context import utcnow

    lf = open_app(_settings(rules, database))
    selection, act = _read(lf, action, reason, status, older_than, created_before, idle_for, owner, channel,
                           min_score, max_score, temperature)  # fmt: skip
    _print_preview(backlog.preview(lf, selection, act, utcnow(), who=CLI))
    console.print("(preview: nothing was written)")


@backlog_app.command("apply")
def apply(
    action: ActionOption, reason: ReasonOption = None, status: StatusOption = None, older_than: OlderOption = None,
    created_before: BeforeOption = None, idle_for: IdleOption = None, owner: OwnerOption = None,
    channel: ChannelOption = None, min_score: MinOption = None, max_score: MaxOption = None,
    temperature: TemperatureOption = None, chunk: ChunkOption = 1000,
    yes: Annotated[bool, typer.Option("--yes", help="Apply without asking after the preview.")] = False,
    rules: RulesOption = None, database: DbOption = None,
) -> None:  # fmt: skip
    """Freeze the selection as a run and apply the action in chunks; an interrupted run goes on with `resume`."""
    from leadflow.bootstrap import open_app
    from leadflow.services import backlog
    from leadflow.services.context import utcnow

    lf = open_app(_settings(rules, database))
    selection, act = _read(lf, action, reason, status, older_than, created_before, idle_for, owner, channel,
                           min_score, max_score, temperature)  # fmt: skip
    now = utcnow()
    if not yes:
        _print_preview(backlog.preview(lf, selection, act, now, who=CLI))
        typer.confirm("Apply?", abort=True)
    run_id = backlog.start(lf, selection, act, now, who=CLI)
    _work(lf, run_id, chunk, "applying")


def _work(lf: Leadflow, run_id: int, chunk: int, label: str, *, undoing: bool = False) -> None:
    from leadflow.services import backlog
    from leadflow.services.context import utcnow

    found = backlog.get_run(lf, run_id, who=CLI)
    console.print(f"run {run_id}: {found['total_at_start']:,} lead(s), {escape(found['action_text'])}")
    console.file.flush()
    left = found["done_count"] - found["undone_count"] - found["kept_count"] if undoing else (
        found["total_at_start"] - found["done_count"] - found["skipped_count"])  # fmt: skip
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=max(left, 0))
        work = backlog.undo if undoing else backlog.run
        done = work(lf, run_id, utcnow(), chunk=chunk, progress=lambda n: bar.advance(task, n), who=CLI)
    _print_result(done)


def _print_result(found: dict[str, Any]) -> None:
    console.print(f"run {found['id']} is [bold]{found['state']}[/]: {found['done_count']:,} changed, "
                  f"{found['skipped_count']:,} skipped, {found['undone_count']:,} undone, "
                  f"{found['kept_count']:,} kept at undo")  # fmt: skip
    report = found["report"] or {}
    for key, title in (("skipped", "skipped"), ("kept", "not undone")):
        groups = report.get(key) or {}
        if groups:
            table = Table("leads", "reason", "e.g. lead ids", title=title)
            for why, group in sorted(groups.items(), key=lambda kv: -kv[1]["leads"]):
                table.add_row(f"{group['leads']:,}", escape(why), ", ".join(map(str, group["ids"][:5])))
            console.print(table)
    routed = report.get("routed")
    if routed:
        console.print(f"routed by the batch: {routed['assigned']:,} assigned, {routed['left_unassigned']:,} left "
                      "in the unassigned queue")  # fmt: skip


@backlog_app.command("resume")
def resume(
    run_id: RunArgument, chunk: ChunkOption = 1000, rules: RulesOption = None, database: DbOption = None
) -> None:
    """Go on with an interrupted run from where it stood (nothing is done twice)."""
    from leadflow.bootstrap import open_app
    from leadflow.core.errors import Conflict
    from leadflow.services import backlog

    lf = open_app(_settings(rules, database))
    found = backlog.get_run(lf, run_id, who=CLI)
    if found["state"] != "running":
        raise Conflict(f"backlog run {run_id} is {found['state']}: only a running run can be resumed")
    _work(lf, run_id, chunk, "resuming")


@backlog_app.command("undo")
def undo(run_id: RunArgument, chunk: ChunkOption = 1000, rules: RulesOption = None, database: DbOption = None) -> None:
    """Put back every lead the run changed, except those someone changed since (counted, with the reason); an
    interrupted undo goes on the same way."""
    from leadflow.bootstrap import open_app
    from leadflow.core.errors import Conflict
    from leadflow.services import backlog

    lf = open_app(_settings(rules, database))
    if backlog.get_run(lf, run_id, who=CLI)["state"] == "undone":
        raise Conflict(f"backlog run {run_id} is already undone")
    _work(lf, run_id, chunk, "undoing", undoing=True)


@backlog_app.command("runs")
def runs(
    limit: Annotated[int, typer.Option(help="At most this many, the newest first.", min=1, max=500)] = 20,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """The backlog runs, the newest first, with how far each got."""
    from leadflow.bootstrap import open_app
    from leadflow.services import backlog

    found = backlog.list_runs(open_app(_settings(rules, database)), limit=limit, who=CLI)
    table = Table("id", "started", "by", "action", "selection", "state", "leads", "changed", "skipped", "undone",
                  "kept", title=f"{len(found)} backlog run(s)")  # fmt: skip
    for r in found:
        table.add_row(str(r["id"]), r["created_at"].isoformat(timespec="minutes"), escape(r["actor"] or ""),
                      escape(r["action_text"]), escape(r["selection_text"]), r["state"], f"{r['total_at_start']:,}",
                      f"{r['done_count']:,}", f"{r['skipped_count']:,}", f"{r['undone_count']:,}",
                      f"{r['kept_count']:,}")  # fmt: skip
    console.print(table)
