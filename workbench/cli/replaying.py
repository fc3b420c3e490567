"""Commands for recorded runs: ``replay``, ``test``, ``export``, ``import``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from workbench.cli.common import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    emit,
    emit_json,
    error_line,
    esc,
    graph_for,
    make_console,
    open_store,
)
from workbench.errors import WorkbenchError
from workbench.printable import printable


def print_replay(console: Any, report: Any, *, interrupted: bool = False) -> None:
    changed = f" (code changed since recording: {', '.join(report.changed_nodes)})" if report.changed_nodes else ""
    if report.identical:
        ends = "interrupted" if interrupted else report.status
        console.print(f"[green]run {report.run_id} replays identically[/] — {report.steps} steps, "
                      f"ends {ends}, no live calls{esc(changed)}", markup=True)
    else:
        console.print(f"[red]run {report.run_id} diverged[/]{esc(changed)}", markup=True)
        console.print(str(report.divergence))


def cmd_replay(args: argparse.Namespace) -> int:
    from workbench.replay import replay_run
    from workbench.store.reader import shown_status

    with open_store(args, if_missing="refuse") as store:
        run_id = store.resolve_run_id(args.run_id)
        report = replay_run(store, run_id, graph_for(store, run_id, args.graph))
        shown = shown_status(store.get_run(run_id))
    if args.json:
        emit_json(json.dumps(report.to_json(), ensure_ascii=False, default=str))
    else:
        # A recording that stops mid-run because its process died ends "interrupted", as
        # `runs` and `show` call that run (the JSON keeps the recorded status, "running").
        print_replay(make_console(), report, interrupted=report.status == "running" and shown == "interrupted")
    return EXIT_OK if report.identical else EXIT_DIVERGED


def cmd_test(args: argparse.Namespace) -> int:
    from workbench.loader import is_path_ref, load_graph
    from workbench.replay import replay_run

    # --graph NAME: every finished run of that graph, besides the named runs (their code is found
    # by name in the graphs directory). --graph FILE[:VAR]: where the code of a graph outside the
    # graphs directory is; the named runs, or with none named every finished run of that graph,
    # are replayed against it.
    file_ref = args.graph if args.graph and is_path_ref(args.graph) else None
    name = load_graph(file_ref).name if file_ref else args.graph
    with open_store(args, if_missing="refuse") as store:
        ids = [store.resolve_run_id(r) for r in args.run_ids]
        if file_ref:
            for rid in ids:
                recorded = store.get_run(rid)["graph"]
                if recorded != name:
                    raise UsageError(f"run {rid} is a run of graph {recorded!r}; {args.graph} defines {name!r}")
        if name and not (file_ref and ids):
            ids += [r[0] for r in store._query(
                "SELECT run_id FROM runs WHERE graph = ? AND status <> 'running' ORDER BY started_at",
                [name])]
        if not ids and name:
            raise UsageError(f"no finished run of graph {name!r} in {store.path} to test (see 'workbench runs')")
        if not ids:
            raise UsageError("name the runs to test (RUN_ID ...) or a graph (--graph NAME)")
        results = []
        console = make_console()
        for rid in dict.fromkeys(ids):
            try:
                report = replay_run(store, rid, graph_for(store, rid, file_ref))
            except WorkbenchError as exc:
                results.append({"run_id": rid, "passed": False, "error": str(exc)})
                if not args.json:
                    console.print(f"[red]ERROR[/]    {rid}  {esc(exc)}", markup=True)
                continue
            results.append({"run_id": rid, "passed": report.identical, **report.to_json()})
            if not args.json:
                if report.identical:
                    console.print(f"[green]passed[/]   {rid}  {esc(report.graph)}  {report.steps} steps", markup=True)
                else:
                    console.print(f"[red]diverged[/] {rid}  {esc(report.graph)}", markup=True)
                    console.print("    " + str(report.divergence).replace("\n", "\n    "))
    failed = [r for r in results if not r["passed"]]
    if args.json:
        emit_json(json.dumps(results, ensure_ascii=False, default=str))
    else:
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.transfer import export_runs

    if args.to == "-":  # to stdout (the summary to stderr): written whole to a file first
        import tempfile

        with tempfile.TemporaryDirectory(prefix="workbench-export-") as folder:
            path = os.path.join(folder, "runs.jsonl")
            with open_store(args, if_missing="refuse") as store:
                written = export_runs(store, [store.resolve_run_id(r) for r in args.run_ids], path)
                _note_unfinished(store, written)
            with open(path, encoding="utf-8") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), ""):
                    emit(chunk, end="")
        error_line(printable(f"exported {len(written)} run(s) to stdout: {', '.join(written)}"))
        return EXIT_OK
    with open_store(args, if_missing="refuse") as store:
        ids = [store.resolve_run_id(r) for r in args.run_ids]
        written = export_runs(store, ids, args.to)
        _note_unfinished(store, written)
    print(printable(f"exported {len(written)} run(s) to {args.to}: {', '.join(written)}"))
    return EXIT_OK


def _note_unfinished(store: Any, written: list[str]) -> None:
    """Say on stderr which exported runs were being recorded: the copy holds what had been
    committed, and an import shows it interrupted."""
    from workbench.store.reader import shown_status

    live = [rid for rid in written if shown_status(store.get_run(rid)) == "running"]
    if live:
        error_line(printable(f"workbench: note: {', '.join(live)} {'is' if len(live) == 1 else 'are'} still being "
                             "recorded: the file holds the steps committed so far"))


def cmd_import(args: argparse.Namespace) -> int:
    from workbench.transfer import import_files

    with open_store(args) as store:
        result = import_files(store, args.files)
    if args.json:
        emit_json(json.dumps(result))
    else:
        print(printable(f"imported {len(result['imported'])} run(s)" +
              (f": {', '.join(result['imported'])}" if result["imported"] else "") +
              (f"; {len(result['skipped'])} already present" if result["skipped"] else "")))
    return EXIT_OK
