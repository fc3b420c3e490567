"""What every command shares: exit codes, JSON arguments, opening the store, printing."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from workbench.errors import WorkbenchError
from workbench.redact import scrub

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING, EXIT_DIVERGED = 0, 1, 2, 3, 4
STATUS_EXIT = {"completed": EXIT_OK, "waiting": EXIT_WAITING, "paused": EXIT_WAITING,
               "failed": EXIT_FAILED, "running": EXIT_FAILED}


class UsageError(WorkbenchError):
    """Bad command-line input (exit 2)."""


def parse_json(text: str, what: str) -> Any:
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"{what}: {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    elif text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply (over a few hundred levels)") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if what == "--input":
            hint = "; quote it, e.g. --input '{\"message\": \"hi\"}'"
        elif what.startswith("--set"):
            hint = "; strings need JSON quotes, e.g. --set category='\"refund\"'"
        where = f"line {exc.lineno} column {exc.colno}"
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at {where}){hint}") from None


def missing_store(db: str | None) -> str | None:
    """The path of the local store ``db`` names (``--db``, else the configured default) if
    there is no database there: no database file, no write-ahead log. A spool left beside a
    path whose file was moved or deleted does not make a store (a reading command would have
    created a new file there and loaded the spool's journals into it). A DuckLake location is
    never missing here (its catalog is the one to ask)."""
    from workbench.store.lake import is_lake_location
    from workbench.store.store import default_db_path

    path = db or default_db_path()
    if path == ":memory:" or is_lake_location(path):
        return None
    if any(os.path.lexists(path + suffix) for suffix in ("", ".wal")):
        return None
    return path


def _left_journals(path: str) -> str:
    """A note on journals left in ``path``'s spool with no database beside them, or ''."""
    journals = os.path.join(path + ".spool", "journals")
    try:
        left = [n for n in os.listdir(journals) if not n.startswith(".")]
    except OSError:
        return ""
    if not left:
        return ""
    return (f"; its spool {path}.spool holds {len(left)} journal(s) of records not in any store (was the file "
            "moved? move it back, or a command that records there loads them)")


def open_store(args: argparse.Namespace, *, if_missing: str = "create") -> Any:
    """The trace store the command works on. ``if_missing`` says what a command does when
    nothing is recorded at ``--db`` yet (a typo in the path, most often):

    * ``create``: make the store (``run``, ``import``, the workbench: they record);
    * ``empty``: read an empty store and say so on stderr, creating nothing (``runs``, ``sql``:
      their output for no runs is the same as for an empty store);
    * ``refuse``: one-line error, exit 2 (commands that name a run: there is none to find).
    """
    from workbench.project_config import db_origin, load
    from workbench.store import TraceStore

    load()  # a broken workbench.toml stops every command that opens a store, --db or not
    if if_missing != "create":
        path = missing_store(args.db)
        if path is not None:
            # The path came from --db, WORKBENCH_DB, [store] location in workbench.toml, or the default.
            where = "check --db" if args.db else f"check --db or {db_origin() or 'WORKBENCH_DB'}"
            left = _left_journals(path)
            if if_missing == "refuse":
                raise UsageError(f"no trace store at {path}: nothing is recorded there ({where}){left}")
            error_line(f"workbench: note: no trace store at {path} yet, nothing is recorded there ({where}){left}")
            return TraceStore(":memory:")
    return TraceStore(args.db)


_OUTPUT: list[Any] = []


@contextmanager
def machine_output(on: bool) -> Iterator[None]:
    """While a command prints JSON or CSV (``on``), what graph code prints goes to stderr: a
    ``print()`` in a graph module or node must not break the one JSON document on stdout that
    scripts parse. The command itself writes through :func:`emit`."""
    if not on:
        yield
        return
    _OUTPUT.append(sys.stdout)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _OUTPUT.pop()


def emit(text: str, end: str = "\n") -> None:
    """Write the command's own output to its stdout (even while graph code's goes to stderr)."""
    out = _OUTPUT[-1] if _OUTPUT else sys.stdout
    out.write(text + end)


def emit_json(text: str, end: str = "\n") -> None:
    """Write JSON text as :func:`emit` does, with the characters a terminal would act on that
    ``json.dumps`` leaves raw (C1 controls, bidi overrides) escaped (printable.json_safe)."""
    from workbench.printable import json_safe

    emit(json_safe(text), end)


@functools.cache
def _console_class() -> Any:
    from rich.console import Console
    from rich.segment import Segment

    from workbench.printable import has_control, printable

    class PrintableConsole(Console):
        """A console that shows control characters in what it prints instead of sending them
        to the terminal (workbench/printable.py): recorded text may hold escape sequences."""

        def render(self, renderable: Any, options: Any = None) -> Any:
            for segment in super().render(renderable, options):
                if segment.control is None and has_control(segment.text):
                    yield Segment(printable(segment.text), segment.style)
                else:
                    yield segment

        def on_broken_pipe(self) -> None:
            """The reader of the output went away (``| head``): what is printed from now on
            goes nowhere, and the command goes on. Rich's own raised ``SystemExit(1)``, which
            went past everything: a run being printed was left interrupted midway, exit 1."""
            self.quiet = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # no real stdout (a test's buffer): nothing to redirect
                pass

    return PrintableConsole


def make_console() -> Any:
    """The console commands print with. Markup is off: what is printed is mostly recorded text
    (inputs, errors, model answers, SQL results), and text such as ``[/INST]`` or ``[redacted]``
    must print as it is, never be read as a style tag (or fail as a bad one). A line that styles
    a word says ``markup=True`` and escapes what it interpolates (:func:`esc`)."""
    # Piped output (scripts, CI logs) is not cut to 80 columns.
    return _console_class()(highlight=False, soft_wrap=True, markup=False, emoji=False,
                            width=None if sys.stdout.isatty() else 160)


def esc(value: Any) -> str:
    """``value`` as text that prints literally inside a line printed with ``markup=True``."""
    from rich.markup import escape

    return escape(str(value))


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_json(console: Any, value: Any) -> None:
    """Pretty-print a JSON-able value; a structure too deep to pretty-print is printed compact."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        console.print_json(text)
    except RecursionError:
        print(text)


def error_line(message: str) -> None:
    """One line on stderr, known secrets scrubbed."""
    from workbench.printable import printable

    text = printable(scrub(" ".join(str(message).split("\n"))))
    print(text, file=sys.stderr)


RECORDING: list[str] = []
"""The run this command is recording, once it has started (what Ctrl-C's message names)."""


def run_tracker(inner: Any = None) -> Any:
    """A run listener that notes the run being recorded in :data:`RECORDING`, then passes each
    event on to ``inner`` (the progress lines; None with --json)."""
    def listen(event: Any) -> None:
        if event.kind in ("run_started", "run_resumed") and "/" not in event.run_id:
            RECORDING[:] = [event.run_id]
        elif event.kind == "run_finished" and RECORDING and event.run_id == RECORDING[0]:
            RECORDING.clear()  # ended (completed, waiting, failed...): a Ctrl-C now interrupts no run
        if inner is not None:
            inner(event)

    return listen


def progress_listener(console: Any, changed: list[str] | None = None, at: int | None = None) -> Any:
    from workbench.context import Event

    def listen(event: Event) -> None:
        if event.kind == "run_started" and event.data.get("parent"):
            # Printed once the fork's edits were accepted and the fork recorded.
            note = f"; code changed since the parent ran: {', '.join(changed)}" if changed else ""
            moved = event.data.get("rerouted")
            if moved:
                note += (f"; from the edited state step {moved.get('where', at)} runs {', '.join(moved['to'])} "
                         f"(the parent ran {', '.join(moved['from'])})")
            console.print(f"fork {event.run_id} of {event.data['parent']}, running from step {at}{note}")
        if event.kind == "run_started" and event.data.get("continues"):
            console.print(f"run {event.run_id} continues the conversation of {event.data['continues']} "
                          f"from step {(event.step or 0) + 1}")
        if event.kind == "task_finished":
            status = event.data["status"]
            mark = {"completed": "[green]✓[/]", "failed": "[red]✗[/]", "interrupted": "[yellow]⏸[/]",
                    "cancelled": "[dim]⊘[/]", "closed": "[dim]⊘[/]"}.get(status, "·")
            attempt = f" (attempt {event.data['attempt']})" if event.data["attempt"] > 1 else ""
            err = f"  [red]{esc(short(event.data['error'], 70))}[/]" if event.data.get("error") else ""
            console.print(f"  step {event.step:>3}  {mark} {esc(f'{event.node:<18}')} "
                          f"{event.data['duration_ms']:8.1f} ms{attempt}{err}", markup=True)

    return listen


def graph_option(ref: str | None) -> str:
    """`` --graph FILE`` for the hints printed after a run of a graph outside the graphs directory
    (a later resume must name the file again: a trace never chooses which file is imported)."""
    from workbench.loader import is_path_ref

    return f" --graph {ref}" if ref and is_path_ref(ref) else ""


def report(args: argparse.Namespace, result: Any, graph_ref: str | None = None, runner: Any = None) -> int:
    """Print a run's outcome (``--json``: one object) and return the command's exit code.
    ``runner``: the runner it came from, whose progress display may have failed on the way."""
    failed = getattr(runner, "listener_error", None)
    if failed is not None:
        error_line(f"workbench: the progress display stopped ({type(failed).__name__}: {failed}); "
                   "the run itself was recorded as usual")
    if args.json:
        emit_json(json.dumps(result.to_json(), ensure_ascii=False, default=str))
        return STATUS_EXIT.get(result.status, EXIT_FAILED)
    console = make_console()
    rid = result.run_id
    if result.status == "completed":
        console.print(f"[green]run {rid} completed[/] after step {result.step}", markup=True)
        print_json(console, result.to_json()["state"])
    elif result.status == "waiting":
        console.print(f"[yellow]run {rid} is waiting for input[/] at step {result.step}"
                      + (f" (interrupt {esc(result.interrupt_id)}):" if result.interrupt_id else ":"), markup=True)
        print_json(console, result.to_json()["interrupt"])
        for other in result.interrupts[1:]:
            console.print(f"also open: interrupt {other['id']} at {other['node']}: {short(other['payload'], 60)}")
        console.print(f"answer it with: workbench resume {rid}{graph_option(graph_ref)} --input 'JSON'")
        if len(result.interrupts) > 1:
            console.print("or choose: --interrupt ID --input 'JSON', --answers '{\"ID\": JSON, ...}', --close ID")
    elif result.status == "paused":
        p = result.paused or {}
        where = f"{p.get('when')} {p.get('node')}" if p.get("node") else "on the break condition"
        console.print(f"[yellow]run {rid} paused[/] {esc(where)} (step {result.step}); "
                      f"continue with: workbench resume {rid}{esc(graph_option(graph_ref))}", markup=True)
    else:
        error_line(f"workbench: run {rid} failed: {result.error}")
    return STATUS_EXIT.get(result.status, EXIT_FAILED)


def graph_for(store: Any, run_id: str, ref: str | None = None) -> Any:
    """The graph of a recorded run: by its recorded name in the graphs directory, or from the
    file named with --graph (never from the path the trace recorded; see loader.load_for_run)."""
    from workbench.loader import load_for_run

    rec = store.get_run(run_id)
    if rec.get("caller_run_id"):
        # A subgraph's run is resumed, forked and replayed through the run it belongs to.
        root, node = rec["root_run_id"], rec["path"].split("/")[-1]
        raise UsageError(f"run {run_id} is subgraph {rec['path']!r} of run {root}; use that run (resume it, or "
                         f"fork that run at STEP/{node}/INNER_STEP)")
    graph = load_for_run(rec["graph"], rec["graph_file"], ref)
    recorded = rec.get("graph_file")
    if ref is None and recorded and os.path.basename(recorded) != os.path.basename(graph.file):
        # Found by name, in another file than the one the run was recorded from (two files define
        # the name): a replay's "diverged" would otherwise be the files' difference, unexplained.
        from workbench.graph import display_path

        error_line(f"workbench: note: run {run_id} was recorded from {recorded}; this uses "
                   f"{display_path(graph.file)}, which defines graph {rec['graph']!r} too (--graph {recorded} "
                   "uses the recorded file)")
    return graph
