"""End to end: the real `workbench` command in a real terminal (tmux), driven by keys.

Runs the support demo to its human-input prompt, answers it, sees the run complete, then opens
the SQL console and queries the run — reading the screen with `tmux capture-pane`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, cli_env, workbench_cmd

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it)")


class Terminal:
    """A tmux session running one command, with helpers to type and to read the screen."""

    def __init__(self, name: str, cwd: Path, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.cwd = cwd
        self.env = env
        script = " ".join(_quote(c) for c in command)
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "45", "-c", str(cwd), script],
            check=True, env=env,
        )

    def keys(self, *keys: str, literal: bool = False) -> None:
        args = ["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys]
        subprocess.run(args, check=True, env=self.env)

    def type(self, text: str) -> None:
        """Type text and wait until it shows: a control key sent in the same burst as typed
        text would reach the program as part of it, as a paste does."""
        self.keys(text, literal=True)
        self.wait_for(text[-30:])

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                             env=self.env)
        return out.stdout

    def wait_for(self, text: str, polls: int = 150) -> str:
        """Poll the screen until ``text`` shows (observation, not a timed assertion)."""
        screen = ""
        for _ in range(polls):
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the screen; last screen:\n{screen}")

    def wait_gone(self, polls: int = 100) -> None:
        """Poll until the program has exited (its tmux session ends with it)."""
        for _ in range(polls):
            alive = subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True, env=self.env)
            if alive.returncode != 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"the program did not exit; last screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, env=self.env)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    project = tmp_path / "project"
    shutil.copytree(REPO / "graphs", project / "graphs", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "traces").mkdir()
    env = cli_env(TERM="xterm-256color")
    env["TMUX_TMPDIR"] = str(tmp_path)  # a private tmux server for this test
    term = Terminal(f"wb-{uuid.uuid4().hex[:8]}", project, workbench_cmd(), env)
    try:
        yield term
    finally:
        term.close()


def test_support_demo_in_a_real_terminal(terminal: Terminal) -> None:
    terminal.wait_for("1 Graph")
    terminal.wait_for("support")  # the graphs loaded
    # Pick the support graph, open the run form, type an escalation and run it.
    terminal.keys("]")  # the next graph: support (graphs are listed by name)
    terminal.wait_for("support — classify")
    terminal.keys("r")
    terminal.wait_for("Run support")
    terminal.type("This is unacceptable, I want to speak to a manager")
    terminal.keys("Enter")
    # The run stops at the human hand-off and the answer dialog opens.
    screen = terminal.wait_for("is waiting for you at handoff")
    assert "escalation" in screen
    terminal.type("A manager will call you within the hour.")
    terminal.keys("Enter")
    terminal.wait_for("run completed")
    # The SQL console: the run's steps, from the store the run was recorded in.
    terminal.keys("5")
    terminal.wait_for("Saved queries")
    terminal.keys("C-n")
    terminal.type("SELECT node, status FROM steps WHERE node = 'handoff' ORDER BY status")
    terminal.keys("C-r")
    screen = terminal.wait_for("row(s) in")
    assert "2 row(s)" in screen  # interrupted, then completed after the answer
    assert "completed" in screen and "interrupted" in screen
    terminal.keys("C-q")
    terminal.wait_gone()
    # The run is in the trace store, as the CLI sees it once the workbench has closed.
    out = subprocess.run(
        [*workbench_cmd(), "sql", "SELECT graph, status FROM runs", "--format", "csv"],
        cwd=terminal.cwd, capture_output=True, text=True, env=terminal.env, check=True,
    ).stdout
    assert out.splitlines() == ["graph,status", "support,completed"]
