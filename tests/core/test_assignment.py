"""core.assignment.place against NetworkX: the most leads, the most important first, picks kept where they fit."""

from __future__ import annotations

from typing import Any

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.core import assignment
from leadflow.core.assignment import Want, place

KEYS = ("a", "b", "c", "d", "e")


@st.composite
def problems(draw: st.DrawFn) -> tuple[list[Want], dict[str, int]]:
    room = {k: draw(st.integers(0, 4)) for k in KEYS[: draw(st.integers(1, len(KEYS)))]}
    wants = []
    for ref in range(draw(st.integers(0, 25))):
        eligible = tuple(draw(st.lists(st.sampled_from(sorted(room)), unique=True, max_size=len(room))))
        pick = draw(st.sampled_from([None, *eligible])) if eligible else None
        wants.append(Want(ref, eligible, pick))
    return wants, room


def placeable(wants: list[Want], room: dict[str, int]) -> int:
    graph: Any = nx.DiGraph()
    graph.add_nodes_from(["source", "sink"])
    for w in wants:
        graph.add_edge("source", ("lead", w.ref), capacity=1)
        for k in w.eligible:
            graph.add_edge(("lead", w.ref), ("manager", k), capacity=1)
    for k, n in room.items():
        graph.add_edge(("manager", k), "sink", capacity=n)
    return int(nx.maximum_flow_value(graph, "source", "sink"))


def greedy(wants: list[Want], room: dict[str, int]) -> set[int]:
    """The leads placed when each, in order, is taken if the ones taken so far and it can still all be placed."""
    taken: list[Want] = []
    for w in wants:
        if placeable([*taken, w], room) == len(taken) + 1:
            taken.append(w)
    return {w.ref for w in taken}


@settings(max_examples=400, deadline=None)
@given(problems())
def test_place_is_a_maximum_flow_that_prefers_the_first_leads_and_the_picks(
    case: tuple[list[Want], dict[str, int]],
) -> None:
    wants, room = case
    result = place(wants, room)
    assert result.placed == placeable(wants, room) == assignment.placeable(wants, room)
    # Placeable sets of leads form a matroid, so the cheapest in batch order is the greedy one.
    assert set(result.managers) == greedy(wants, room)
    by_ref = {w.ref: w for w in wants}
    for ref, key in result.managers.items():
        assert key in by_ref[ref].eligible
    for k, n in room.items():
        assert sum(1 for key in result.managers.values() if key == k) <= n
    picks: dict[str, int] = {}
    for w in wants:
        if w.pick is not None:
            picks[w.pick] = picks.get(w.pick, 0) + 1
    if all(w.pick is not None for w in wants) and all(n <= room[k] for k, n in picks.items()):
        assert all(result.managers[w.ref] == w.pick for w in wants)  # the picks fit: nothing moves
    for ref, other in result.moved.items():
        assert result.managers[ref] != by_ref[ref].pick
        assert other is None or result.managers[other] == by_ref[ref].pick


def test_the_example_of_a_general_and_a_large_budget_manager() -> None:
    result = place([Want(1, ("gen", "big"), "gen"), Want(2, ("gen",), None)], {"gen": 1, "big": 1})
    assert result.managers == {1: "big", 2: "gen"}
    assert result.moved == {1: 2}
