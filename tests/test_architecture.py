"""Architecture rules: the core never imports Textual, litellm is imported lazily, no pickle."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workbench"
# Every module of the package but the TUI (and __main__, which runs the CLI when imported).
CORE = sorted(
    ".".join(("workbench", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if "tui" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
)


def _modules_after(code: str, cwd: Path = REPO) -> set[str]:
    """Run ``code`` in a fresh interpreter and return the names in sys.modules afterwards."""
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    res = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=cli_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_core_does_not_import_textual() -> None:
    assert len(CORE) > 30 and "workbench.store.journal" in CORE and "workbench.runtime.planner" in CORE
    mods = _modules_after("\n".join(f"import {m}" for m in CORE))
    assert set(CORE) <= mods
    assert not [m for m in mods if m == "textual" or m.startswith("textual.")]
    assert not [m for m in mods if m.startswith("workbench.tui")]


def test_import_workbench_does_not_import_litellm() -> None:
    mods = _modules_after("import workbench")
    assert "litellm" not in mods


def test_core_imports_do_not_import_litellm() -> None:
    mods = _modules_after("\n".join(f"import {m}" for m in CORE))
    assert "litellm" not in mods


def test_graph_command_does_not_import_litellm(tmp_path: Path) -> None:
    """Drawing the support demo (which makes model calls when run) loads no litellm."""
    import shutil

    shutil.copytree(REPO / "graphs", tmp_path / "graphs")
    code = ("import contextlib, io\nfrom workbench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    rc = main(['graph', 'support'])\n"
            "assert rc == 0 and 'classify' in out.getvalue(), (rc, out.getvalue())\n")
    mods = _modules_after(code, cwd=tmp_path)
    assert "litellm" not in mods
    assert not [m for m in mods if m == "textual" or m.startswith("textual.")]


PICKLE_LIKE = re.compile(r"^\s*(?:import|from)\s+(?:c?pickle|_pickle|dill|cloudpickle|shelve|marshal|joblib)\b",
                         re.MULTILINE)


def test_no_pickle_in_package_source() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    offenders = [str(f.relative_to(REPO)) for f in files if PICKLE_LIKE.search(f.read_text(encoding="utf-8"))]
    assert offenders == []
    # Nor a dynamic import of it.
    dynamic = [str(f.relative_to(REPO)) for f in files
               if re.search(r"""import_module\(\s*["'](?:c?pickle|dill|cloudpickle|shelve|marshal)""",
                            f.read_text(encoding="utf-8"))]
    assert dynamic == []


def test_the_console_command_runs_inside_the_crash_guard() -> None:
    """A damaged store can crash DuckDB (SIGSEGV): the installed command must be the guard."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'workbench = "workbench.guard:main"' in text
