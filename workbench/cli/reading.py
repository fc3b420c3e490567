"""Commands that read the history: ``runs``, ``show``, ``sql``, ``diff``, ``graph``, ``graphs``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli.common import EXIT_OK, UsageError, make_console, open_store, short
from workbench.errors import WorkbenchError


def cmd_runs(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        runs = store.list_runs(args.limit)
    if args.json:
        print(json.dumps(runs, default=str, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("run_id", no_wrap=True, min_width=17)
    for name in ("graph", "status", "started", "ms", "steps", "tokens", "cost $"):
        table.add_column(name, no_wrap=True)
    forks = any(r["parent_run_id"] for r in runs)
    if forks:
        table.add_column("parent", no_wrap=True, overflow="ellipsis")
    colors = {"completed": "green", "failed": "red", "waiting": "yellow", "paused": "yellow", "running": "cyan",
              "interrupted": "magenta", "superseded": "dim"}
    for r in runs:
        st = r["status"]
        if st == "running" and str(r.get("error") or "").startswith("interrupted"):
            st = "interrupted"  # its process died; 'workbench resume' continues it
        table.add_row(r["run_id"], r["graph"], f"[{colors.get(st, 'white')}]{st}[/]",
                      str(r["started_at"])[5:19], str(r["duration_ms"]), str(r["steps"]), str(r["tokens"]),
                      f"{r['cost_usd']:.4f}", *([parent_label(r)] if forks else []))
    console = make_console()
    if not runs:
        console.print(f"no runs yet in {args.db or 'the trace store'}; start one with: workbench run GRAPH")
    else:
        console.print(table)
    return EXIT_OK


def parent_label(run: dict[str, Any]) -> str:
    """A run's link to its parent, for tables: ``ID (fork @N)`` or ``ID (continues)``."""
    if not run.get("parent_run_id"):
        return ""
    if run.get("relation") == "continuation":
        return f"{run['parent_run_id']} (continues)"
    return f"{run['parent_run_id']} (fork @{run['fork_step'] + 1})"


