"""The command line's parser (docs/cli.md documents every option)."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.cli.maintenance import cmd_doctor, cmd_maintain, cmd_rm, cmd_ui
from workbench.cli.reading import TABLE_ROWS, cmd_diff, cmd_graph, cmd_graphs, cmd_runs, cmd_show, cmd_sql
from workbench.cli.replaying import cmd_export, cmd_import, cmd_replay, cmd_test
from workbench.cli.running import cmd_demo, cmd_fork, cmd_resume, cmd_run


def seconds(text: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not 0 or more seconds")
    return value


def _at_least(text: str, least: int) -> int:
    """A whole number of ``least`` or more (argparse turns the error into a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} is not {least} or more")
    return value


def positive(text: str) -> int:
    """A whole number of 1 or more."""
    return _at_least(text, 1)


def whole(text: str) -> int:
    """A whole number of 0 or more."""
    return _at_least(text, 0)


DISTRIBUTION = "agent-workbench"
"""The package's name on PyPI (pyproject.toml), whose installed version ``--version`` prints."""


def installed_version() -> str:
    """The installed version of workbench, or a note that its metadata is missing (the code run
    from a checkout that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "(not installed: no package metadata for agent-workbench)"


class _Version(argparse.Action):
    """``--version``: looks the version up only when asked (importlib.metadata costs start-up time)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench",
        description="Design, run, debug and replay AI agent workflow graphs. Runs are recorded in DuckDB.",
        epilog="Exit codes: 0 completed, 3 waiting or paused, 1 run failed, 2 bad usage or input, "
               "4 replay diverged.",
    )
    p.add_argument("--version", action=_Version, help="print the installed version of workbench and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def graph_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--graph", metavar="FILE[:VAR]", default=None,
                        help="the run's graph code, for a graph outside ./graphs (it must define the graph "
                             "the run recorded); by default the graph is found by name in ./graphs")

    def db_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", default=None, metavar="PATH|ducklake:...",
                        help="trace store: a DuckDB file, or a shared DuckLake location (default $WORKBENCH_DB, "
                             "else [store] location in workbench.toml, else traces/workbench.duckdb)")

    def limit_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="a new step limit (continue a run that stopped at its limit)")

    sp = sub.add_parser("run", help="start a run of a graph")
    sp.add_argument("graph", metavar="GRAPH", help="a graph name in ./graphs or path/to/file.py[:variable]")
    sp.add_argument("--input", metavar="JSON", help="the run's input (a JSON object; @file or - for stdin)")
    db_opt(sp)
    sp.add_argument("--break-before", action="append", metavar="NODE", help="pause before NODE runs")
    sp.add_argument("--break-after", action="append", metavar="NODE", help="pause after NODE runs")
    sp.add_argument("--continue", dest="continue_run", metavar="RUN",
                    help="the next turn of RUN's conversation: a new run starting from RUN's last state merged "
                         "with --input (an id, a unique prefix, or 'last': the newest run of GRAPH); a run that "
                         "had not completed is superseded")
    sp.add_argument("--max-steps", type=int, default=None, metavar="N",
                    help="the run's step limit (default: the graph's max_steps)")
    sp.add_argument("--json", action="store_true",
                    help="print one JSON object: run_id, status, state, interrupt, error")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("resume", help="continue a waiting, paused, failed or crashed run")
    sp.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix, or 'last'")
    sp.add_argument("--input", metavar="JSON",
                    help="the answer to the oldest open interrupt, or to --interrupt ID (any JSON value)")
    sp.add_argument("--interrupt", metavar="ID", help="answer this open interrupt (ids: 'workbench show RUN')")
    sp.add_argument("--answers", metavar="JSON",
                    help='answer several open interrupts at once: {"ID": answer, ...} (or @file)')
    sp.add_argument("--close", action="append", metavar="ID",
                    help="close this open interrupt without an answer: its task is dropped (repeatable)")
    limit_opt(sp)
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_resume)

    sp = sub.add_parser("runs", help="list recorded runs")
    db_opt(sp)
    sp.add_argument("--limit", type=positive, default=50)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("show", help="show a run's steps, model calls and interrupts")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--step", metavar="N", help="one step in detail: state diff, numbered model calls; "
                    "STEP/NODE/STEP for a step inside a subgraph, e.g. 3/review/2 (as fork --at takes it)")
    sp.add_argument("-v", "--verbose", action="store_true", help="with --step: include tracebacks")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("sql", help="run a read-only SQL query over the trace store")
    sp.add_argument("query", metavar="QUERY")
    db_opt(sp)
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sp.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                    help="stop the query after SECONDS (default 30; 0: no limit): while it runs, recording waits")
    sp.add_argument("--max-rows", type=whole, default=TABLE_ROWS, metavar="N",
                    help=f"the table shows the first N rows and counts the rest (default {TABLE_ROWS:,}; 0: all); "
                         "csv and json always write every row")
    sp.set_defaults(func=cmd_sql)

    sp = sub.add_parser("replay", help="re-execute a run with today's code, serving every recorded answer")
    sp.add_argument("run_id", metavar="RUN_ID")
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser("fork", help="fork a run at a step, with edits, and run the fork live")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--at", metavar="STEP", help="re-run from this step (the fork shares steps before it); "
                    "STEP/NODE/STEP for a step inside a subgraph, e.g. 3/review/2")
    sp.add_argument("--from-failure", action="store_true", help="fork at the step where the run failed")
    sp.add_argument("--set", action="append", metavar="KEY=JSON", help="set a state key before the step runs")
    sp.add_argument("--set-file", metavar="PATH", help="a JSON object of state keys to set")
    sp.add_argument("--llm-response", action="append", metavar="N=TEXT",
                    help="replace the answer of model call N of that step (see 'workbench show RUN --step N')")
    sp.add_argument("--close", action="append", metavar="ID",
                    help="close interrupt ID, asked at that step, without an answer: the fork drops the task "
                         "that asked (repeatable)")
    limit_opt(sp)
    graph_opt(sp)
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_fork)

    sp = sub.add_parser("test", help="replay recorded runs as regression tests")
    sp.add_argument("run_ids", metavar="RUN_ID", nargs="*")
    sp.add_argument("--graph", metavar="NAME|FILE[:VAR]",
                    help="NAME: also every finished run of this graph in ./graphs (finished: completed, failed, "
                         "waiting, paused or superseded; not running or interrupted); FILE[:VAR]: the code of a "
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

    sp = sub.add_parser("graph", help="draw a graph: ASCII, layered (2-D) or Mermaid")
    sp.add_argument("graph", metavar="GRAPH")
    sp.add_argument("--format", choices=["ascii", "layered", "mermaid"], default="ascii",
                    help="ascii: boxes in flow order with their edges listed; layered: a 2-D drawing "
                         "(as the workbench's Graph tab); mermaid: Mermaid flowchart text")
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

    sp = sub.add_parser("doctor", help="check a trace store file: every table read, the spool listed")
    db_opt(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_doctor)

    sp = sub.add_parser("rm", help="delete runs from the trace store, for good")
    sp.add_argument("run_ids", metavar="RUN_ID", nargs="+", help="run ids, unique prefixes, or 'last'")
    sp.add_argument("--with-descendants", "--with-forks", dest="with_descendants", action="store_true",
                    help="also delete the runs' forks and continuations (refused without it when there are any)")
    db_opt(sp)
    sp.add_argument("--json", action="store_true", help="print one JSON object: deleted (the run ids)")
    sp.set_defaults(func=cmd_rm)

    sp = sub.add_parser("maintain", help="compact a trace store (checkpoint; for a DuckLake: flush inlined rows, "
                                         "merge small files, expire old snapshots)")
    db_opt(sp)
    sp.add_argument("--keep", default="1 day", metavar="INTERVAL",
                    help="keep DuckLake snapshots (time travel) this long (default '1 day')")
    sp.set_defaults(func=cmd_maintain)
    return p
