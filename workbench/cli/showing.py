"""``workbench show RUN --step ADDRESS``: one step in detail, at the root or inside a subgraph.

``ADDRESS`` is spelled as ``fork --at`` takes it (:mod:`workbench.runtime.addresses`): ``3``, or
``3/review/2`` for step 2 of the run subgraph node ``review`` started at step 3. The model calls
are numbered as ``fork --at ADDRESS --llm-response N=TEXT`` numbers them; the subgraph runs the
step's tasks started are listed under it, their inner steps indented, each with its address.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.cli.common import EXIT_OK, emit_json, esc, make_console, open_store, short


def cmd_show_step(args: argparse.Namespace) -> int:
    """One step in detail: tasks, state diff, numbered model calls (for fork --llm-response),
    interrupts, and the inner steps of the subgraphs it ran."""
    from workbench.history import RunHistory, nested_tasks
    from workbench.runtime.addresses import locate
    from workbench.runtime.continuing import final_calls

    with open_store(args, if_missing="refuse") as store:
        root_id = store.resolve_run_id(args.run_id)
        where = locate(store, root_id, args.step)
        history = RunHistory(store, where.run_id)
        view = history.step(where.step)
        prefix = f"{where.path}/" if where.path else ""
        address = str(args.step).strip()
        # The subgraph runs this step's tasks started, with their inner steps (reading order).
        inner = [r for r in nested_tasks(store, view.owner, 0, prefix, _base(address))
                 if r["depth"] > 0 and _first_hop(view.owner, r["run_id"])[0] == view.step]
        # Their model calls, numbered per inner step as fork --at ADDRESS --llm-response N takes them.
        inner_calls: list[tuple[str, int, dict[str, Any]]] = []
        steps_of = {r["address"]: (r["run_id"], r["step"]) for r in inner}
        for address_of_step, (child, step) in steps_of.items():
            llm_calls = [c for c in final_calls(store, child, step) if c["kind"] == "llm"]
            prefix_of = next(r["path"].rsplit("/", 1)[0] for r in inner if r["address"] == address_of_step)
            inner_calls += [(address_of_step, n, {**c, "node": f"{prefix_of}/{c['node']}"})
                            for n, c in enumerate(llm_calls, start=1)]
    llm = [c for c in view.calls if c["kind"] == "llm"]
    # Numbered as fork --llm-response takes them: the calls of each task's last attempt; an
    # earlier attempt's (which failed) are listed without a number.
    last_attempt: dict[int, int] = {}
    for c in view.calls:
        last_attempt[c["task"]] = max(last_attempt.get(c["task"], 0), c["attempt"])
    numbers: dict[int, int] = {}
    for c in llm:
        if c["attempt"] == last_attempt[c["task"]]:
            numbers[id(c)] = len(numbers) + 1
    if args.json:
        emit_json(json.dumps({
            "run_id": root_id, "step": view.step, "address": address, "path": where.path or None,
            "subgraph_run_id": where.run_id if where.run_id != root_id else None,
            "recorded_by": view.owner, "nodes": view.nodes,
            "tasks": view.tasks, "state_before": view.state_before, "state_after": view.state_after,
            "diff": [{"key": k, "before": a, "after": b} for k, a, b in view.diff()],
            "edits_after": [{"key": k, "op": op, "value": v} for k, op, v in view.edits_after],
            "llm_calls": [{"number": numbers.get(id(c)), **c} for c in llm],
            "tool_calls": [c for c in view.calls if c["kind"] == "tool"],
            "interrupts": view.interrupts,
            "subgraph_steps": [{k: v for k, v in r.items() if k != "traceback"} for r in inner],
            "subgraph_llm_calls": [{"address": a, "number": n, **c} for a, n, c in inner_calls],
        }, default=str, ensure_ascii=False))
        return EXIT_OK
    console = make_console()
    owner = f" (shared history of {view.owner})" if view.owner != where.run_id else ""
    title = f"run {root_id} step {address}"
    if where.path:
        title += f" (inner step {view.step} of subgraph {where.path}, run {where.run_id})"
    nodes = ", ".join(prefix + n for n in view.nodes) or "nothing"
    console.print(f"[bold]{esc(title)}[/]{esc(owner)}: {esc(nodes)}", markup=True, highlight=False)
    for t in view.tasks:
        extra = f" {t['error']}" if t["error"] else ""
        console.print(f"  task {t['task']} {prefix}{t['node']} attempt {t['attempt']}: {t['status']} "
                      f"({t['duration_ms']:.1f} ms){extra}", markup=False)
        if t["traceback"] and args.verbose:
            console.print(t["traceback"], markup=False)
        if t is not _last_attempt(view.tasks, t["task"]):
            continue
        for r in inner:
            if _first_hop(view.owner, r["run_id"])[1] == t["task"]:
                indent = "  " * (r["depth"] + 1)
                detail = r["error"] or short(r["update"] if r["update"] is not None else "", 50)
                console.print(f"  {indent}{r['address']} {r['path']} attempt {r['attempt']}: {r['status']} "
                              f"{detail}", markup=False)
    if view.state_after is None:
        console.print("  (this step did not commit: the run failed, waited or stopped here)")
    for k, before, after in view.diff():
        console.print(f"  {k}: {short(before, 60)} → {short(after, 60)}", markup=False)
    for k, _op, v in view.edits_after:
        console.print(f"  edited by the fork: {k} = {short(v, 60)}", markup=False)
    for c in llm:
        answer = c["error"] or (c["response"] or {}).get("content", "")
        n = numbers.get(id(c))
        label = f"model call {n}" if n else f"model call of attempt {c['attempt']} (failed; not editable)"
        console.print(f"  {label} ({prefix}{c['node']}, {c['model']}, {c['prompt_tokens'] or 0}/"
                      f"{c['completion_tokens'] or 0} tokens): {short(answer, 70)}", markup=False)
    for c in view.calls:
        if c["kind"] == "tool":
            console.print(f"  tool {c['model']}({short(c['messages'], 40)}) → "
                          f"{short(c['error'] or c['response'], 50)}", markup=False)
    for intr in view.interrupts:
        outcome = {"open": "open", "closed": "closed unanswered"}.get(intr["status"], short(intr["response"], 40))
        console.print(f"  interrupt {intr['interrupt_id']} ({prefix}{intr['node']}): {short(intr['payload'], 60)} "
                      f"→ {outcome}", markup=False)
    for a, n, c in inner_calls:
        answer = c["error"] or (c["response"] or {}).get("content", "")
        console.print(f"  {a} model call {n} ({c['node']}, {c['model']}, {c['prompt_tokens'] or 0}/"
                      f"{c['completion_tokens'] or 0} tokens): {short(answer, 60)}", markup=False)
    return EXIT_OK


def _base(address: str) -> str:
    """The address up to the step's own number: ``3/review/2`` → ``3/review/``; ``3`` → ``""``."""
    head, sep, _ = address.rpartition("/")
    return head + sep


def _first_hop(owner: str, run_id: str) -> tuple[int, int]:
    """(step, task) of ``owner`` that started the child run ``run_id`` (nested or not):
    its id is ``OWNER/STEP.TASK.N[/...]``."""
    part = run_id[len(owner) + 1:].split("/")[0].split(".")
    return int(part[0]), int(part[1])


def _last_attempt(tasks: list[dict[str, Any]], task: int) -> dict[str, Any]:
    return [t for t in tasks if t["task"] == task][-1]
