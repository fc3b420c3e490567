"""End to end: the real ``workbench`` command in a real terminal (tmux), driven by keys.

On a copy of the demo project: run the support graph with an escalation message to its
human-input prompt, answer it, see the run complete, then open the SQL console and query the run;
and the debugging loop: a breakpoint, a fork with an edited model answer, the fork compared with
its parent and the full diff opened. The screen is read with ``tmux capture-pane``; each wait polls
it a bounded number of times.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import REPO

WIDTH, HEIGHT = 160, 45
POLL_S = 0.25
# 120 s: the first model call imports litellm, which takes seconds on a small machine, and the test
# suite's other xdist worker shares its cores. A passing wait returns at its first match.
MAX_POLLS = 480

# The two terminals take turns (one xdist worker): each is a whole workbench and its renders.
pytestmark = pytest.mark.xdist_group("tmux")


# The tmux server is started with the terminal-resize signal blocked, and hands that mask on to
# every pane: as under ``perf record``, which blocks it. The workbench must unblock it itself
# (tui/lifecycle.py), or the split in test_a_run_from_another_terminal_appears_live shrinks its
# pane without it noticing, and it keeps drawing at the old height.
BLOCKING_RESIZES = [sys.executable, "-c", "import os, signal, sys; "
                    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH}); os.execvp(sys.argv[1], sys.argv[1:])"]


def _workbench() -> str:
    exe = Path(sys.executable).parent / "workbench"
    if not exe.exists():
        pytest.skip(f"the workbench console script is not installed next to {sys.executable}")
    return str(exe)


class Terminal:
    """One tmux session on a private server socket (so nothing else on the machine is touched)."""

    def __init__(self, socket: str, session: str) -> None:
        self.socket, self.session = socket, session

    def tmux(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=check)
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", f"{self.session}:0.0", check=False)

    def keys(self, *keys: str) -> None:
        """tmux key names: Enter, Escape, Down, C-r, ... (to the workbench's pane)"""
        self.tmux("send-keys", "-t", f"{self.session}:0.0", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", f"{self.session}:0.0", "-l", text)

    def wait_until(self, holds: Callable[[str], bool], what: str) -> str:
        seen: list[str] = []  # each different screen: a notification shown for a few seconds is in one
        for _ in range(MAX_POLLS):
            screen = self.screen()
            if holds(screen):
                return screen
            if not seen or seen[-1] != screen:
                seen.append(screen)
            time.sleep(POLL_S)
        shown = "\n----- then:\n".join(seen[-3:])
        raise AssertionError(f"never saw {what} on the screen; the last {min(3, len(seen))} screens:\n{shown}")

    def wait_for(self, *texts: str) -> str:
        return self.wait_until(lambda screen: all(t in screen for t in texts), repr(texts))


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (CI installs it: apt-get install tmux)")
    exe = _workbench()
    project = tmp_path / "demo"
    shutil.copytree(REPO / "graphs", project / "graphs", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "traces").mkdir()
    # Not COLUMNS/LINES either: pytest-xdist sets them (80x24) in its workers, and the app would take
    # them for its size instead of the pane's.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WORKBENCH_", "TMUX")) and k not in ("COLUMNS", "LINES")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", TERM="xterm-256color")
    # A short directory of its own for the server socket (socket paths are limited to ~100 bytes).
    sockets = tempfile.mkdtemp(prefix="wb-tmux-")
    term = Terminal(os.path.join(sockets, "sock"), "wb")
    # The pane keeps showing the exit status if the app dies, so a failure message can show it.
    command = f"{exe}; echo WORKBENCH EXITED $?; sleep 600"
    try:
        subprocess.run([*BLOCKING_RESIZES, "tmux", "-S", term.socket, "-f", "/dev/null", "new-session", "-d",
                        "-s", term.session, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(project), command],
                       env=env, check=True)
        yield term
    finally:
        term.tmux("kill-server", check=False)
        shutil.rmtree(sockets, ignore_errors=True)


def test_support_run_answer_and_query_in_tmux(terminal: Terminal) -> None:
    t = terminal
    t.wait_for("Graphs", "chat", "research", "support", "1 Graph", "5 SQL")

    # Pick the support graph and run it with a message the demo model escalates. (Focus moves
    # after the key is handled: wait until the graph view's keys leave the footer before the next.)
    t.wait_for("Break before")
    t.keys("G")
    t.wait_until(lambda screen: "Break before" not in screen, "the graph list focused")
    # The demo graphs in the list: chat, research, support.
    t.keys("Down")
    t.wait_for("research — plan subtopics")
    t.keys("Down")
    t.wait_for("support — classify, look up", "fetch_account")  # the drawing (handoff is below the fold)
    t.keys("r")
    t.wait_for("Run support", "message (str)")
    t.type("This is unacceptable, I want to talk to a manager")
    t.keys("Enter")

    # The run stops at the human-input prompt.
    screen = t.wait_for("is waiting for you at handoff", "This conversation needs a human")
    assert "WORKBENCH EXITED" not in screen
    t.type("A manager will call you today")
    t.keys("Enter")
    t.wait_for("■ run completed")

    # The SQL console: query the run. (No text field has focus once the dialog has closed — the
    # footer shows the app's keys — so 5 switches tabs; an Escape sent right before it would reach
    # the app as alt+5.)
    t.keys("5")
    t.wait_for("SQL (ctrl+r runs", "FROM steps WHERE status")  # the editor opens on an example query
    t.keys("C-n")  # a new query: the editor empties
    t.wait_until(lambda screen: "FROM steps WHERE status" not in screen, "the editor cleared")
    query = "SELECT status, 'by-' || (output->>'handled_by') AS who FROM runs"  # fits the editor
    t.type(query)
    t.wait_for(query)
    t.keys("C-r")
    screen = t.wait_for("1 row(s)", "by-human")
    assert "completed" in screen
    assert "WORKBENCH EXITED" not in screen


def _line_with(screen: str, *texts: str) -> str:
    """The first line of the screen holding every one of ``texts`` ("" if none does)."""
    return next((line for line in screen.splitlines() if all(t in line for t in texts)), "")


def test_breakpoint_fork_with_an_edited_answer_compare_and_full_diff_in_tmux(terminal: Terminal) -> None:
    """The debugging loop by keys alone: break before draft, run, continue to the second visit,
    fork at the first draft with the model's answer replaced, compare the fork with its parent
    and open the full diff of the draft."""
    t = terminal
    t.wait_for("Graphs", "support", "1 Graph", "Break before")
    t.keys("G")
    t.wait_until(lambda screen: "Break before" not in screen, "the graph list focused")
    t.keys("Down")
    t.wait_for("research — plan subtopics")
    t.keys("Down")
    t.wait_for("support — classify, look up", "fetch_account")

    # A breakpoint before draft: the drawing focused (its keys back in the footer), the cursor
    # down three layers (classify, fetch_account, retrieve_policy, draft).
    t.keys("1")
    t.wait_for("Break before")
    t.keys("j", "j", "j", "b")
    t.wait_for("● draft")

    # Run: the first draft pauses; continue: the safety check sends it back, and the breakpoint
    # fires again on the second visit.
    t.keys("r")
    t.wait_for("Run support", "message (str)")
    t.type("I was charged twice, I want a refund of $40")
    t.keys("Enter")
    # The Live log's line, then the notification the app raises once the run has returned.
    t.wait_for("paused before draft (step 4)", "run paused before draft — s steps, c continues")
    t.keys("c")
    t.wait_for("paused before draft (step 6)")

    # The timeline: up from the pending step 6 to the first draft (step 4), then fork there.
    t.keys("3")
    t.wait_until(lambda screen: "paused  5 steps" in screen and "step 6: draft" in screen,
                 "the paused run's timeline at its pending step")
    t.keys("k", "k")
    t.wait_for("step 4: draft")
    t.keys("f")
    t.wait_for("at step 4 (draft)", "[ctrl+t] The answer the fork gets instead")
    # ctrl+t: the answer box, with the step's model call chosen and its answer selected, so
    # typing replaces it. (alt+3 arrives from tmux as ESC 3, which Textual reads as "£".)
    t.keys("C-t")
    t.wait_for("call 1 · draft · workbench-demo/assistant")
    answer = "Billing will review your refund by Friday."
    t.type(answer)
    screen = t.wait_for(answer)
    assert "£" not in screen
    t.keys("C-r")

    # The fork opens in the timeline and pauses at the breakpoint too (a fork made here honours
    # them); continue it to the end.
    t.wait_until(lambda screen: "paused" in _line_with(screen, "run ", "support") and "fork of" in screen,
                 "the fork paused before draft")
    t.keys("c")
    screen = t.wait_until(lambda screen: "completed  6 steps" in _line_with(screen, "run ", "support")
                          and "fork of" in screen and "6 ✓ send" in screen, "the fork completed")

    # Compare the fork with its parent: the draft row holds the parent's answer and the edit.
    t.keys("d")
    screen = t.wait_for("enter: full diff", "answer in draft", answer)
    draft = _line_with(screen, "4 ", "draft", "answer in draft")
    assert "Hi there," in draft and answer in draft
    assert "[]" in _line_with(screen, "5 ", "check", "safety_issues")  # the edited draft passed the check

    # The full diff of the draft: both values whole, side by side.
    t.keys("Down", "Down", "Down")  # steps 1-3 are shared history; row 4 is the draft
    t.keys("Enter")
    screen = t.wait_for("step 4 · draft", "We guarantee a full refund, which will reach your account today.", answer)
    assert "Best regards," in screen
    assert "WORKBENCH EXITED" not in screen


def test_a_run_from_another_terminal_appears_live(terminal: Terminal, tmp_path: Path) -> None:
    """The workbench open in one pane; ``workbench run`` in a second pane of the same window
    records into the same store; the workbench lists the new run and shows its steps."""
    t = terminal
    t.wait_for("Graphs", "support", "1 Graph")
    t.keys("2")  # the runs tab, empty so far
    t.wait_for("2 Runs")
    project = t.tmux("display-message", "-p", "-t", t.session, "#{pane_current_path}").strip()
    out = tmp_path / "other.json"
    cmd = (f"{_workbench()} run support --input '{{\"message\": \"login error\", \"customer_id\": \"C-1001\"}}' "
           f"--json > {out}; sleep 600")
    t.tmux("split-window", "-t", t.session, "-v", "-l", "8", "-c", project, cmd)
    t.tmux("select-pane", "-t", f"{t.session}:0.0")  # keys (and the screen we read) go to the workbench
    screen = t.wait_until(lambda s: out.exists() and out.stat().st_size > 0 and "completed" in s,
                          "the other pane's run listed as completed")
    run_id = json.loads(out.read_text())["run_id"]
    assert run_id[:11] in screen
    t.keys("Enter")  # open it: its steps, recorded by the other process
    t.wait_for("classify", "fetch_account", "retrieve_policy")
