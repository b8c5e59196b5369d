"""Reading a backlog selection and action: every mistake named at once, in words a person can act on."""

from datetime import UTC, datetime, timedelta

import pytest

from leadflow.core.backlog import Action, Selection, Typed, read
from leadflow.core.errors import InvalidInput

FUNNEL = ["new", "assigned", "contacted", "qualified", "converted", "junk", "lost", "merged"]
LOST = ["lost"]


def problems(typed: Typed) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        read(typed, FUNNEL, LOST)
    return {p.field: p.reason for p in caught.value.problems}


def test_a_good_selection_reads_into_values() -> None:
    selection, action = read(Typed("junk", " stale ", statuses=("assigned", "assigned", "contacted"),
                                   older_than="90d", idle_for="2w", owners=("anna", "none"), channels=("web",),
                                   min_score=2, max_score=9, temperatures=("cold",)), FUNNEL, LOST)  # fmt: skip
    assert action == Action("junk", "stale")
    assert selection.statuses == ("assigned", "contacted")
    assert (selection.older_than, selection.idle_for) == (timedelta(days=90), timedelta(days=14))
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert selection.created_cutoff(at) == at - timedelta(days=90)
    assert selection.idle_cutoff(at) == at - timedelta(days=14)
    assert Selection.from_json(selection.to_json()) == selection
    assert selection.describe() == ("status assigned/contacted, older than 90d, idle for 14d, owner anna/none, "
                                    "channel web, score >= 2, score <= 9, temperature cold")  # fmt: skip


def test_the_earlier_of_two_cutoffs_holds() -> None:
    before = datetime(2026, 1, 1, tzinfo=UTC)
    selection, _ = read(Typed("rescore", created_before=before, older_than="1d"), FUNNEL, LOST)
    assert selection.created_cutoff(datetime(2026, 6, 1, tzinfo=UTC)) == before


def test_every_mistake_is_named() -> None:
    found = problems(Typed("junk", statuses=("stale", "merged"), older_than="ninety days", temperatures=("tepid",),
                           min_score=5, max_score=3, owners=(" ",),
                           created_before=datetime(2026, 1, 1)))  # fmt: skip
    assert found["reason"].startswith("say why these leads are junk")
    assert "'merged' is not a status" in found["status"]  # folded requests are never worked on their own
    assert "write it like 90d" in found["older_than"]
    assert "'tepid' is not a temperature" in found["temperature"]
    assert "below the minimum" in found["max_score"]
    assert "give a time zone" in found["created_before"]
    assert "manager's key" in found["owner"]


def test_actions_and_their_reasons() -> None:
    assert "is not an action: use one of junk, lose, requeue, rescore" in problems(Typed("delete"))["action"]
    assert "lost" in problems(Typed("lose"))["reason"]
    assert "takes no reason" in problems(Typed("requeue", "because"))["reason"]
    with pytest.raises(InvalidInput, match="no status that closes a lead as lost"):
        read(Typed("lose", "gone"), FUNNEL, [])
    assert problems(Typed("junk", "x", min_score=-1))["min_score"] == "a score is never negative"
