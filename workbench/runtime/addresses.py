"""Step addresses through subgraphs: ``3``, ``3/review/2``, ``3/review#1/2``, ``3/work#0.1/2``.

One spelling serves ``workbench show RUN --step``, ``workbench fork --at`` and the Python
API: step 3 of the run; in it, the task running node ``review`` (``#TASK`` picks one when
several tasks of the step run it); the child run that task started (``.CALL`` picks the
``CALL``-th subgraph call of the task, from 0, when its node's body ran several); and step 2 of
that child run — nested to any depth (``3/review/2/inner/1``).

A subgraph *node* starts one child run per task; a node whose Python body runs subgraphs
(``await Runner(sub).arun(...)``) may start several, numbered in call order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import InputError, RunNotFoundError
from workbench.runtime.option_names import opt
from workbench.runtime.subgraph import SEP, address_of, child_run_id

if TYPE_CHECKING:
    from workbench.store.reader import StoreReader

_HOP = re.compile(r"^(?P<node>[^#/]+)(?:#(?P<task>\d+)(?:\.(?P<call>\d+))?)?$")


@dataclass
class Hop:
    """One level down: the task of node ``node`` (``task`` when named), its ``call``-th subgraph
    call, and the step inside that child run."""

    node: str
    task: int | None
    step: int
    call: int = 0


def parse_address(text: str | int, option: str | None = None) -> tuple[int, list[Hop]]:
    """``"3"`` → (3, []); ``"3/review/2"`` → (3, [Hop("review", None, 2)]); a one-line error else.
    ``option``: what errors call the address (a fork's ``--at`` by default)."""
    option = option or opt("--at")
    raw = str(text).strip()
    parts = raw.split(SEP)
    bad = InputError(f"{option} {raw!r}: write STEP, or STEP/NODE/STEP for a step inside a subgraph "
                     "(e.g. 3/review/2; NODE#TASK when several tasks run NODE, NODE#TASK.CALL for the "
                     "CALL-th subgraph a node's body ran)")
    if len(parts) % 2 == 0 or not all(p.isdigit() for p in parts[::2]):
        raise bad
    hops: list[Hop] = []
    for node_part, step_part in zip(parts[1::2], parts[2::2], strict=True):
        m = _HOP.match(node_part)
        if m is None:
            raise bad
        hops.append(Hop(m["node"], int(m["task"]) if m["task"] is not None else None, int(step_part),
                        int(m["call"]) if m["call"] is not None else 0))
    return int(parts[0]), hops


def task_of(plan: list[dict[str, Any]], hop: Hop, where: str, option: str | None = None) -> int:
    """The index of the task ``hop`` names among a step's planned tasks (one-line error else)."""
    option = option or opt("--at")
    idxs = [i for i, t in enumerate(plan) if t.get("node") == hop.node]
    if not idxs:
        ran = ", ".join(str(t.get("node")) for t in plan) or "nothing"
        raise InputError(f"{option}: {where} does not run {hop.node!r} (it runs {ran})")
    if hop.task is None:
        if len(idxs) > 1:
            raise InputError(f"{option}: {where} runs {hop.node!r} in tasks {', '.join(map(str, idxs))}; name "
                             f"one, e.g. {hop.node}#{idxs[1]}")
        return idxs[0]
    if hop.task not in idxs:
        raise InputError(f"{option}: task {hop.task} of {where} is not {hop.node!r} (tasks running it: "
                         f"{', '.join(map(str, idxs))})")
    return hop.task


@dataclass
class Located:
    """Where an address leads: the run that recorded the step, the step in it, and its path."""

    run_id: str  # the run (a child run for an inner address) whose step it is
    step: int
    path: str  # the calling nodes' path from the root graph ("" for a root step)
    hops: list[tuple[str, int, int, int]]  # per level: (caller run, caller step, task, call)


def locate(store: StoreReader, run_id: str, address: str | int, option: str = "--step") -> Located:
    """Follow an address down a recorded run's subgraph runs (one-line InputError when it leads
    nowhere: a step out of range, a node the step did not run, a task that ran no subgraph)."""
    step, hops = parse_address(address, option)
    last = store.last_step(run_id)
    if not 1 <= step <= last:
        raise InputError(f"{option} {address}: run {run_id} has steps 1..{last}")
    caller, caller_step, path = run_id, step, ""
    trail: list[tuple[str, int, int, int]] = []
    for hop in hops:
        where = f"step {caller_step} of run {caller}"
        plan = (store.plan(caller, caller_step) or {"tasks": []})["tasks"]
        idx = task_of(plan, hop, where, option)
        owner = store.step_owner(caller, caller_step)
        child = child_run_id(owner, caller_step, idx, hop.call)
        path = f"{path}{SEP}{hop.node}" if path else hop.node
        try:
            store.get_run(child)
        except RunNotFoundError:
            which = f"subgraph call {hop.call} of " if hop.call else "subgraph run for "
            raise InputError(f"{option} {address}: {where} recorded no {which}{hop.node!r}") from None
        inner_last = store.last_step(child)
        if not 1 <= hop.step <= inner_last:
            raise InputError(f"{option} {address}: subgraph {path!r} ran steps 1..{inner_last}; step {hop.step} "
                             "is out of range")
        trail.append((owner, caller_step, idx, hop.call))
        caller, caller_step = child, hop.step
    return Located(caller, caller_step, path, trail)


def address_for(store: StoreReader, run_id: str, step: int) -> str:
    """The address of step ``step`` of ``run_id`` — a run, or a subgraph's child run — from its
    root run: the inverse of :func:`locate` (``3/review#0.0/2``; task and call always named)."""
    run = store.get_run(run_id)
    root = run.get("root_run_id") or run_id
    hops = address_of(run_id, root)
    if not hops:
        return str(step)
    parts = [str(hops[0][0])]
    current = root
    for i, (caller_step, task, call) in enumerate(hops):
        current = child_run_id(current, caller_step, task, call)
        node = str(store.get_run(current).get("path") or "").split(SEP)[-1]
        parts += [f"{node}#{task}.{call}", str(hops[i + 1][0] if i + 1 < len(hops) else step)]
    return SEP.join(parts)
