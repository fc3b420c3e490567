"""The headless command line: ``workbench run|resume|runs|show|sql|graph|graphs|demo``.

A stable contract (docs/cli.md): exit 0 = completed, 3 = waiting for input or paused,
1 = the run failed, 2 = bad usage or input (malformed JSON, unknown graph or run, invalid graph,
locked or corrupt database). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from workbench.errors import WorkbenchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING, EXIT_DIVERGED = 0, 1, 2, 3, 4
STATUS_EXIT = {"completed": EXIT_OK, "waiting": EXIT_WAITING, "paused": EXIT_WAITING,
               "failed": EXIT_FAILED, "running": EXIT_FAILED}


class UsageError(WorkbenchError):
    """Bad command-line input (exit 2)."""


def _parse_json(text: str, what: str) -> Any:
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
    elif text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if what == "--input":
            hint = "; quote it, e.g. --input '{\"message\": \"hi\"}'"
        elif what.startswith("--set"):
            hint = "; strings need JSON quotes, e.g. --set category='\"refund\"'"
        where = f"line {exc.lineno} column {exc.colno}"
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at {where}){hint}") from None


def _open_store(args: argparse.Namespace) -> Any:
    from workbench.store import TraceStore

    return TraceStore(args.db)


def _console() -> Any:
    from rich.console import Console

    # Piped output (scripts, CI logs) is not cut to 80 columns.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------- run / resume


def _progress_listener(console: Any, changed: list[str] | None = None, at: int | None = None) -> Any:
    from workbench.context import Event

    def listen(event: Event) -> None:
        if event.kind == "run_started" and event.data.get("parent"):
            # Printed once the fork's edits were accepted and the fork recorded.
            note = f"; code changed since the parent ran: {', '.join(changed)}" if changed else ""
            console.print(f"fork {event.run_id} of {event.data['parent']}, running from step {at}{note}")
        if event.kind == "task_finished":
            status = event.data["status"]
            mark = {"completed": "[green]✓[/]", "failed": "[red]✗[/]", "interrupted": "[yellow]⏸[/]"}.get(status, "·")
            attempt = f" (attempt {event.data['attempt']})" if event.data["attempt"] > 1 else ""
            err = f"  [red]{_short(event.data['error'], 70)}[/]" if event.data.get("error") else ""
            console.print(f"  step {event.step:>3}  {mark} {event.node:<18} {event.data['duration_ms']:8.1f} ms"
                          f"{attempt}{err}")

    return listen


def _graph_option(ref: str | None) -> str:
    """`` --graph FILE`` for the hints printed after a run of a graph outside the graphs directory
    (a later resume must name the file again: a trace never chooses which file is imported)."""
    from workbench.loader import is_path_ref

    return f" --graph {ref}" if ref and is_path_ref(ref) else ""


def _report(args: argparse.Namespace, result: Any, graph_ref: str | None = None) -> int:
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, default=str))
        return STATUS_EXIT.get(result.status, EXIT_FAILED)
    console = _console()
    rid = result.run_id
    if result.status == "completed":
        console.print(f"[green]run {rid} completed[/] after step {result.step}")
        console.print_json(json.dumps(result.to_json()["state"], ensure_ascii=False))
    elif result.status == "waiting":
        console.print(f"[yellow]run {rid} is waiting for input[/] at step {result.step}:")
        console.print_json(json.dumps(result.to_json()["interrupt"], ensure_ascii=False))
        console.print(f"answer it with: workbench resume {rid}{_graph_option(graph_ref)} --input 'JSON'")
    elif result.status == "paused":
        p = result.paused or {}
        where = f"{p.get('when')} {p.get('node')}" if p.get("node") else "on the break condition"
        console.print(f"[yellow]run {rid} paused[/] {where} (step {result.step}); "
                      f"continue with: workbench resume {rid}{_graph_option(graph_ref)}")
    else:
        print(f"workbench: run {rid} failed: {result.error}", file=sys.stderr)
    return STATUS_EXIT.get(result.status, EXIT_FAILED)


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.loader import load_graph
    from workbench.runtime import Runner

    graph = load_graph(args.graph)
    value = _parse_json(args.input, "--input") if args.input is not None else {}
    if not isinstance(value, dict):
        raise UsageError(f"--input must be a JSON object for a new run, got {type(value).__name__}")
    try:
        graph.schema.initial(value, "--input")  # refuse a bad input before touching the store
    except WorkbenchError as exc:
        raise UsageError(str(exc)) from None
    with _open_store(args) as store:
        listener = None if args.json else _progress_listener(_console())
        if not args.json:
            _console().print(f"running [bold]{graph.name}[/] → {store.path}")
        runner = Runner(graph, store, listener=listener)
        result = runner.run(value, break_before=args.break_before or (), break_after=args.break_after or ())
        return _report(args, result, args.graph)


def cmd_resume(args: argparse.Namespace) -> int:
    from workbench.runtime import NO_VALUE, Runner

    value = _parse_json(args.input, "--input") if args.input is not None else NO_VALUE
    with _open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        graph = _graph_for(store, run_id, args.graph)
        listener = None if args.json else _progress_listener(_console())
        result = Runner(graph, store, listener=listener).resume(run_id, value)
        return _report(args, result, args.graph)


# ---------------------------------------------------------------------- reading


def cmd_runs(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
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
    colors = {"completed": "green", "failed": "red", "waiting": "yellow", "paused": "yellow", "running": "cyan"}
    for r in runs:
        st = r["status"]
        table.add_row(r["run_id"], r["graph"], f"[{colors.get(st, 'white')}]{st}[/]",
                      str(r["started_at"])[5:19], str(r["duration_ms"]), str(r["steps"]), str(r["tokens"]),
                      f"{r['cost_usd']:.4f}", *([r["parent_run_id"] or ""] if forks else []))
    console = _console()
    if not runs:
        console.print(f"no runs yet in {args.db or 'the trace store'}; start one with: workbench run GRAPH")
    else:
        console.print(table)
    return EXIT_OK


def cmd_show_step(args: argparse.Namespace) -> int:
    """One step in detail: tasks, state diff, numbered model calls (for fork --llm-response)."""
    from workbench.history import RunHistory

    with _open_store(args) as store:
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
    console = _console()
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
        console.print(f"  {k}: {_short(before, 60)} → {_short(after, 60)}", markup=False)
    for k, _op, v in view.edits_after:
        console.print(f"  edited by the fork: {k} = {_short(v, 60)}", markup=False)
    for i, c in enumerate(llm, start=1):
        answer = c["error"] or (c["response"] or {}).get("content", "")
        console.print(f"  model call {i} ({c['node']}, {c['model']}, {c['prompt_tokens'] or 0}/"
                      f"{c['completion_tokens'] or 0} tokens): {_short(answer, 70)}", markup=False)
    for c in view.calls:
        if c["kind"] == "tool":
            console.print(f"  tool {c['model']}({_short(c['messages'], 40)}) → "
                          f"{_short(c['error'] or c['response'], 50)}", markup=False)
    for intr in view.interrupts:
        console.print(f"  interrupt: {_short(intr['payload'], 60)} → {_short(intr['response'], 40)}",
                      markup=False)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if args.step is not None:
        return cmd_show_step(args)
    with _open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        run = store.get_run(run_id)
        steps = store.tasks(run_id)
        calls = store.llm_calls(run_id)
        interrupts = store.interrupts(run_id)
        events = store.events(run_id)
        final = store.state_at(run_id, max([s["step"] for s in steps] + [0]))
    if args.json:
        print(json.dumps({"run": run, "steps": steps, "llm_calls": calls, "interrupts": interrupts,
                          "events": events, "state": final}, default=str, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table

    console = _console()
    console.print(f"[bold]run {run_id}[/]  graph {run['graph']}  status {run['status']}  "
                  f"started {str(run['started_at'])[:19]}  code {run['code_version']}")
    if run["parent_run_id"]:
        console.print(f"forked from {run['parent_run_id']} at step {run['fork_step'] + 1}")
    console.print(f"input: {_short(run['input'], 100)}")
    table = Table(box=None, header_style="bold")
    for name in ("step", "node", "try", "status", "ms"):
        table.add_column(name, no_wrap=True)
    table.add_column("update / error", overflow="ellipsis", no_wrap=True)
    for s in steps:
        detail = s["error"] if s["error"] else _short(s["update"] if s["update"] is not None else "", 70)
        color = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(s["status"], "white")
        table.add_row(str(s["step"]), s["node"], str(s["attempt"]), f"[{color}]{s['status']}[/]",
                      f"{s['duration_ms']:.1f}", detail)
    console.print(table)
    tools = [c for c in calls if c["kind"] == "tool"]
    calls = [c for c in calls if c["kind"] == "llm"]
    if calls:
        ct = Table(box=None, header_style="bold")
        for name in ("step", "node", "model", "tokens in/out", "ms"):
            ct.add_column(name, no_wrap=True)
        ct.add_column("answer", overflow="ellipsis", no_wrap=True)
        for c in calls:
            answer = c["error"] or _short((c["response"] or {}).get("content", ""), 60)
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
                       f"{_short(c['messages'], 40)} → {_short(c['error'] or c['response'], 40)}")
        console.print("[bold]tool calls[/]")
        console.print(tt)
    for i in interrupts:
        answered = f"answered {_short(i['response'], 50)}" if i["resumed_at"] else "[yellow]open[/]"
        console.print(f"interrupt at step {i['step']} ({i['node']}): {_short(i['payload'], 60)} — {answered}")
    if run["error"]:
        console.print(f"[red]error:[/] {run['error']}")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    from workbench.sqlquery import check_read_only, run_read_only

    check_read_only(args.query)  # refuse writes before touching the database
    with _open_store(args) as store:
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
        _console().print(table)
        _console().print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from workbench.loader import load_graph
    from workbench.render import to_ascii, to_mermaid

    graph = load_graph(args.graph)
    print(to_mermaid(graph) if args.format == "mermaid" else to_ascii(graph))
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


DEMO_INPUTS = [
    {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"},
    {"message": "I was charged twice, I want a refund of $40", "customer_id": "C-1002"},
]


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the support demo on a few messages, headless, and show what was recorded."""
    from workbench.loader import load_graph
    from workbench.runtime import Runner

    console = _console()
    graph = load_graph("support")
    with _open_store(args) as store:
        ids = []
        for value in DEMO_INPUTS:
            console.rule(f"[bold]support[/] ← {value['message']!r}")
            result = Runner(graph, store, listener=_progress_listener(console)).run(value)
            ids.append(result.run_id)
            console.print(f"→ run {result.run_id}: [bold]{result.status}[/]"
                          + (f", reply sent:\n{result.state.get('reply')}" if result.status == "completed" else ""))
    console.rule("recorded runs")
    cmd_runs(argparse.Namespace(db=args.db, json=False, limit=10))
    console.rule(f"steps of run {ids[-1]}")
    cmd_show(argparse.Namespace(db=args.db, json=False, run_id=ids[-1], step=None))
    console.print("\nNext: workbench sql \"SELECT node, count(*) FROM steps GROUP BY node\"")
    return EXIT_OK


