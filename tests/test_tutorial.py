"""docs/tutorial.md, run as written: every command of its console blocks is run in a copy of the
demo project, with the tutorial's graph files, and what it prints must be what the page shows
(run ids, times and durations aside). The page promises "Everything below was run as shown";
this keeps it so when an output format changes.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conftest import REPO, cli_env, demo_project, run_cli, workbench_cmd

TUTORIAL = REPO / "docs" / "tutorial.md"
STARTED = "(tutorial: answer started)"
RUN_ID = re.compile(r"\b1a2[0-9a-f]{14}\b")


@dataclass
class Block:
    kind: str  # "python" or "console"
    text: str


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    """The page's fenced python and console blocks, in order."""
    return [Block(kind, body) for kind, body in re.findall(r"```(python|console)\n(.*?)```", text, re.S)]


def commands(console: str) -> list[Command]:
    """A console block as its commands (``$ ...``), each with the lines shown after it."""
    out: list[Command] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            out.append(Command(line[2:]))
        elif out:
            out[-1].expected.append(line)
    return out


def normalized(lines: list[str]) -> list[str]:
    """What may differ between two runs of the tutorial, made equal: run ids, code hashes,
    timestamps, intervals (their *format* is kept: ``00:00:05.07`` is not ``0:00:05.07``), numbers,
    the widths of table rules and padding."""
    out = []
    for line in lines:
        line = re.sub(r"\{.*\}", _sorted_keys, line)
        line = RUN_ID.sub("RUN", line)
        line = re.sub(r"\bcode [0-9a-f]{16}\b", "code HASH", line)
        line = re.sub(r"(\d{4}-)?\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?", "TIME", line)
        line = re.sub(r"(?<![\d:])\d\d:\d\d:\d\d\.\d{6}\b", "INTERVAL", line)
        line = re.sub(r"\d+(\.\d+)?", "#", line)
        line = re.sub(r"━+", "━", re.sub(r"─+", "─", line))
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


def _sorted_keys(match: re.Match[str]) -> str:
    """A JSON object in a table cell, keys sorted: state_at's key order is not meaningful."""
    try:
        value = json.loads(match[0])
    except ValueError:
        return match[0]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def shown(expected: list[str]) -> list[str]:
    """The lines the page shows, up to a ``...`` that marks the rest as trimmed."""
    return expected[: expected.index("...")] if "..." in expected else expected


