"""Commands that run graphs: ``run``, ``resume``, ``fork``, ``demo``."""

from __future__ import annotations

import argparse
from typing import Any

from workbench import codec
from workbench.cli.common import (
    EXIT_OK,
    UsageError,
    error_line,
    esc,
    graph_for,
    make_console,
    open_store,
    parse_json,
    progress_listener,
    report,
    run_tracker,
)
from workbench.errors import WorkbenchError


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.loader import load_graph
    from workbench.runtime import Runner

    graph = load_graph(args.graph)
    value = parse_json(args.input, "--input") if args.input is not None else {}
    if not isinstance(value, dict):
        raise UsageError(f"--input must be a JSON object for a new run, got {type(value).__name__}")
    from workbench.runtime.options import check_limit

    # A bad step limit is refused before the store is touched (worded as resume and fork word it).
    check_limit(args.max_steps)
    if args.continue_run is not None:
        return _continue(args, graph, value)
    try:
        # Refuse a bad input before touching the store (nothing is created for it).
        graph.schema.initial(value, "--input")
        codec.dumps(value, "--input")
    except WorkbenchError as exc:
        raise UsageError(str(exc)) from None
    with open_store(args) as store:
        listener = run_tracker(None if args.json else progress_listener(make_console()))
        if not args.json:
            make_console().print(f"running [bold]{esc(graph.name)}[/] → {esc(store.path)}", markup=True)
        runner = Runner(graph, store, listener=listener)
        result = runner.run(value, break_before=args.break_before or (), break_after=args.break_after or (),
                            max_steps=args.max_steps)
        return report(args, result, args.graph, runner)


def _continue(args: argparse.Namespace, graph: Any, value: dict[str, Any]) -> int:
    """``run GRAPH --continue RUN``: the next turn of RUN's conversation (``last``: the newest
    run of GRAPH)."""
    from workbench.runtime import Runner

    with open_store(args, if_missing="refuse") as store:
        if args.continue_run == "last":
            rows = store._query("SELECT run_id FROM wb_runs WHERE graph = ? ORDER BY started_at DESC, run_id DESC "
                               "LIMIT 1", [graph.name])
            if not rows:
                raise UsageError(f"--continue last: no run of graph {graph.name!r} in {store.path} yet")
            run_id = str(rows[0][0])
        else:
            run_id = store.resolve_run_id(args.continue_run)
        listener = run_tracker(None if args.json else progress_listener(make_console()))
        runner = Runner(graph, store, listener=listener)
        result = runner.continue_run(run_id, value, break_before=args.break_before or (),
                                     break_after=args.break_after or (), max_steps=args.max_steps)
        return report(args, result, args.graph, runner)


def cmd_resume(args: argparse.Namespace) -> int:
    from workbench.runtime import NO_VALUE, Runner

    value = parse_json(args.input, "--input") if args.input is not None else NO_VALUE
    answers = parse_json(args.answers, "--answers") if args.answers is not None else None
    if answers is not None and not isinstance(answers, dict):
        raise UsageError('--answers must be a JSON object of interrupt ids and answers: {"ID": answer, ...}')
    if args.interrupt is not None and args.input is None:
        raise UsageError(f"--interrupt {args.interrupt}: give the answer with --input JSON")
    with open_store(args, if_missing="refuse") as store:
        run_id = store.resolve_run_id(args.run_id)
        graph = graph_for(store, run_id, args.graph)
        listener = run_tracker(None if args.json else progress_listener(make_console()))
        runner = Runner(graph, store, listener=listener)
        result = runner.resume(run_id, value, max_steps=args.max_steps, interrupt=args.interrupt, answers=answers,
                               close=args.close or ())
        return report(args, result, args.graph, runner)


def parse_sets(items: list[str] | None, set_file: str | None) -> dict[str, Any]:
    edits: dict[str, Any] = {}
    if set_file:
        data = parse_json("@" + set_file, "--set-file")
        if not isinstance(data, dict):
            raise UsageError("--set-file must hold a JSON object of state keys")
        edits.update(data)
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: write KEY=JSON, e.g. --set category='\"refund\"'")
        edits[key] = parse_json(raw, f"--set {key}")
    return edits


def parse_llm_edits(items: list[str] | None) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items or []:
        num, sep, text = item.partition("=")
        if not sep or not num.strip().isdigit():
            raise UsageError(f"--llm-response {item!r}: write N=TEXT, N being the call's number at that step")
        out[int(num)] = text
    return out


def cmd_fork(args: argparse.Namespace) -> int:
    from workbench.runtime import Runner
    from workbench.runtime.forking import parse_address

    edits = parse_sets(args.set, args.set_file)
    llm_edits = parse_llm_edits(args.llm_response)
    with open_store(args, if_missing="refuse") as store:
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
        try:
            step, _ = parse_address(at)
        except WorkbenchError as exc:
            raise UsageError(str(exc)) from None
        last = store.last_step(run_id)
        if not 1 <= step <= last:
            raise UsageError(f"run {run_id} has steps 1..{last}; --at {at} is out of range")
        graph = graph_for(store, run_id, args.graph)
        changed = graph.changed_since(parent.get("node_versions"))
        listener = run_tracker(None if args.json else progress_listener(make_console(), changed=changed, at=step))
        runner = Runner(graph, store, listener=listener)
        result = runner.fork(run_id, at, set_state=edits, llm_responses=llm_edits, max_steps=args.max_steps,
                             close=args.close or ())
        for event in store.events(result.run_id) if args.json else ():  # else the progress line says it
            moved = (event["detail"] or {}).get("rerouted") if event["kind"] == "forked" else None
            if moved:
                error_line(f"workbench: note: from the edited state step {moved.get('where', step)} runs "
                           f"{', '.join(moved['to'])} (run {run_id} ran {', '.join(moved['from'])} there)")
        return report(args, result, args.graph, runner)


DEMO_INPUTS = [
    {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"},
    {"message": "I was charged twice, I want a refund of $40", "customer_id": "C-1002"},
]


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the support demo on a few messages, headless, and show what was recorded."""
    from rich.text import Text

    from workbench.errors import GraphLoadError
    from workbench.loader import load_graph
    from workbench.runtime import Runner

    console = make_console()
    try:
        graph = load_graph("support")
    except GraphLoadError as exc:
        if "unknown graph 'support'" not in str(exc):
            raise
        # The demo is the repository's own support graph, not a graph of the user's project.
        raise UsageError("workbench demo runs the support demo graph (graphs/support.py of the workbench "
                         "repository): run it from the repository's root, or copy that file into ./graphs") from None
    with open_store(args) as store:
        ids = []
        for value in DEMO_INPUTS:
            console.rule(Text.assemble(("support", "bold"), f" ← {value['message']!r}"))  # (markup is off)
            result = Runner(graph, store, listener=run_tracker(progress_listener(console))).run(value)
            ids.append(result.run_id)
            sent = f", reply sent:\n{esc(result.state.get('reply'))}" if result.status == "completed" else ""
            console.print(f"→ run {result.run_id}: [bold]{result.status}[/]{sent}", markup=True)
    from workbench.cli.reading import cmd_runs, cmd_show

    console.rule("recorded runs")
    cmd_runs(argparse.Namespace(db=args.db, json=False, limit=10))
    console.rule(f"steps of run {ids[-1]}")
    cmd_show(argparse.Namespace(db=args.db, json=False, run_id=ids[-1], step=None))
    console.print("\nNext: workbench sql \"SELECT node, count(*) FROM steps GROUP BY node\"")
    return EXIT_OK