# ---------------------------------------------------------------------- replay, fork, tests


def _graph_for(store: Any, run_id: str, ref: str | None = None) -> Any:
    """The graph of a recorded run: by its recorded name in the graphs directory, or from the
    file named with --graph (never from the path the trace recorded; see loader.load_for_run)."""
    from workbench.loader import load_for_run

    rec = store.get_run(run_id)
    return load_for_run(rec["graph"], rec["graph_file"], ref)


def _print_replay(console: Any, report: Any) -> None:
    changed = f" (code changed since recording: {', '.join(report.changed_nodes)})" if report.changed_nodes else ""
    if report.identical:
        console.print(f"[green]run {report.run_id} replays identically[/] — {report.steps} steps, "
                      f"ends {report.status}, no live calls{changed}")
    else:
        console.print(f"[red]run {report.run_id} diverged[/]{changed}")
        console.print(str(report.divergence), markup=False)


def cmd_replay(args: argparse.Namespace) -> int:
    from workbench.replay import replay_run

    with _open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        report = replay_run(store, run_id, _graph_for(store, run_id, args.graph))
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, default=str))
    else:
        _print_replay(_console(), report)
    return EXIT_OK if report.identical else EXIT_DIVERGED


def _parse_sets(items: list[str] | None, set_file: str | None) -> dict[str, Any]:
    edits: dict[str, Any] = {}
    if set_file:
        data = _parse_json("@" + set_file, "--set-file")
        if not isinstance(data, dict):
            raise UsageError("--set-file must hold a JSON object of state keys")
        edits.update(data)
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: write KEY=JSON, e.g. --set category='\"refund\"'")
        edits[key] = _parse_json(raw, f"--set {key}")
    return edits


