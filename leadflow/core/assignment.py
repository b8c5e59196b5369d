"""Place a backlog on the managers' free places as a min-cost maximum flow: as many leads as can be placed at all.

Deciding a backlog lead by lead fills the first managers who come along: a lead that several managers may take
uses up the one place a later lead had, and the later lead stays in the queue while someone else sits empty. The
batch routes every lead as usual (that gives each lead who may take it and the strategy's own pick) and then asks
this module where the leads go, as a flow:

    source --(one arc per lead, capacity 1, cost: its place in the batch order)--> group
    group  --(cost 0 to the strategy's pick, 1 + rank to every other eligible manager of the lead's own rule,
              "far" + rank to the managers of the rules it may be passed on to)--> manager
    manager --(capacity: the manager's free places)--> sink

A group is the leads with the same eligible managers and the same pick, so the middle of the graph depends on how
many kinds of lead there are, not on how many leads. The maximum flow is the largest number of leads that can be
placed. Among placements of that size the cheapest is taken, and the costs come in three tiers, each outweighing
everything below it together: each step in the batch order (higher-priority leads are placed first), then each
lead sent to another rule's manager (only where that places more leads, or more important ones), then each pick
changed within a rule (each strategy's pick is kept wherever that strands no lead).

The solver is OR-Tools' SimpleMinCostFlow (C++, cost-scaling push-relabel, integer costs, exact): a
backlog of a few thousand leads is a graph of a few thousand arcs, solved in milliseconds. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.graph.python import max_flow, min_cost_flow

_SOURCE, _SINK = 0, 1


@dataclass(frozen=True, slots=True)
class Want:
    """One lead to place: who may take it, best first, and the strategy's own pick (None: nobody had room)."""

    ref: int  # the caller's id for the lead
    eligible: tuple[str, ...]  # manager keys in the strategy's order of preference
    pick: str | None = None
    # How many of `eligible` come from the lead's own rule (None: all); the rest, other rules' managers the lead
    # may be passed on to, are taken only where that places more leads, or more important ones.
    own: int | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where each placed lead goes, and for a lead moved off its pick, the lead that took that place."""

    managers: dict[int, str] = field(default_factory=dict)  # ref -> manager key
    moved: dict[int, int | None] = field(default_factory=dict)  # ref moved off its pick -> who took its pick's place

    @property
    def placed(self) -> int:
        return len(self.managers)


def placeable(wants: Sequence[Want], room: Mapping[str, int]) -> int:
    """How many of `wants` can be placed at all: a plain maximum flow (no order, no picks), over groups of leads
    with the same eligible managers. Several times cheaper than place(), for asking whether some lead would be
    left out."""
    sizes: dict[frozenset[str], int] = {}
    seen: dict[tuple[str, ...], frozenset[str]] = {}
    for w in wants:
        group = seen.get(w.eligible)
        if group is None:
            group = seen[w.eligible] = frozenset(k for k in w.eligible if room.get(k, 0) > 0)
        if group:
            sizes[group] = sizes.get(group, 0) + 1
    keys = sorted({k for group in sizes for k in group})
    if not keys:
        return 0
    node = {k: 2 + i for i, k in enumerate(keys)}
    first_group = 2 + len(keys)
    tails = [_SOURCE] * len(sizes)
    heads = list(range(first_group, first_group + len(sizes)))
    capacities = list(sizes.values())
    for j, (group, n) in enumerate(sizes.items()):
        for k in group:
            tails.append(first_group + j)
            heads.append(node[k])
            capacities.append(n)
    for k in keys:
        tails.append(node[k])
        heads.append(_SINK)
        capacities.append(room[k])
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(
        np.array(tails, dtype=np.int32), np.array(heads, dtype=np.int32), np.array(capacities, dtype=np.int64)
    )
    if flow.solve(_SOURCE, _SINK) != flow.OPTIMAL:
        raise RuntimeError("the maximum flow solver did not finish")
    return int(flow.optimal_flow())


def place(wants: Sequence[Want], room: Mapping[str, int]) -> Placement:
    """Place `wants` (in priority order, the first most important) within each manager's `room` (free places)."""
    keys = sorted({k for w in wants for k in w.eligible if room.get(k, 0) > 0})
    if not keys:
        return Placement()
    manager_node = {k: 2 + i for i, k in enumerate(keys)}
    # (own eligible, others, pick) -> indexes into wants
    groups: dict[tuple[frozenset[str], frozenset[str], str | None], list[int]] = {}
    # the first lead's order of preference: (own, others)
    order: dict[tuple[frozenset[str], frozenset[str], str | None], tuple[tuple[str, ...], tuple[str, ...]]] = {}
    seen: dict[tuple[tuple[str, ...], str | None, int | None], Any] = {}
    for i, w in enumerate(wants):
        # Leads of one kind share their eligible tuple's value: the group is worked out once per kind.
        kind = (w.eligible, w.pick, w.own)
        if kind in seen:
            key = seen[kind]
        else:
            cut = len(w.eligible) if w.own is None else w.own
            own = tuple(k for k in w.eligible[:cut] if k in manager_node)
            others = tuple(k for k in w.eligible[cut:] if k in manager_node and k not in own)
            pick = w.pick if w.pick in own else None
            key = seen[kind] = (frozenset(own), frozenset(others), pick) if own or others else None
            if key is not None and key not in order:
                order[key] = (own, others)
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return Placement()
    n_wants = len(wants)
    worst = 1 + max(len(own) for own, _ in order.values())  # the most a change within a lead's own rule can cost
    far = n_wants * worst + 1  # another rule's manager costs more than every change within own rules together
    worst_far = far + max(len(others) for _, others in order.values())
    step = n_wants * worst_far + 1  # one step in the batch order outweighs all of those together
    flow = min_cost_flow.SimpleMinCostFlow()
    group_node = {g: 2 + len(keys) + j for j, g in enumerate(groups)}
    # One arc per lead, added in one call: (arc, index into wants).
    indexes = [i for members in groups.values() for i in members]
    heads = [group_node[g] for g, members in groups.items() for _ in members]
    first = flow.add_arcs_with_capacity_and_unit_cost(
        np.zeros(len(indexes), dtype=np.int32), np.array(heads, dtype=np.int32),
        np.ones(len(indexes), dtype=np.int64), np.array(indexes, dtype=np.int64) * step,
    )  # fmt: skip
    # Group -> manager arcs, the pick's first at cost 0, then the others by rank, also in one call.
    tails: list[int] = []
    ends: list[int] = []
    sizes: list[int] = []
    costs: list[int] = []
    arc_keys: list[str] = []
    spans: dict[tuple[frozenset[str], frozenset[str], str | None], tuple[int, int]] = {}  # group -> its arcs
    for g, (own, others) in order.items():
        n, node, start, pick = len(groups[g]), group_node[g], len(arc_keys), g[2]
        ranked = ([pick] if pick is not None else []) + [u for u in own if u != pick]
        for rank, k in enumerate(ranked):
            tails.append(node)
            ends.append(manager_node[k])
            sizes.append(n)
            costs.append(0 if k == pick else rank + (0 if pick is not None else 1))
            arc_keys.append(k)
        for rank, k in enumerate(others):
            tails.append(node)
            ends.append(manager_node[k])
            sizes.append(n)
            costs.append(far + rank)
            arc_keys.append(k)
        spans[g] = (start, len(arc_keys))
    middle = flow.add_arcs_with_capacity_and_unit_cost(
        np.array(tails, dtype=np.int32), np.array(ends, dtype=np.int32),
        np.array(sizes, dtype=np.int64), np.array(costs, dtype=np.int64),
    )  # fmt: skip
    flow.add_arcs_with_capacity_and_unit_cost(
        np.array([manager_node[k] for k in keys], dtype=np.int32), np.full(len(keys), _SINK, dtype=np.int32),
        np.array([room[k] for k in keys], dtype=np.int64), np.zeros(len(keys), dtype=np.int64),
    )  # fmt: skip
    total = len(wants)
    flow.set_node_supply(_SOURCE, total)
    flow.set_node_supply(_SINK, -total)
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"the min-cost flow solver stopped with status {status}")
    flows = flow.flows(first).tolist()
    chosen = {i for i, f in zip(indexes, flows, strict=True) if f > 0}
    through = flow.flows(middle).tolist()
    managers: dict[int, str] = {}
    for g, members in groups.items():
        placed = [i for i in members if i in chosen]  # in batch order: the first keep their pick
        at = 0
        start, stop = spans[g]
        for a in range(start, stop):
            n = through[a]
            if n:
                k = arc_keys[a]
                for i in placed[at : at + n]:
                    managers[wants[i].ref] = k
                at += n
    return Placement(managers, _moves(wants, managers))


def _moves(wants: Sequence[Want], managers: Mapping[int, str]) -> dict[int, int | None]:
    """For each lead placed off its pick, a lead placed with that pick's manager that was not that manager's pick."""
    newcomers: dict[str, list[int]] = {}  # manager -> refs placed there that the strategy had not picked for them
    for w in wants:
        k = managers.get(w.ref)
        if k is not None and k != w.pick:
            newcomers.setdefault(k, []).append(w.ref)
    unplaced_first = {w.ref: w.pick is None for w in wants}
    moved: dict[int, int | None] = {}
    for w in wants:
        k = managers.get(w.ref)
        if k is None or w.pick is None or k == w.pick:
            continue
        there = newcomers.get(w.pick, [])
        # The lead that had no place before says best why this one moved.
        moved[w.ref] = min(there, key=lambda r: not unplaced_first[r]) if there else None
    return moved