class Tutorial:
    """Runs the page's commands in ``project``, keeping the page's run ids mapped to the real ones."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.graph = project / "graphs" / "helpdesk.py"
        self.ids: dict[str, str] = {}
        self.last_code: int | None = None
        self.background: subprocess.Popen[bytes] | None = None

    def real(self, command: str) -> list[str]:
        """The command's arguments, the page's run ids (or prefixes of them) replaced by the real ones."""
        args = shlex.split(command)
        assert args[0] == "workbench", command
        out = []
        for arg in args[1:]:
            for page_id, real_id in self.ids.items():
                arg = re.sub(rf"\b{page_id[:11]}[0-9a-f]*\b", real_id, arg)
            out.append(arg)
        return out

    def learn_ids(self, expected: list[str], printed: list[str]) -> None:
        page = list(dict.fromkeys(RUN_ID.findall("\n".join(expected))))
        real = list(dict.fromkeys(RUN_ID.findall("\n".join(printed))))
        for page_id, real_id in zip(page, real, strict=False):  # (a trimmed output shows fewer)
            self.ids.setdefault(page_id, real_id)

    def run(self, command: str, env: dict[str, str] | None = None) -> list[str]:
        res = run_cli(*self.real(command), cwd=self.project, env=env)
        self.last_code = res.returncode
        return [line for line in (res.stdout + res.stderr).splitlines() if line != STARTED]

    def start_background(self, command: str) -> list[str]:
        """Section 5: the run is started in the background and killed with ``kill -9`` once its
        slowed ``answer`` has started (step 1 is then recorded: a step is durable before the next
        one starts; the line ``step 1 ✓ triage`` comes a moment before that); ``answer`` would
        take minutes."""
        self.background = proc = subprocess.Popen(
            [*workbench_cmd(), *self.real(command.rstrip("& "))], cwd=self.project, bufsize=0,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # One process (no crash guard, whose child dies a moment after it): once it is
            # reaped, the next command finds its journal's process gone.
            env=cli_env(TUTORIAL_SLEEP="600", PYTHONUNBUFFERED="1", WORKBENCH_NO_GUARD="1"))
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        printed = b""
        while STARTED.encode() not in printed:
            ready, _, _ = select.select([fd], [], [], 120)
            assert ready, f"the background run printed no step in 120 s: {printed!r}"
            chunk = os.read(fd, 4096)
            assert chunk, f"the background run ended early: {printed!r}"
            printed += chunk
        return [line for line in printed.decode("utf-8").splitlines() if line != STARTED]

    def kill_background(self) -> None:
        assert self.background is not None and self.background.stdout is not None
        self.background.kill()  # SIGKILL: the tutorial's kill -9
        self.background.wait(timeout=60)
        self.background.stdout.close()


    def check(self, cmd: Command) -> int:
        """Run one of the page's commands as the page says; 1 when its output was compared."""
        if cmd.line.startswith("source "):
            return 0
        if cmd.line == "echo $?":
            assert [str(self.last_code)] == cmd.expected, "exit code"
            return 0
        if cmd.line.startswith("kill -9"):
            self.kill_background()
            return 0
        good = self.graph.read_text(encoding="utf-8") if self.graph.exists() else ""
        typo = cmd.line == "workbench graph helpdesk" and cmd.expected[0].startswith("workbench: error")
        if typo:  # section 2: "Had you mistyped a target"
            self.graph.write_text(good.replace('targets=["answer", "ask_human"]', 'targets=["anwser", "ask_human"]'),
                                  encoding="utf-8")
        if cmd.line.endswith("&"):
            self.graph.write_text(slowed(good), encoding="utf-8")
            printed = self.start_background(cmd.line)
        else:  # after section 5: a slow answer (section 6 sorts nodes by time), not minutes
            printed = self.run(cmd.line, cli_env(TUTORIAL_SLEEP="0.5") if "TUTORIAL_SLEEP" in good else None)
        if typo:
            self.graph.write_text(good, encoding="utf-8")
        expected = shown(cmd.expected)
        self.learn_ids(expected, printed)
        want, got = normalized(expected), normalized(printed)
        if len(expected) < len(cmd.expected):  # trimmed on the page: its first lines
            got = got[: len(want)]
        assert got == want, f"$ {cmd.line}"
        return 1


def slowed(source: str) -> str:
    """Section 5's edit (``import time``; ``time.sleep(10)`` first in ``answer``), with the
    sleep's length from the environment: long in the process that is killed, short on resume."""
    source = "import os\nimport time\n" + source
    return source.replace("def answer(state, ctx):\n",
                          f"def answer(state, ctx):\n    print({STARTED!r}, flush=True)\n"
                          "    time.sleep(float(os.environ.get('TUTORIAL_SLEEP', '0')))\n")


def test_the_tutorial_prints_what_it_shows(tmp_path: Path) -> None:
    tut = Tutorial(demo_project(tmp_path / "project"))
    graphs = checked = 0
    try:
        for block in blocks(TUTORIAL.read_text(encoding="utf-8")):
            if block.kind == "python":
                graphs += 1
                tut.graph.write_text(block.text, encoding="utf-8")
                continue
            for cmd in commands(block.text):
                checked += tut.check(cmd)
    finally:
        if tut.background is not None and tut.background.poll() is None:
            tut.kill_background()  # a failure in section 5 leaves no process behind
    assert graphs == 2 and checked >= 20  # the page was read as it is laid out