def _parse_llm_edits(items: list[str] | None) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items or []:
        num, sep, text = item.partition("=")
        if not sep or not num.strip().isdigit():
            raise UsageError(f"--llm-response {item!r}: write N=TEXT, N being the call's number at that step")
        out[int(num)] = text
    return out


def cmd_fork(args: argparse.Namespace) -> int:
    from workbench.runtime import Runner

    edits = _parse_sets(args.set, args.set_file)
    llm_edits = _parse_llm_edits(args.llm_response)
    with _open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        parent = store.get_run(run_id)
        if args.from_failure:
            if parent["status"] != "failed":
                raise UsageError(f"run {run_id} did not fail (it is {parent['status']}); use --at STEP")
            at = int(parent["last_step"] or 1)
        elif args.at is None:
            raise UsageError("say where to fork: --at STEP or --from-failure")
        else:
            at = args.at
        last = store.last_step(run_id)
        if not 1 <= at <= last:
            raise UsageError(f"run {run_id} has steps 1..{last}; --at {at} is out of range")
        graph = _graph_for(store, run_id, args.graph)
        changed = graph.changed_since(parent.get("node_versions"))
        listener = None if args.json else _progress_listener(_console(), changed=changed, at=at)
        result = Runner(graph, store, listener=listener).fork(run_id, at, set_state=edits, llm_responses=llm_edits)
        return _report(args, result, args.graph)


