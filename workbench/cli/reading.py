"""Commands that read the history: ``runs``, ``show``, ``sql``, ``diff``, ``graph``, ``graphs``."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from workbench.cli.common import EXIT_OK, emit, emit_json, error_line, esc, make_console, open_store, short
from workbench.errors import WorkbenchError
from workbench.printable import printable


def cmd_runs(args: argparse.Namespace) -> int:
    with open_store(args, if_missing="empty") as store:
        runs = store.list_runs(args.limit)
    if args.json:
        emit_json(json.dumps(runs, default=str, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    from workbench.store.reader import shown_status

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
        st = shown_status(r)  # interrupted: its process stopped; 'workbench resume' continues it
        table.add_row(r["run_id"], r["graph"], Text(st, style=colors.get(st, "white")),
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


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.history import nested_tasks
    from workbench.runtime.conversation import conversation_turns
    from workbench.store.reader import shown_status

    if args.step is not None:
        from workbench.cli.showing import cmd_show_step

        return cmd_show_step(args)
    with open_store(args, if_missing="refuse") as store:
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
        # In reading order: a subgraph's calls right after those of the task that ran it, each
        # named by its inner node's path and addressed by its inner step (as fork --at takes it).
        order: dict[tuple[str, int, int], int] = {}
        for i, r in enumerate(nested):
            order.setdefault((r["run_id"], r["step"], r["task"]), i)
        for child_id in paths:
            calls += store.llm_calls(child_id)
        calls.sort(key=lambda c: (order.get((c["run_id"], c["step"], c["task"]), len(order)), c["seq"]))
        calls = [{**c, "node": f"{paths[c['run_id']][0]}/{c['node']}", "step": f"{paths[c['run_id']][1]}/{c['step']}"}
                 if c["run_id"] in paths else c for c in calls]
        interrupts = [({**i, "step": f"{paths[i['run_id']][1]}/{i['step']}"} if i["run_id"] in paths else i)
                      for i in store.tree_interrupts(run_id) if i["run_id"] in paths or i["run_id"] == run_id]
    if args.json:
        subgraph_steps = [{k: v for k, v in r.items() if k != "traceback"} for r in inner]
        emit_json(json.dumps({"run": run, "steps": steps, "llm_calls": calls, "interrupts": interrupts,
                          "events": events, "state": final, "conversation": turns,
                          "subgraph_steps": subgraph_steps}, default=str, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    console.print(f"[bold]run {run_id}[/]  graph {esc(run['graph'])}  status {shown_status(run)}  "
                  f"started {str(run['started_at'])[:19]}  code {esc(run['code_version'])}", markup=True)
    if run["parent_run_id"] and run.get("relation") == "continuation":
        console.print(f"continues the conversation of {run['parent_run_id']} from step {run['fork_step'] + 1}")
    elif run["parent_run_id"]:
        console.print(f"forked from {run['parent_run_id']} at step {run['fork_step'] + 1}")
    if run["status"] == "superseded" and run["error"]:
        console.print(run["error"])
    console.print(f"input: {short(run['input'], 100)}")
    if len(turns) > 1:
        console.print(f"conversation: {len(turns)} turns")
        for t in turns:
            steps_of = turn_steps(t)
            this = " (this run)" if t["run_id"] == run_id else ""
            if t.get("redone_by"):
                this = f", redone by this run from step {t['redone_by']['from_step']}"
            console.print(f"  turn {t['turn']}  {t['run_id']}{this}  {steps_of}  {t['status']}  "
                          f"input {short(t['input'], 60)}")
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
        table.add_row(s["address"], node, str(s["attempt"]), Text(s["status"], style=color),
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
        console.print("model calls", style="bold")
        console.print(ct)
    if tools:
        tt = Table(box=None, header_style="bold")
        for name in ("step", "node", "tool", "ms"):
            tt.add_column(name, no_wrap=True)
        tt.add_column("arguments → result", overflow="ellipsis", no_wrap=True)
        for c in tools:
            tt.add_row(str(c["step"]), c["node"], c["model"] or "", f"{c['latency_ms'] or 0:.1f}",
                       f"{short(c['messages'], 40)} → {short(c['error'] or c['response'], 40)}")
        console.print("tool calls", style="bold")
        console.print(tt)
    for i in interrupts:
        answered = {"open": "[yellow]open[/]", "closed": "[dim]closed unanswered[/]"}.get(
            i["status"], f"answered {esc(short(i['response'], 50))}")
        console.print(f"interrupt {i['interrupt_id']} at step {i['step']} ({esc(i.get('path') or i['node'])}): "
                      f"{esc(short(i['payload'], 60))} — {answered}", markup=True)
    for line in resumed_lines(events):
        console.print(line, markup=True)
    if run["error"]:
        console.print(f"[red]error:[/] {esc(run['error'])}", markup=True)
    return EXIT_OK


def resumed_lines(events: list[dict[str, Any]]) -> list[str]:
    """A line for each time the run was resumed after it failed (or stopped with an error), with
    the reason when the ``resumed`` event recorded it: a resume clears the run's ``error``, and
    without this line a run that failed and was resumed reads as if it never failed."""
    out = []
    for e in events:
        detail = e.get("detail")
        was, error = (detail.get("from"), detail.get("error")) if isinstance(detail, dict) else (None, None)
        if e["kind"] != "resumed" or (was != "failed" and not error):
            continue
        how = "after it [red]failed[/]" if was == "failed" else f"from {esc(str(was))}"
        out.append(f"resumed at step {e['step']} {how}" + (f": {esc(str(error))}" if error else ""))
    return out


def turn_steps(turn: dict[str, Any]) -> str:
    """A conversation turn's steps, for ``show``: ``step 3``, ``steps 3-5``, or ``no step
    committed`` for a turn superseded before its first step committed (its next turn starts
    there again)."""
    first, last = turn["first_step"], turn["last_step"]
    if last < first:
        return "no step committed"
    return f"step {first}" if first == last else f"steps {first}-{last}"


TABLE_ROWS = 1000
"""How many rows ``workbench sql`` shows as a table unless ``--max-rows`` says otherwise."""


def cmd_sql(args: argparse.Namespace) -> int:
    from workbench.sqlquery import QUERY_TIMEOUT_S, RowSink, check_read_only, csv_sink, plain_value, run_read_only

    check_read_only(args.query)  # refuse writes before touching the database
    # CSV and JSON are written as the database produces the rows (a result of any size takes
    # one batch of memory). A table needs its rows to size its columns: it keeps the first
    # --max-rows and counts the others as they go by.
    kept: list[tuple[Any, ...]] = []
    limit = args.max_rows or None

    def keep(columns: list[str], json_columns: frozenset[str], rows: list[tuple[Any, ...]]) -> None:
        room = len(rows) if limit is None else max(0, limit - len(kept))
        kept.extend(rows[:room])

    sink: RowSink = keep
    if args.format == "csv":
        sink = csv_sink(lambda text: emit(text, end=""))
    elif args.format == "json":
        sink = _json_array_sink()
    with open_store(args, if_missing="empty") as store:
        result = run_read_only(store, args.query, timeout=QUERY_TIMEOUT_S if args.timeout is None else args.timeout,
                               sink=sink)
    if args.format == "json":
        emit("]")
    elif args.format == "table":
        from rich.table import Table

        table = Table(*result.columns, header_style="bold")
        for r in kept:
            table.add_row(*["" if v is None else str(plain_value(v)) for v in r])
        make_console().print(table)
        total = result.fetched
        if len(kept) < total:
            make_console().print(f"(the first {len(kept):,} of {total:,} rows: --max-rows 0 shows every row, "
                                 "--format csv or json writes them as they come)")
        else:
            make_console().print(f"({total} row{'s' if total != 1 else ''})")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from workbench.compare import compare_runs

    with open_store(args, if_missing="refuse") as store:
        a, b = store.resolve_run_id(args.run_a), store.resolve_run_id(args.run_b)
        cmp = compare_runs(store, a, b)
    if args.json:
        emit_json(json.dumps(cmp.to_json(), ensure_ascii=False, default=str))
        return EXIT_OK
    console = make_console()
    ra, rb = cmp.run_a, cmp.run_b
    console.print(f"[bold]A[/] {a} ({ra['status']}, code {esc(ra['code_version'])})   "
                  f"[bold]B[/] {b} ({rb['status']}, code {esc(rb['code_version'])})", markup=True)
    for label, run, other in (("B", rb, a), ("A", ra, b)):
        if run["parent_run_id"] == other:
            what = "the next turn (continuation)" if run.get("relation") == "continuation" else "a fork"
            console.print(f"{label} is {what} of {'A' if label == 'B' else 'B'} at step {run['fork_step'] + 1}")
    _print_steps(console, cmp.steps, "")
    ta, tb = cmp.totals["a"], cmp.totals["b"]
    console.print(f"steps A {ta['steps']:.0f} / B {tb['steps']:.0f}   model calls {ta['llm_calls']:.0f} / "
                  f"{tb['llm_calls']:.0f}   tokens {ta['tokens']:.0f} / {tb['tokens']:.0f}   "
                  f"cost ${ta['cost_usd']:.4f} / ${tb['cost_usd']:.4f}")
    return EXIT_OK


def _print_steps(console: Any, steps: list[Any], indent: str) -> None:
    """The steps of a comparison that differ, each with its changed values (the changed lines
    or JSON paths, the changed words marked) and its subgraph runs' differences beneath it."""
    from rich.text import Text

    from workbench.diffview import change_lines

    same_run: list[int] = []

    def flush_same() -> None:
        if same_run:
            rng = f"step {same_run[0]}" if len(same_run) == 1 else f"steps {same_run[0]}-{same_run[-1]}"
            console.print(Text(f"{indent}{rng}: same", style="dim"))
            same_run.clear()

    for s in steps:
        if s.same:
            same_run.append(s.step)
            continue
        flush_same()
        nodes = (", ".join(s.nodes_a) or "—") if s.nodes_a == s.nodes_b else \
            f"A: {', '.join(s.nodes_a) or '—'}  |  B: {', '.join(s.nodes_b) or '—'}"
        line = Text(f"{indent}step {s.step}", style="bold").append(f"  {nodes}", style="")
        if s.carried:
            line.append(f"  (still different: {', '.join(s.carried)})", style="dim")
        console.print(line)
        for key, va, vb in s.state:
            for text in change_lines(key, va, vb, indent + "    ", changes=s.changes_of(key, va, vb)):
                console.print(text)
        for node, answer_a, answer_b, kind in s.answers:
            what = "model answer" if kind == "model" else f"{kind} result"
            for text in change_lines(f"{what} in {node}", answer_a, answer_b, indent + "    "):
                console.print(text)
        for sub in s.subgraphs:
            if sub.same:
                continue
            who = f"subgraph {sub.path} (task {sub.task})"
            if sub.run_a is None or sub.run_b is None:
                console.print(Text(f"{indent}    {who}: only in {'B' if sub.run_a is None else 'A'} "
                                   f"({sub.run_a or sub.run_b})", style="yellow"))
                continue
            console.print(Text(f"{indent}    {who}: A {sub.run_a}  B {sub.run_b}", style="cyan"))
            _print_steps(console, sub.steps, indent + "      ")
    flush_same()


