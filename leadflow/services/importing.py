"""Bulk import of leads from a CSV file: one transaction per lead, a re-import creates nothing new."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from leadflow.core.errors import LeadflowError
from leadflow.services.context import Leadflow
from leadflow.services.intake import receive


@dataclass
class ImportReport:
    created: int = 0
    repeated: int = 0
    merged: int = 0  # a client's repeat folded into their open lead
    flagged: int = 0  # kept, with fields that could not be read named on the lead
    junk: int = 0
    unassigned: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def total(self) -> int:
        return self.created + self.repeated + self.merged + len(self.rejected)


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def csv_rows(fh: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV export as (line number, lower-case column → value); the delimiter is sniffed (, ; or tab)."""
    sample = fh.read(4096)
    fh.seek(0)
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(fh, dialect=dialect)
    for row in reader:
        yield reader.line_num, {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}


def import_csv(
    app: Leadflow, path: Path, now: Callable[[], datetime], channel: str = "import",
    progress: Callable[[], None] | None = None,
) -> ImportReport:  # fmt: skip
    """Take in every row; a bad row is reported with its line number and does not stop the others."""
    report = ImportReport()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for line, row in csv_rows(fh):
            # Columns leadflow has no field for are kept under `extra`, as a form's unknown inputs are.
            data: dict[str, Any] = {k: v for k, v in row.items() if v}
            data.setdefault("channel", channel)
            # The row's content is its identity: importing the same file twice creates nothing new.
            key = "csv:" + hashlib.sha256(repr(sorted(row.items())).encode()).hexdigest()[:40]
            try:
                result = receive(app, data, now(), idempotency_key=key)
            except LeadflowError as exc:  # refused (no usable contact), or the key reused: named, never a crash
                report.rejected.append((line, str(exc)))
            else:
                if result.merged:
                    report.merged += 1
                elif not result.created:
                    report.repeated += 1
                else:
                    report.created += 1
                    report.junk += result.status == "junk"
                    report.unassigned += result.status == "new"
                report.flagged += bool(result.problems)
            if progress:
                progress()
    return report