def cmd_show_step(args: argparse.Namespace) -> int:
    """One step in detail: tasks, state diff, numbered model calls (for fork --llm-response)."""
    from workbench.history import RunHistory

    with open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        history = RunHistory(store, run_id)
        if args.step < 1 or args.step > history.last_step:
            raise UsageError(f"run {run_id} has steps 1..{history.last_step}")
        view = history.step(args.step)
    llm = [c for c in view.calls if c["kind"] == "llm"]
    if args.json:
        print(json.dumps({
            "run_id": run_id, "step": view.step, "recorded_by": view.owner, "nodes": view.nodes,
            "tasks": view.tasks, "state_before": view.state_before, "state_after": view.state_after,
            "diff": [{"key": k, "before": a, "after": b} for k, a, b in view.diff()],
            "edits_after": [{"key": k, "op": op, "value": v} for k, op, v in view.edits_after],
            "llm_calls": [{"number": i + 1, **c} for i, c in enumerate(llm)],
            "tool_calls": [c for c in view.calls if c["kind"] == "tool"],
            "interrupts": view.interrupts,
        }, default=str, ensure_ascii=False))
        return EXIT_OK
    console = make_console()
    owner = f" (shared history of {view.owner})" if view.owner != run_id else ""
    console.print(f"[bold]run {run_id} step {view.step}[/]{owner}: {', '.join(view.nodes) or 'nothing'}")
    for t in view.tasks:
        extra = f" {t['error']}" if t["error"] else ""
        console.print(f"  task {t['task']} {t['node']} attempt {t['attempt']}: {t['status']} "
                      f"({t['duration_ms']:.1f} ms){extra}", markup=False)
        if t["traceback"] and args.verbose:
            console.print(t["traceback"], markup=False)
    if view.state_after is None:
        console.print("  (this step did not commit: the run failed, waited or stopped here)")
    for k, before, after in view.diff():
        console.print(f"  {k}: {short(before, 60)} → {short(after, 60)}", markup=False)
    for k, _op, v in view.edits_after:
        console.print(f"  edited by the fork: {k} = {short(v, 60)}", markup=False)
    for i, c in enumerate(llm, start=1):
        answer = c["error"] or (c["response"] or {}).get("content", "")
        console.print(f"  model call {i} ({c['node']}, {c['model']}, {c['prompt_tokens'] or 0}/"
                      f"{c['completion_tokens'] or 0} tokens): {short(answer, 70)}", markup=False)
    for c in view.calls:
        if c["kind"] == "tool":
            console.print(f"  tool {c['model']}({short(c['messages'], 40)}) → "
                          f"{short(c['error'] or c['response'], 50)}", markup=False)
    for intr in view.interrupts:
        outcome = {"open": "open", "closed": "closed unanswered"}.get(intr["status"], short(intr["response"], 40))
        console.print(f"  interrupt {intr['interrupt_id']} ({intr['node']}): {short(intr['payload'], 60)} → "
                      f"{outcome}", markup=False)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.history import nested_tasks
    from workbench.runtime.conversation import conversation_turns

    if args.step is not None:
        return cmd_show_step(args)
    with open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        run = store.get_run(run_id)
        steps = store.tasks(run_id)
        calls = store.llm_calls(run_id)
        interrupts = store.interrupts(run_id)
        events = store.events(run_id)
        final = store.state_at(run_id, max([s["step"] for s in steps] + [0]))
        turns = conversation_turns(store, run_id)
        # Subgraph runs under it: their steps inside the caller's, their calls and questions.
        nested = nested_tasks(store, run_id)
        inner = [r for r in nested if r["depth"] > 0]
        paths = {r["run_id"]: (r["path"].rsplit("/", 1)[0], r["address"].rsplit("/", 1)[0]) for r in inner}
        for child_id, (prefix, where) in paths.items():
            calls += [{**c, "node": f"{prefix}/{c['node']}", "step": f"{where}/{c['step']}"}
                      for c in store.llm_calls(child_id)]
        interrupts = [({**i, "step": f"{paths[i['run_id']][1]}/{i['step']}"} if i["run_id"] in paths else i)
                      for i in store.tree_interrupts(run_id) if i["run_id"] in paths or i["run_id"] == run_id]
    if args.json:
        subgraph_steps = [{k: v for k, v in r.items() if k != "traceback"} for r in inner]
        print(json.dumps({"run": run, "steps": steps, "llm_calls": calls, "interrupts": interrupts,
                          "events": events, "state": final, "conversation": turns,
                          "subgraph_steps": subgraph_steps}, default=str, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table

    console = make_console()
    console.print(f"[bold]run {run_id}[/]  graph {run['graph']}  status {run['status']}  "
                  f"started {str(run['started_at'])[:19]}  code {run['code_version']}")
    if run["parent_run_id"] and run.get("relation") == "continuation":
        console.print(f"continues the conversation of {run['parent_run_id']} from step {run['fork_step'] + 1}")
    elif run["parent_run_id"]:
        console.print(f"forked from {run['parent_run_id']} at step {run['fork_step'] + 1}")
    if run["status"] == "superseded" and run["error"]:
        console.print(run["error"], markup=False)
    console.print(f"input: {short(run['input'], 100)}")
    if len(turns) > 1:
        console.print(f"conversation: {len(turns)} turns")
        for t in turns:
            steps_of = f"step {t['first_step']}" if t["first_step"] == t["last_step"] else \
                f"steps {t['first_step']}-{t['last_step']}"
            this = " (this run)" if t["run_id"] == run_id else ""
            console.print(f"  turn {t['turn']}  {t['run_id']}{this}  {steps_of}  {t['status']}  "
                          f"input {short(t['input'], 60)}", markup=False)
    table = Table(box=None, header_style="bold")
    for name in ("step", "node", "try", "status", "ms"):
        table.add_column(name, no_wrap=True)
    table.add_column("update / error", overflow="ellipsis", no_wrap=True)
    for s in nested:
        detail = s["error"] if s["error"] else short(s["update"] if s["update"] is not None else "", 70)
        if s.get("goto"):
            detail = f"{detail} → goto {short(s['goto'], 40)}".strip()
        color = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(s["status"], "white")
        # A subgraph's steps are indented under the task that ran it, addressed as fork --at takes them.
        node = "  " * s["depth"] + s["path"]
        table.add_row(s["address"], node, str(s["attempt"]), f"[{color}]{s['status']}[/]",
                      f"{s['duration_ms']:.1f}", detail, style="dim" if s["depth"] else None)
    console.print(table)
    tools = [c for c in calls if c["kind"] == "tool"]
    calls = [c for c in calls if c["kind"] == "llm"]
    if calls:
        ct = Table(box=None, header_style="bold")
        for name in ("step", "node", "model", "tokens in/out", "ms"):
            ct.add_column(name, no_wrap=True)
        ct.add_column("answer", overflow="ellipsis", no_wrap=True)
        for c in calls:
            answer = c["error"] or short((c["response"] or {}).get("content", ""), 60)
            ct.add_row(str(c["step"]), c["node"], c["model"] or "",
                       f"{c['prompt_tokens'] or 0}/{c['completion_tokens'] or 0}",
                       f"{c['latency_ms'] or 0:.1f}", answer)
        console.print("[bold]model calls[/]")
        console.print(ct)
    if tools:
        tt = Table(box=None, header_style="bold")
        for name in ("step", "node", "tool", "ms"):
            tt.add_column(name, no_wrap=True)
        tt.add_column("arguments → result", overflow="ellipsis", no_wrap=True)
        for c in tools:
            tt.add_row(str(c["step"]), c["node"], c["model"] or "", f"{c['latency_ms'] or 0:.1f}",
                       f"{short(c['messages'], 40)} → {short(c['error'] or c['response'], 40)}")
        console.print("[bold]tool calls[/]")
        console.print(tt)
    for i in interrupts:
        answered = {"open": "[yellow]open[/]", "closed": "[dim]closed unanswered[/]"}.get(
            i["status"], f"answered {short(i['response'], 50)}")
        console.print(f"interrupt {i['interrupt_id']} at step {i['step']} ({i.get('path') or i['node']}): "
                      f"{short(i['payload'], 60)} — {answered}")
    if run["error"]:
        console.print(f"[red]error:[/] {run['error']}")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    from workbench.sqlquery import check_read_only, run_read_only

    check_read_only(args.query)  # refuse writes before touching the database
    with open_store(args) as store:
        result = run_read_only(store, args.query)
    names, rows = result.columns, result.rows
    if args.format == "json":
        print(json.dumps(result.to_dicts(), default=str, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(result.to_csv())
    else:
        from rich.table import Table

        table = Table(*names, header_style="bold")
        for r in rows:
            table.add_row(*["" if v is None else str(v) for v in r])
        make_console().print(table)
        make_console().print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from workbench.compare import compare_runs

    with open_store(args) as store:
        a, b = store.resolve_run_id(args.run_a), store.resolve_run_id(args.run_b)
        cmp = compare_runs(store, a, b)
    if args.json:
        print(json.dumps(cmp.to_json(), ensure_ascii=False, default=str))
        return EXIT_OK
    console = make_console()
    ra, rb = cmp.run_a, cmp.run_b
    console.print(f"[bold]A[/] {a} ({ra['status']}, code {ra['code_version']})   "
                  f"[bold]B[/] {b} ({rb['status']}, code {rb['code_version']})")
    for label, run, other in (("B", rb, a), ("A", ra, b)):
        if run["parent_run_id"] == other:
            what = "the next turn (continuation)" if run.get("relation") == "continuation" else "a fork"
            console.print(f"{label} is {what} of {'A' if label == 'B' else 'B'} at step {run['fork_step'] + 1}")
    same_run: list[int] = []

    def flush_same() -> None:
        if same_run:
            rng = f"step {same_run[0]}" if len(same_run) == 1 else f"steps {same_run[0]}-{same_run[-1]}"
            console.print(f"[dim]{rng}: same[/]")
            same_run.clear()

    for s in cmp.steps:
        if s.same:
            same_run.append(s.step)
            continue
        flush_same()
        nodes = (", ".join(s.nodes_a) or "—") if s.nodes_a == s.nodes_b else \
            f"A: {', '.join(s.nodes_a) or '—'}  |  B: {', '.join(s.nodes_b) or '—'}"
        still = f"  [dim](still different: {', '.join(s.carried)})[/]" if s.carried and not s.state else ""
        console.print(f"[bold]step {s.step}[/]  {nodes}{still}", markup=True)
        for key, va, vb in s.state:
            console.print(f"    {key}: A={short(va, 50)}  B={short(vb, 50)}", markup=False)
        for node, answer_a, answer_b in s.answers:
            console.print(f"    model answer in {node}: A={short(answer_a, 50)}  B={short(answer_b, 50)}",
                          markup=False)
    flush_same()
    ta, tb = cmp.totals["a"], cmp.totals["b"]
    console.print(f"steps A {ta['steps']:.0f} / B {tb['steps']:.0f}   model calls {ta['llm_calls']:.0f} / "
                  f"{tb['llm_calls']:.0f}   tokens {ta['tokens']:.0f} / {tb['tokens']:.0f}   "
                  f"cost ${ta['cost_usd']:.4f} / ${tb['cost_usd']:.4f}")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from workbench.graph_layout import to_text
    from workbench.loader import load_graph
    from workbench.render import to_ascii, to_mermaid

    graph = load_graph(args.graph)
    print({"mermaid": to_mermaid, "layered": to_text}.get(args.format, to_ascii)(graph))
    return EXIT_OK


def cmd_graphs(args: argparse.Namespace) -> int:
    from workbench.loader import list_graph_files, load_module_graphs

    rows: list[dict[str, Any]] = []
    for path in list_graph_files():
        try:
            for g in load_module_graphs(path).values():
                g.validate()
                rows.append({"graph": g.name, "file": path, "nodes": list(g.nodes), "description": g.description})
        except WorkbenchError as exc:
            rows.append({"graph": None, "file": path, "error": str(exc)})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    for r in rows:
        if r.get("error"):
            print(f"{r['file']}: error: {r['error']}")
        else:
            print(f"{r['graph']:<12} {r['file']:<24} {r['description']}")
    return EXIT_OK