def cmd_graph(args: argparse.Namespace) -> int:
    from workbench.graph_layout import to_text
    from workbench.loader import load_graph
    from workbench.render import to_ascii, to_mermaid

    graph = load_graph(args.graph)
    print({"mermaid": to_mermaid, "layered": to_text}.get(args.format, to_ascii)(graph))
    return EXIT_OK


def cmd_graphs(args: argparse.Namespace) -> int:
    from workbench.loader import graphs_dir, list_graph_files, load_module_graphs
    from workbench.redact import scrub

    rows: list[dict[str, Any]] = []
    if not os.path.isdir(graphs_dir()):  # said, not an empty list that looks like "no graphs"
        error_line(f"workbench: note: no graphs folder at {graphs_dir()}; run from the project directory or set "
                   "WORKBENCH_GRAPHS")
    for path in list_graph_files():
        try:
            for g in load_module_graphs(path).values():
                g.validate()
                rows.append({"graph": g.name, "file": path, "nodes": list(g.nodes), "description": g.description})
        except WorkbenchError as exc:
            # A graph file may echo a secret while failing to load: scrubbed like every error.
            rows.append({"graph": None, "file": path, "error": scrub(str(exc))})
    files: dict[str, list[str]] = {}
    for r in rows:
        if r.get("graph"):
            files.setdefault(r["graph"], []).append(r["file"])
    for name, defined_in in files.items():
        if len(defined_in) > 1:  # runs find their graph by name: which file would be a guess
            error_line(f"workbench: warning: graph {name!r} is defined by {' and '.join(defined_in)}; a run, "
                       "replay or fork finds its graph by name: rename one")
    if args.json:
        emit_json(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    for r in rows:
        if r.get("error"):
            print(printable(f"{r['file']}: error: {r['error']}"))
        else:
            print(f"{r['graph']:<12} {r['file']:<24} {r['description']}")
    return EXIT_OK


def _json_array_sink() -> Any:
    """A sink writing the rows as one JSON array of objects, ``[`` first (the caller writes the
    closing ``]``): the text ``json.dumps`` gives for the whole list, a batch at a time."""
    from workbench.sqlquery import row_dict

    written = 0

    def sink(columns: list[str], json_columns: frozenset[str], rows: list[tuple[Any, ...]]) -> None:
        nonlocal written
        parts = ["["] if written == 0 else []
        for row in rows:
            parts.append(("" if written == 0 else ", ") + strict_json(row_dict(columns, json_columns, row)))
            written += 1
        emit_json("".join(parts), end="")

    return sink


def strict_json(value: Any) -> str:
    """``value`` as JSON that every parser reads: NaN and the infinities, which JSON has no word
    for (Python would write ``NaN``/``Infinity``), are written as ``null``."""
    try:
        return json.dumps(value, default=_as_text, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=_as_text, ensure_ascii=False, allow_nan=False)


def _as_text(value: Any) -> str:
    from workbench.sqlquery import plain_value

    return str(plain_value(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
