"""Run a project's own pytest suite inside this test process (what ``python -m pytest`` in the
project directory would do, without a new interpreter importing pytest, its plugins and
workbench again: that start-up was most of what those tests cost).

The inner session is a fresh ``pytest.main``: it reads its own command line, loads the plugins
registered by entry point (``pytest11``, as a project's ``pytest`` does) and reports on its own
terminal writer, which is pointed at a buffer. What it imports from the project (its test
modules) is removed again afterwards, so that the next inner run, or the next test, imports
the project's files as they are then.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from collector import freeze_what_is_loaded


def run_pytest(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pytest ARGS`` in ``cwd`` with the environment ``env`` (default: this process's), as a
    subprocess would report it: exit code, stdout (the report), stderr."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    out, err = io.StringIO(), io.StringIO()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        os.environ.pop("PYTEST_ADDOPTS", None)  # the outer run's options are not the project's
        os.environ.pop("PYTEST_XDIST_WORKER", None)
        os.chdir(cwd)
        # Keep the outer process's objects out of the inner session's clean-up (pytest runs five
        # full collections there, looking for unraisable exceptions: a third of an inner run).
        freeze_what_is_loaded()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # The outer session's basetemp must not be touched by the inner one's clean-up.
            # langsmith's plugin comes with the benchmarks' extra, not with a project's pytest:
            # off, as in this project's own addopts (each inner run rewrote its 200-odd modules).
            code = pytest.main([*args, "-p", "no:cacheprovider", "-p", "no:langsmith_plugin",
                                f"--basetemp={cwd / '.inner-basetemp'}"])
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        root = str(cwd)
        for name in set(sys.modules) - saved_modules:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(root):
                del sys.modules[name]
    return subprocess.CompletedProcess(["pytest", *args], int(code), out.getvalue(), err.getvalue())
