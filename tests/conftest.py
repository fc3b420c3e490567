"""Shared fixtures: an isolated trace store and an isolated copy of the demo project."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.store import TraceStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's model, database or graphs settings."""
    for var in ("WORKBENCH_MODEL", "WORKBENCH_FALLBACKS", "WORKBENCH_DB", "WORKBENCH_GRAPHS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraceStore]:
    """A fresh trace store in a temporary directory, closed after the test."""
    st = TraceStore(str(tmp_path / "trace.duckdb"))
    yield st
    st.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo project (graphs/) as the working directory."""
    proj = tmp_path / "project"
    shutil.copytree(REPO / "graphs", proj / "graphs", ignore=shutil.ignore_patterns("__pycache__"))
    (proj / "traces").mkdir()
    monkeypatch.chdir(proj)
    return proj


def workbench_cmd() -> list[str]:
    """The command that runs the real CLI in a subprocess (this interpreter's venv)."""
    exe = Path(sys.executable).parent / "workbench"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env
