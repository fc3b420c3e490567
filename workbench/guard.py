"""The ``workbench`` command's crash guard: a damaged database must not kill the terminal.

DuckDB verifies block checksums, but some damage (flipped bytes inside a compressed segment)
makes it crash the process (SIGSEGV) instead of raising an error, and no Python code can catch
that. So the console command forks at start: the child runs the CLI as usual and tells the parent
which trace store it opened; if the child dies of a crash signal, the parent prints one line
naming the store and what to do, and exits 2 (the "corrupt database" code).

The parent does nothing else: the child owns the terminal, its exit code is passed through, and
it dies with the parent (``PR_SET_PDEATHSIG``), so ``kill -9`` of the command still kills it all.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
_note_fd = -1


def note_store(path: str) -> None:
    """Tell the guarding parent (if any) that this process opened the store at ``path``."""
    if _note_fd >= 0:
        try:
            os.write(_note_fd, f"{os.path.abspath(path)}\n".encode())
        except OSError:
            pass


def main() -> None:
    """Entry point of the ``workbench`` console script."""
    from workbench.cli import main as cli_main

    if os.environ.get("WORKBENCH_NO_GUARD") or not hasattr(os, "fork"):
        _exit(cli_main())
    import tempfile

    read_fd, write_fd = os.pipe()
    # Where the child was in Python when it crashed (faulthandler writes it there): DuckDB
    # crashing on a damaged file, or a graph's own code (ctypes, a C extension, os.abort()).
    crash_report = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the child: the real command
        os.close(read_fd)
        global _note_fd
        _note_fd = write_fd
        import faulthandler

        faulthandler.enable(file=crash_report.fileno(), all_threads=True)
        _die_with_parent()
        code = 1
        try:
            code = cli_main()
        except SystemExit as exc:  # argparse's --help and usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:  # printed as the interpreter would: _exit below would drop it
            import traceback

            traceback.print_exc()
        finally:
            _exit(code)
    os.close(write_fd)
    # _exit, not sys.exit: tearing down the modules this process imported (the CLI's, before
    # the fork) took a fifth of a second after every command, the workbench's quit included.
    _exit(_watch(pid, read_fd, crash_report))


def _exit(code: int) -> None:
    """Exit now that the command is done: run the exit handlers and flush the output, but skip
    tearing down every imported module — with litellm loaded that alone takes seconds."""
    import atexit

    try:
        run = getattr(atexit, "_run_exitfuncs", None)
        if run is not None:
            run()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # a broken pipe on flush: the exit code still stands
        pass
    os._exit(code)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the guard is best effort there
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(137)


def _terminal_sends_to_both() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _watch(pid: int, read_fd: int, crash_report: Any) -> int:
    """Wait for the child; turn a crash into one line. Returns the exit code to use."""
    forwarded = [signal.SIGTERM, signal.SIGHUP]
    if _terminal_sends_to_both():
        # ^C from the terminal reaches the child directly; passing it on would deliver it twice.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        forwarded.append(signal.SIGINT)
    for sig in forwarded:
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
    with os.fdopen(read_fd, "rb") as fh:
        stores = fh.read().decode(errors="replace").split()
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = signal.Signals(os.WTERMSIG(status))
    if sig in _CRASH_SIGNALS:
        crash_report.seek(0)
        site = code_site(crash_report.read().decode(errors="replace"))
        if site is not None:
            sys.stderr.write(
                f"workbench: error: the process crashed ({sig.name}) in {site}, not in the database: the trace "
                "store is not to blame; a run it was recording is marked interrupted and resumes from its last "
                "step once that code is fixed\n"
            )
            return 1
        where = f"trace store {stores[-1]}" if stores else "the trace store"
        sys.stderr.write(
            f"workbench: error: the database engine crashed ({sig.name}) while reading {where}; "
            f"the file is damaged: check it with 'workbench doctor{' --db ' + stores[-1] if stores else ''}', "
            "and move it aside to go on with a fresh one\n"
        )
        return 2
    # Killed from outside: end the same way, so whoever killed it sees the same status
    # (SIGKILL and SIGSTOP cannot be caught, so they need no reset: they act as they are).
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    return 128 + sig


def code_site(report: str) -> str | None:
    """From a faulthandler report, where the crashing thread was: ``"FILE:LINE (FUNCTION)"`` of
    its innermost frame outside the standard library and installed packages, when that is not
    workbench's database code; None when it is (DuckDB was running), or no Python frame shows."""
    import re
    import sysconfig

    lines = report.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Current thread")), None)
    if start is None:
        return None
    libraries = {os.path.realpath(p) for p in (sysconfig.get_paths().get(k) for k in ("stdlib", "purelib",
                                                                                     "platlib")) if p}
    ours = os.path.dirname(os.path.realpath(__file__))
    for line in lines[start + 1:]:
        frame = re.match(r'\s+File "(.*)", line (\d+) in (.*)', line)
        if frame is None:
            break
        path = os.path.realpath(frame[1])
        if path.startswith(ours + os.sep):
            # The store's and the SQL console's frames are where DuckDB runs; a crash under any
            # other of workbench's own frames is not the file's doing either.
            inside = os.path.relpath(path, ours)
            if inside.startswith("store" + os.sep) or inside in ("sqlquery.py", "doctor.py"):
                return None
            return f"workbench/{inside}:{frame[2]} ({frame[3]})"
        if any(path.startswith(lib + os.sep) for lib in libraries):
            continue
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
        return f"{shown}:{frame[2]} ({frame[3]})"
    return None


def _forward(pid: int, sig: int) -> None:
    """Pass a signal on to the child; one that has just exited (a signal arriving as the
    command finishes) is no error: its exit status is on its way."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
