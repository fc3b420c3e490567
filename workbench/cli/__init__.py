"""The headless command line: ``workbench run|resume|runs|show|sql|replay|fork|...``.

A stable contract (docs/cli.md): exit 0 = completed, 3 = waiting for input or paused,
1 = the run failed, 2 = bad usage or input (malformed JSON, unknown graph or run, invalid graph,
locked or corrupt database), 4 = a replay diverged. Errors are one line on stderr, never a
traceback, with known secrets scrubbed.

* :mod:`~workbench.cli.parser` — every command and option
* :mod:`~workbench.cli.running` — run, resume, fork, demo
* :mod:`~workbench.cli.reading` — runs, show, sql, diff, graph, graphs
* :mod:`~workbench.cli.replaying` — replay, test, export, import
* :mod:`~workbench.cli.maintenance` — doctor, maintain, ui
* :mod:`~workbench.cli.common` — exit codes, arguments, printing
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from workbench.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line, machine_output
from workbench.cli.output import complete_writes
from workbench.cli.parser import build_parser
from workbench.errors import WorkbenchError
from workbench.printable import printable

__all__ = ["build_parser", "main"]

# Commands that may call a model: they start importing litellm at once. No other command
# imports it (tests/test_startup.py).
_MODEL_COMMANDS = ("run", "demo", "fork", "resume")


def _prewarm_litellm() -> None:
    """Import litellm in the background while the graph loads and the store opens.

    The import takes seconds; overlapping it with start-up keeps the first model call from
    waiting for all of it. (A step never counts that wait in its duration either way.)
    ``WORKBENCH_PREWARM=0`` turns it off: for graphs that never call a model it is a second or
    two of CPU spent for nothing.
    """
    import threading

    def warm() -> None:
        try:
            # Imported here, not before the thread starts: the client module pulls in the
            # store (DuckDB), which the main thread is about to import anyway.
            from workbench.llm.client import litellm_module

            litellm_module()
        except Exception:  # the first real call reports any problem properly
            pass

    threading.Thread(target=warm, name="workbench-litellm-import", daemon=True).start()


class _Warnings(logging.Handler):
    """Warnings from workbench's modules, kept until the command ends: printed then as one
    scrubbed ``workbench: warning:`` line each — or dropped when the command fails, whose one
    error line says what went wrong (a store that cannot be written warns on closing too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        # A record marked ``now`` (a wait the user should know about while it lasts) is printed
        # at once, unless the workbench owns the terminal.
        self.immediate = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"workbench: {record.levelname.lower()}: {record.getMessage()}"
            if getattr(record, "now", False):
                if self.immediate:
                    error_line(line)
                return
            self.lines.append(line)
        except Exception:  # never let a warning take the command down
            pass

    def flush_lines(self, print_them: bool) -> None:
        lines, self.lines = self.lines, []
        if print_them:
            for line in lines:
                error_line(line)


def _setup_logging() -> _Warnings:
    logger = logging.getLogger("workbench")
    for h in list(logger.handlers):
        if isinstance(h, _Warnings):
            logger.removeHandler(h)
    handler = _Warnings()
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def _interrupted(recording: list[str]) -> int:
    """Ctrl-C: one line (naming the run it left interrupted, if one was being recorded), 130."""
    if recording:
        error_line(f"workbench: interrupted: run {recording[0]} is marked interrupted; continue it with: "
                   f"workbench resume {recording[0]}")
    else:
        error_line("workbench: interrupted")
    return 130


def _is_query_interrupt(exc: BaseException) -> bool:
    """DuckDB turns a Ctrl-C during a query into its own exception, not KeyboardInterrupt."""
    return type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (what the ``workbench`` console script calls, inside its crash guard)."""
    complete_writes()
    from workbench.cli.common import RECORDING

    RECORDING.clear()  # (one process may run several commands: the test suite does)
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in _MODEL_COMMANDS and os.environ.get("WORKBENCH_PREWARM", "1") != "0":
        _prewarm_litellm()  # first thing: the import overlaps parsing, loading and opening
    from workbench.codec import SETTING_ERROR

    if SETTING_ERROR:  # before anything, --help included: every command stores or reads values
        error_line(f"workbench: error: {SETTING_ERROR}")
        return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["ui", *(argv or [])])
    warnings = _setup_logging()
    warnings.immediate = args.command != "ui"
    failed = True
    try:
        machine = bool(getattr(args, "json", False)) or getattr(args, "format", None) in ("json", "csv")
        from workbench.runtime.option_names import as_flags

        with machine_output(machine), as_flags():  # errors name --at, --set... (not at_step=)
            code = int(args.func(args))
        sys.stdout.flush()  # (a failure to write the end of the output is the command's failure)
        failed = False
        return code
    except WorkbenchError as exc:
        error_line(f"workbench: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted(RECORDING)
    except BrokenPipeError:
        return EXIT_OK
    except RecursionError:
        error_line("workbench: error: a value is nested too deeply to handle (over a few hundred levels)")
        return EXIT_USAGE
    except Exception as exc:  # a bug in workbench: still one line, with a way to see more
        if _is_query_interrupt(exc):  # Ctrl-C while DuckDB ran a query: it raises its own error
            return _interrupted(RECORDING)
        if os.environ.get("WORKBENCH_DEBUG"):
            # Printed here, not re-raised: the console script's crash guard ends the process with
            # os._exit, which would drop an exception still on its way out.
            import traceback

            from workbench.redact import scrub

            print(printable(scrub(traceback.format_exc())).rstrip("\n"), file=sys.stderr)
            return EXIT_FAILED
        error_line(f"workbench: internal error: {type(exc).__name__}: {exc} (set WORKBENCH_DEBUG=1 for details)")
        return EXIT_FAILED
    finally:
        warnings.flush_lines(print_them=not failed)