def cmd_test(args: argparse.Namespace) -> int:
    from workbench.loader import is_path_ref, load_graph
    from workbench.replay import replay_run

    # --graph NAME: every finished run of that graph, besides the named runs (their code is found
    # by name in the graphs directory). --graph FILE[:VAR]: where the code of a graph outside the
    # graphs directory is; the named runs, or with none named every finished run of that graph,
    # are replayed against it.
    file_ref = args.graph if args.graph and is_path_ref(args.graph) else None
    name = load_graph(file_ref).name if file_ref else args.graph
    with _open_store(args) as store:
        ids = [store.resolve_run_id(r) for r in args.run_ids]
        if file_ref:
            for rid in ids:
                recorded = store.get_run(rid)["graph"]
                if recorded != name:
                    raise UsageError(f"run {rid} is a run of graph {recorded!r}; {args.graph} defines {name!r}")
        if name and not (file_ref and ids):
            ids += [r[0] for r in store.query(
                "SELECT run_id FROM runs WHERE graph = ? AND status <> 'running' ORDER BY started_at",
                [name])]
        if not ids:
            raise UsageError("name the runs to test (RUN_ID ...) or a graph (--graph NAME)")
        results = []
        console = _console()
        for rid in dict.fromkeys(ids):
            try:
                report = replay_run(store, rid, _graph_for(store, rid, file_ref))
            except WorkbenchError as exc:
                results.append({"run_id": rid, "passed": False, "error": str(exc)})
                if not args.json:
                    console.print(f"[red]ERROR[/]    {rid}  {exc}", markup=True)
                continue
            results.append({"run_id": rid, "passed": report.identical, **report.to_json()})
            if not args.json:
                if report.identical:
                    console.print(f"[green]passed[/]   {rid}  {report.graph}  {report.steps} steps")
                else:
                    console.print(f"[red]diverged[/] {rid}  {report.graph}")
                    console.print("    " + str(report.divergence).replace("\n", "\n    "), markup=False)
    failed = [r for r in results if not r["passed"]]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, default=str))
    else:
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.transfer import export_runs

    with _open_store(args) as store:
        ids = [store.resolve_run_id(r) for r in args.run_ids]
        written = export_runs(store, ids, args.to)
    print(f"exported {len(written)} run(s) to {args.to}: {', '.join(written)}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from workbench.transfer import import_files

    with _open_store(args) as store:
        result = import_files(store, args.files)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"imported {len(result['imported'])} run(s)" +
              (f": {', '.join(result['imported'])}" if result["imported"] else "") +
              (f"; {len(result['skipped'])} already present" if result["skipped"] else ""))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from workbench.compare import compare_runs

    with _open_store(args) as store:
        a, b = store.resolve_run_id(args.run_a), store.resolve_run_id(args.run_b)
        cmp = compare_runs(store, a, b)
    if args.json:
        print(json.dumps(cmp.to_json(), ensure_ascii=False, default=str))
        return EXIT_OK
    console = _console()
    ra, rb = cmp.run_a, cmp.run_b
    console.print(f"[bold]A[/] {a} ({ra['status']}, code {ra['code_version']})   "
                  f"[bold]B[/] {b} ({rb['status']}, code {rb['code_version']})")
    for label, run, other in (("B", rb, a), ("A", ra, b)):
        if run["parent_run_id"] == other:
            console.print(f"{label} is a fork of {'A' if label == 'B' else 'B'} at step {run['fork_step'] + 1}")
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
            console.print(f"    {key}: A={_short(va, 50)}  B={_short(vb, 50)}", markup=False)
        for node, answer_a, answer_b in s.answers:
            console.print(f"    model answer in {node}: A={_short(answer_a, 50)}  B={_short(answer_b, 50)}",
                          markup=False)
    flush_same()
    ta, tb = cmp.totals["a"], cmp.totals["b"]
    console.print(f"steps A {ta['steps']:.0f} / B {tb['steps']:.0f}   model calls {ta['llm_calls']:.0f} / "
                  f"{tb['llm_calls']:.0f}   tokens {ta['tokens']:.0f} / {tb['tokens']:.0f}   "
                  f"cost ${ta['cost_usd']:.4f} / ${tb['cost_usd']:.4f}")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the TUI (imports Textual only here: the core never does)."""
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise UsageError("the workbench TUI needs a terminal; for headless use see 'workbench --help'")
    from workbench.store import TraceStore
    from workbench.tui.app import run_tui

    # Fail fast, with the CLI's one-line message, when the store is locked or unreadable.
    TraceStore(args.db).close()
    run_tui(args.db, args.graphs, watch=not args.no_watch)
    return EXIT_OK


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench",
        description="Design, run, debug and replay AI agent workflow graphs. Runs are recorded in DuckDB.",
        epilog="Exit codes: 0 completed, 3 waiting or paused, 1 run failed, 2 bad usage or input, "
               "4 replay diverged.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def graph_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--graph", metavar="FILE[:VAR]", default=None,
                        help="the run's graph code, for a graph outside ./graphs (it must define the graph "
                             "the run recorded); by default the graph is found by name in ./graphs")

    def db_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", default=None, metavar="PATH",
                        help="trace store (default $WORKBENCH_DB or traces/workbench.duckdb)")

    sp = sub.add_parser("run", help="start a run of a graph")
    sp.add_argument("graph", metavar="GRAPH", help="a graph name in ./graphs or path/to/file.py[:variable]")
    sp.add_argument("--input", metavar="JSON", help="the run's input (a JSON object; @file or - for stdin)")
    db_opt(sp)
    sp.add_argument("--break-before", action="append", metavar="NODE", help="pause before NODE runs")
    sp.add_argument("--break-after", action="append", metavar="NODE", help="pause after NODE runs")
    sp.add_argument("--json", action="store_true",
                    help="print one JSON object: run_id, status, state, interrupt, error")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("resume", help="continue a waiting, paused, failed or crashed run")
    sp.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix, or 'last'")
    sp.add_argument("--input", metavar="JSON", help="the answer to the open interrupt (any JSON value)")
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_resume)

    sp = sub.add_parser("runs", help="list recorded runs")
    db_opt(sp)
    sp.add_argument("--limit", type=int, default=50)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("show", help="show a run's steps, model calls and interrupts")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--step", type=int, metavar="N", help="one step in detail: state diff, numbered model calls")
    sp.add_argument("-v", "--verbose", action="store_true", help="with --step: include tracebacks")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("sql", help="run a read-only SQL query over the trace store")
    sp.add_argument("query", metavar="QUERY")
    db_opt(sp)
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sp.set_defaults(func=cmd_sql)

    sp = sub.add_parser("replay", help="re-execute a run with today's code, serving every recorded answer")
    sp.add_argument("run_id", metavar="RUN_ID")
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser("fork", help="fork a run at a step, with edits, and run the fork live")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--at", type=int, metavar="STEP", help="re-run from this step (the fork shares steps before it)")
    sp.add_argument("--from-failure", action="store_true", help="fork at the step where the run failed")
    sp.add_argument("--set", action="append", metavar="KEY=JSON", help="set a state key before the step runs")
    sp.add_argument("--set-file", metavar="PATH", help="a JSON object of state keys to set")
    sp.add_argument("--llm-response", action="append", metavar="N=TEXT",
                    help="replace the answer of model call N of that step (see 'workbench show RUN --step N')")
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_fork)

    sp = sub.add_parser("test", help="replay recorded runs as regression tests")
    sp.add_argument("run_ids", metavar="RUN_ID", nargs="*")
    sp.add_argument("--graph", metavar="NAME|FILE[:VAR]",
                    help="NAME: also every finished run of this graph in ./graphs; FILE[:VAR]: the code of a "
                         "graph outside ./graphs, to replay the named runs (or, with none named, every "
                         "finished run of that graph) against")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_test)

    sp = sub.add_parser("export", help="write runs to a portable JSON-lines file")
    sp.add_argument("run_ids", metavar="RUN_ID", nargs="+")
    sp.add_argument("--to", required=True, metavar="FILE")
    db_opt(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("import", help="load exported runs into the trace store (idempotent)")
    sp.add_argument("files", metavar="FILE", nargs="+")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("diff", help="compare two runs step by step")
    sp.add_argument("run_a", metavar="RUN_A")
    sp.add_argument("run_b", metavar="RUN_B")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_diff)

    sp = sub.add_parser("graph", help="draw a graph as ASCII or Mermaid")
    sp.add_argument("graph", metavar="GRAPH")
    sp.add_argument("--format", choices=["ascii", "mermaid"], default="ascii")
    sp.set_defaults(func=cmd_graph)

    sp = sub.add_parser("graphs", help="list the graphs in ./graphs")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_graphs)

    sp = sub.add_parser("ui", help="open the workbench TUI (the default with no command)")
    db_opt(sp)
    sp.add_argument("--graphs", metavar="DIR", help="graphs directory (default $WORKBENCH_GRAPHS or ./graphs)")
    sp.add_argument("--no-watch", action="store_true", help="do not reload graph files on save")
    sp.set_defaults(func=cmd_ui)

    sp = sub.add_parser("demo", help="run the support demo headless and show what was recorded")
    db_opt(sp)
    sp.set_defaults(func=cmd_demo)
    return p


def _prewarm_litellm() -> None:
    """Import litellm in the background while the graph loads and the store opens.

    The import takes seconds; overlapping it with start-up keeps the first model call (and its
    recorded step duration) from paying for all of it.
    """
    import threading

    from workbench.llm.client import litellm_module

    def warm() -> None:
        try:
            litellm_module()
        except Exception:  # the first real call reports any problem properly
            pass

    threading.Thread(target=warm, name="workbench-litellm-import", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["ui", *(argv or [])])
    if args.command in ("run", "demo", "fork"):
        _prewarm_litellm()
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in workbench: still one line, with a way to see more
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(f"workbench: internal error: {type(exc).__name__}: {exc} (set WORKBENCH_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
