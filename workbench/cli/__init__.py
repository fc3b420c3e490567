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
from collections.abc import Sequence

from workbench.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line
from workbench.cli.parser import build_parser
from workbench.errors import WorkbenchError

__all__ = ["build_parser", "main"]


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


class _OneLine(logging.Handler):
    """Warnings from workbench's modules as one scrubbed ``workbench: warning:`` line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            error_line(f"workbench: {record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # never let a warning take the command down
            pass


def _setup_logging() -> None:
    logger = logging.getLogger("workbench")
    if not any(isinstance(h, _OneLine) for h in logger.handlers):
        logger.addHandler(_OneLine(logging.WARNING))
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (what the ``workbench`` console script calls, inside its crash guard)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["ui", *(argv or [])])
    _setup_logging()
    if args.command in ("run", "demo", "fork", "resume"):
        _prewarm_litellm()
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        error_line(f"workbench: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        error_line("workbench: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except RecursionError:
        error_line("workbench: error: a value is nested too deeply to handle (over a few hundred levels)")
        return EXIT_USAGE
    except Exception as exc:  # a bug in workbench: still one line, with a way to see more
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        error_line(f"workbench: internal error: {type(exc).__name__}: {exc} (set WORKBENCH_DEBUG=1 for details)")
        return EXIT_FAILED
