"""A production-style use of workbench without the terminal UI: a support-ticket worker.

Each invocation handles one request and exits, the way a queue worker, a cron job or a web
handler would. Runs are recorded in the service's own trace file (not the project's default
``traces/workbench.duckdb``), with ``fsync`` on so a recorded step survives a power cut too.

    # a new ticket: prints one JSON line; exit 0 = reply sent, 3 = waiting for a human, 1 = failed
    python examples/headless_service.py handle "I was charged twice, I want a refund of \\$400" --customer C-1002

    # what is waiting for a human (one JSON line per ticket)
    python examples/headless_service.py pending

    # later, from another process, maybe days later: a human answers and the run finishes
    python examples/headless_service.py answer RUN_ID "We have refunded the duplicate charge."

    # after a crash (kill -9, reboot): continue every run that was cut off mid-step
    python examples/headless_service.py recover

The trace file is ``$SUPPORT_TRACE_DB`` or ``service-traces/support.duckdb`` under the current
directory. It is an ordinary workbench trace store: ``workbench sql --db PATH ...``,
``workbench show --db PATH RUN_ID`` and the SQL views of docs/sql.md all work on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from workbench import Event, Runner, TraceStore, WorkbenchError
from workbench.errors import RunStateError, StoreError
from workbench.loader import load_graph

# The graph this service runs: the support demo that ships with the project. A real service
# would import its own graph module instead.
GRAPH_FILE = Path(__file__).resolve().parent.parent / "graphs" / "support.py"
DEFAULT_DB = os.path.join("service-traces", "support.duckdb")

EXIT_CODES = {"completed": 0, "waiting": 3, "paused": 3, "failed": 1, "running": 1}

log = logging.getLogger("support-service")


def log_event(event: Event) -> None:
    """Runner listener: one log line per finished node (goes to stderr, not stdout)."""
    if event.kind == "task_finished":
        log.info("run %s step %s %s %s in %.1f ms%s", event.run_id, event.step, event.node,
                 event.data["status"], event.data["duration_ms"],
                 f" ({event.data['error']})" if event.data.get("error") else "")
    elif event.kind == "task_retrying":
        log.warning("run %s step %s %s: retrying (attempt %s)", event.run_id, event.step, event.node,
                    event.data["attempt"])


def open_store() -> TraceStore:
    path = os.environ.get("SUPPORT_TRACE_DB") or DEFAULT_DB
    # Any number of workers (and a workbench watching them) may use the same trace store at once.
    return TraceStore(path, fsync=True)


def result_line(result: Any) -> dict[str, Any]:
    """The part of a run's result a caller of this service needs."""
    state = result.state
    return {
        "run_id": result.run_id,
        "status": result.status,
        "reply": state.get("reply") or None,
        "handled_by": state.get("handled_by") or None,
        "waiting_for": result.interrupt,
        "error": result.error,
    }


def cmd_handle(args: argparse.Namespace) -> int:
    graph = load_graph(str(GRAPH_FILE))
    ticket = {"message": args.message}
    if args.customer:
        ticket["customer_id"] = args.customer
    with open_store() as store:
        result = Runner(graph, store, listener=log_event).run(ticket)
    print(json.dumps(result_line(result), ensure_ascii=False))
    return EXIT_CODES[result.status]


def cmd_answer(args: argparse.Namespace) -> int:
    graph = load_graph(str(GRAPH_FILE))
    with open_store() as store:
        run_id = store.resolve_run_id(args.run_id)  # accepts a unique prefix too
        # The support graph's handoff node takes a string reply ('approve' sends the draft).
        result = Runner(graph, store, listener=log_event).resume(run_id, args.reply)
    print(json.dumps(result_line(result), ensure_ascii=False))
    return EXIT_CODES[result.status]


def cmd_pending(args: argparse.Namespace) -> int:
    with open_store() as store:
        # By root_run_id: a question asked inside a subgraph is a row of the subgraph's run
        # (ROOT/2.0.0), which is not in `runs`; the run to answer is the root.
        rows = store.query_dicts(
            """
            SELECT r.run_id, i.created_at, i.payload ->> 'category' AS category,
                   i.payload ->> 'message' AS message
            FROM interrupts i JOIN runs r ON r.run_id = i.root_run_id
            WHERE r.status = 'waiting' AND i.resumed_at IS NULL
            ORDER BY i.created_at
            """
        )
    for row in rows:
        print(json.dumps(row, default=str, ensure_ascii=False))
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    graph = load_graph(str(GRAPH_FILE))
    worst = 0
    with open_store() as store:
        # Other workers may be recording right now; runs whose worker died are marked
        # interrupted when the store loads what that worker left (opening does it; sweep() again
        # catches one that died a moment ago). Resuming continues from the last recorded step.
        store.sweep()
        stuck = [r[0] for r in store.query(
            "SELECT run_id FROM runs WHERE status = 'running' AND starts_with(error, 'interrupted') "
            "AND graph = ? ORDER BY started_at", [graph.name]
        )]
        for run_id in stuck:
            try:
                result = Runner(graph, store, listener=log_event).resume(run_id)
            except RunStateError as exc:  # another worker recovered it first: exactly one does
                log.info("%s", exc)
                continue
            print(json.dumps(result_line(result), ensure_ascii=False))
            worst = max(worst, EXIT_CODES[result.status])
    return worst


def main(argv: list[str] | None = None) -> int:
    # Log to stderr through this service's own logger only; stdout carries the JSON results.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    parser = argparse.ArgumentParser(description="Headless support-ticket worker built on workbench.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("handle", help="handle a new ticket")
    p.add_argument("message")
    p.add_argument("--customer", help="customer id, e.g. C-1001")
    p.set_defaults(func=cmd_handle)
    p = sub.add_parser("answer", help="give a human's reply to a waiting ticket")
    p.add_argument("run_id")
    p.add_argument("reply")
    p.set_defaults(func=cmd_answer)
    sub.add_parser("pending", help="list tickets waiting for a human").set_defaults(func=cmd_pending)
    sub.add_parser("recover", help="resume runs cut off by a crash").set_defaults(func=cmd_recover)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StoreError as exc:
        # The store cannot be opened (a foreign program holds the file, it is damaged, or a
        # shared store is unreachable): nothing ran. Retry later.
        log.error("%s", exc)
        return 2
    except WorkbenchError as exc:  # unknown run id, run not waiting, invalid input, ...
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
