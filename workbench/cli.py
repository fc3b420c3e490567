"""The headless command line: ``workbench run|resume|runs|show|sql|graph|graphs|demo``.

A stable contract (docs/cli.md): exit 0 = completed, 3 = waiting for input or paused,
1 = the run failed, 2 = bad usage or input (malformed JSON, unknown graph or run, invalid graph,
locked or corrupt database). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from workbench.errors import WorkbenchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
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
        raise UsageError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "quote it, e.g. --input '{\"message\": \"hi\"}'"
        ) from None


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


def _progress_listener(console: Any) -> Any:
    from workbench.context import Event

    def listen(event: Event) -> None:
        if event.kind == "task_finished":
            status = event.data["status"]
            mark = {"completed": "[green]✓[/]", "failed": "[red]✗[/]", "interrupted": "[yellow]⏸[/]"}.get(status, "·")
            attempt = f" (attempt {event.data['attempt']})" if event.data["attempt"] > 1 else ""
            err = f"  [red]{_short(event.data['error'], 70)}[/]" if event.data.get("error") else ""
            console.print(f"  step {event.step:>3}  {mark} {event.node:<18} {event.data['duration_ms']:8.1f} ms"
                          f"{attempt}{err}")

    return listen


def _report(args: argparse.Namespace, result: Any) -> int:
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
        console.print(f"answer it with: workbench resume {rid} --input 'JSON'")
    elif result.status == "paused":
        p = result.paused or {}
        where = f"{p.get('when')} {p.get('node')}" if p.get("node") else "on the break condition"
        console.print(f"[yellow]run {rid} paused[/] {where} (step {result.step}); "
                      f"continue with: workbench resume {rid}")
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
    with _open_store(args) as store:
        listener = None if args.json else _progress_listener(_console())
        if not args.json:
            _console().print(f"running [bold]{graph.name}[/] → {store.path}")
        runner = Runner(graph, store, listener=listener)
        result = runner.run(value, break_before=args.break_before or (), break_after=args.break_after or ())
        return _report(args, result)


def cmd_resume(args: argparse.Namespace) -> int:
    from workbench.loader import load_for_run
    from workbench.runtime import NO_VALUE, Runner

    value = _parse_json(args.input, "--input") if args.input is not None else NO_VALUE
    with _open_store(args) as store:
        run_id = store.resolve_run_id(args.run_id)
        rec = store.get_run(run_id)
        graph = load_for_run(rec["graph"], rec["graph_file"])
        listener = None if args.json else _progress_listener(_console())
        result = Runner(graph, store, listener=listener).resume(run_id, value)
        return _report(args, result)


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


def cmd_show(args: argparse.Namespace) -> int:
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
        console.print(f"forked from {run['parent_run_id']} at step {run['fork_step']}")
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
    for i in interrupts:
        answered = f"answered {_short(i['response'], 50)}" if i["resumed_at"] else "[yellow]open[/]"
        console.print(f"interrupt at step {i['step']} ({i['node']}): {_short(i['payload'], 60)} — {answered}")
    if run["error"]:
        console.print(f"[red]error:[/] {run['error']}")
    return EXIT_OK


READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    try:
        statements = duckdb.extract_statements(args.query)
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise UsageError("no SQL statement given")
    for st in statements:
        kind = st.type.name
        if kind not in READ_ONLY_TYPES:
            raise UsageError(f"workbench sql is read-only: {kind} statements are refused "
                             "(only SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)")
    with _open_store(args) as store:
        cur = store.cursor()
        try:
            # Belt and braces: even a read that slipped past the check is rolled back.
            cur.execute("BEGIN TRANSACTION")
            for st in statements[:-1]:
                cur.execute(st.query)
            cur.execute(statements[-1].query)
            names = [d[0] for d in cur.description or []]
            rows = cur.fetchall()
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
        finally:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
            cur.close()
    if args.format == "json":
        print(json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str, ensure_ascii=False))
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
        sys.stdout.write(buf.getvalue())
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
    cmd_show(argparse.Namespace(db=args.db, json=False, run_id=ids[-1]))
    console.print("\nNext: workbench sql \"SELECT node, count(*) FROM steps GROUP BY node\"")
    return EXIT_OK


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench",
        description="Design, run, debug and replay AI agent workflow graphs. Runs are recorded in DuckDB.",
        epilog="Exit codes: 0 completed, 3 waiting or paused, 1 run failed, 2 bad usage or input.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("sql", help="run a read-only SQL query over the trace store")
    sp.add_argument("query", metavar="QUERY")
    db_opt(sp)
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sp.set_defaults(func=cmd_sql)

    sp = sub.add_parser("graph", help="draw a graph as ASCII or Mermaid")
    sp.add_argument("graph", metavar="GRAPH")
    sp.add_argument("--format", choices=["ascii", "mermaid"], default="ascii")
    sp.set_defaults(func=cmd_graph)

    sp = sub.add_parser("graphs", help="list the graphs in ./graphs")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_graphs)

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
        parser.print_help()
        return EXIT_OK
    if args.command in ("run", "resume", "demo"):
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
