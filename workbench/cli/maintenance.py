"""Keeping a store healthy, and the TUI: ``doctor``, ``maintain``, ``rm``, ``ui``."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.cli.common import EXIT_FAILED, EXIT_OK, UsageError, emit_json, open_store
from workbench.printable import printable


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the TUI (imports Textual only here: the core never does)."""
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise UsageError("the workbench TUI needs a terminal; for headless use see 'workbench --help'")
    import gc

    from workbench.project_config import load

    load()  # a broken workbench.toml is one line here, not a model call failing inside the TUI

    # Start-up makes many objects that live as long as the TUI: no garbage collection passes
    # over them until the first frame is up (the app turns it back on, lifecycle.py).
    gc.disable()
    # The store is opened just after the TUI's first frame, not before it (DuckDB's import and
    # the open take a third of a second); one that cannot be opened closes the TUI again and
    # is reported here, with the CLI's one-line message.
    from workbench.tui.app import run_tui

    run_tui(args.db, args.graphs, watch=not args.no_watch)
    return EXIT_OK


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete runs (with --with-descendants, their forks and continuations too)."""
    with open_store(args, if_missing="refuse") as store:
        ids = list(dict.fromkeys(store.resolve_run_id(ref) for ref in args.run_ids))
        deleted = store.delete_runs(ids, with_descendants=args.with_descendants)
    if args.json:
        emit_json(json.dumps({"deleted": deleted}))
    else:
        extra = len(deleted) - len(ids)
        more = f" (and {extra} fork(s)/continuation(s))" if extra else ""
        print(printable(f"deleted {len(ids)} run(s){more}: {' '.join(deleted)}"))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check a store: every table read in full (in a separate process), and the spool listed."""
    from workbench.doctor import examine
    from workbench.store.store import default_db_path

    path = args.db or default_db_path()
    if path.startswith("ducklake:"):
        raise UsageError("doctor checks a local DuckDB file; a DuckLake's files are checked with DuckLake's "
                         "own tools (see docs/fleet.md)")
    report = examine(path)
    if args.json:
        emit_json(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        counts = ", ".join(f"{t} {n}" for t, n in report.tables.items())
        print(printable(f"{path}: {'healthy' if report.healthy else 'DAMAGED'}" + (f" ({counts})" if counts else "")))
        for problem in report.problems:
            print(printable(f"  problem: {problem}"))
        for note in report.notes:
            print(printable(f"  {note}"))
    return EXIT_OK if report.healthy else EXIT_FAILED


def cmd_maintain(args: argparse.Namespace) -> int:
    """Compact a store: DuckDB's CHECKPOINT for a file; for a DuckLake, flush inlined rows, merge
    small files, expire old snapshots and delete the files nothing refers to any more."""
    from workbench.store.maintenance import maintain

    with open_store(args, if_missing="refuse") as store:
        done = maintain(store, keep=args.keep)
    for line in done:
        print(printable(line))
    return EXIT_OK
