"""What the demo shows: the leads table, the logs of moves and contacts, the summary at the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from leadflow.demo.board import Board, DemoSummary, Move

__all__ = ["URGENT_SECONDS", "clock", "leads_table", "log_panel", "move_line", "print_summary"]

# Countdowns under this many seconds are shown in red.
URGENT_SECONDS = 5.0


def clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


def _sla_cells(row: Mapping[str, Any], now: datetime) -> tuple[Text, Text]:
    state = row["sla_state"]
    if state == "running" and row["sla_due_at"] is not None:
        left = max((row["sla_due_at"] - now).total_seconds(), 0.0)
        return Text("running", "yellow"), Text(f"{left:.1f}s", "bold red" if left < URGENT_SECONDS else "")
    if state == "met":
        waited = row["response_seconds"]
        return Text("met", "green"), Text(f"✓ {waited}s" if waited is not None else "✓", "green")
    if state == "exhausted":
        return Text("exhausted", "red"), Text("—", "dim")
    if row["status"] == "junk":
        return Text("junk", "dim"), Text("", "dim")
    return Text(state or "—", "dim"), Text("", "dim")


def leads_table(board: Board, rows: Sequence[Mapping[str, Any]], now: datetime) -> Table:
    table = Table(title="leads, newest first", title_justify="left", expand=True, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("client", no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column("channel", no_wrap=True)
    table.add_column("owner", no_wrap=True)
    table.add_column("SLA", no_wrap=True)
    table.add_column("left", justify="right", no_wrap=True)
    table.add_column("hops", justify="right", no_wrap=True)
    table.add_column("last event", ratio=1, no_wrap=True, overflow="ellipsis")
    for r in rows:
        state, left = _sla_cells(r, now)
        owner = board.owner(r["owner"])
        table.add_row(
            str(r["id"]), r["name"] or "", r["channel"], owner, state, left, str(r["sla_hops"]), r["last_event"]
        )
    return table


def log_panel(title: str, lines: Sequence[Text], height: int) -> Panel:
    grid = Table.grid(expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    for line in [*lines, *[Text("")] * (height - len(lines))]:  # a fixed height keeps the screen from jumping
        grid.add_row(line)
    return Panel(grid, title=title, title_align="left")


def move_line(board: Board, move: Move) -> Text:
    line = Text(f"{clock(move.at)}  #{move.lead_id}  ", "dim")
    line.append(f"{board.name(move.previous)} → {board.name(move.manager)}", "bold")
    line.append(f"  {move.reason}")
    return line


def print_summary(console: Console, summary: DemoSummary, database: str) -> None:
    table = Table(title="leadflow demo: what the database says", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("leads received", str(summary.received))
    table.add_row("contacted in time (by the first owner, no move)", str(summary.contacted_in_time))
    table.add_row("contacted after a move along the chain", str(summary.contacted_after_escalation))
    table.add_row("escalations (moves along the chain)", str(summary.escalations))
    table.add_row("reached the head of sales", str(summary.reached_head))
    table.add_row("junk, set aside", str(summary.junk))
    console.print(table)
    console.print(f"database: {database}", soft_wrap=True, highlight=False)
