"""The workbench TUI's speed (``python -m bench --tui``, or ``python -m bench.tui``).

Each figure is measured beside its reference in the same run, because this machine is shared:

* **First paint, help, quit** — the workbench (``workbench ui``, as a user starts it) and a
  minimal Textual app (a header, a line of text, a footer) each started in a real
  pseudo-terminal at 160×45, from process start to the first frame (the header's subtitle, or
  the text line); then ``?`` to the help text on screen, and ``q`` to the process gone. Rounds
  alternate the two apps.
* **A 10,000-step run** — opened in the workbench (headless, ``App.run_test``): time from
  choosing it to the timeline showing every step, and from ``G`` (the last step) to the
  inspector showing step 10,000.
* **A live 1,000-step run** — the workbench runs it and shows it live: the time and rows of
  each timeline refresh, first 100 steps against the last 100 (constant work means a ratio
  near 1).
* **Watched vs unwatched** — a 1,000-step run recorded by another process, once with nobody
  watching and once while the workbench shows it live; the ratio of the recorder's times.

Nothing here asserts on a timing; the numbers are printed (and written as JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIZE = (160, 45)

MINIMAL_APP = textwrap.dedent("""
    from textual.app import App
    from textual.binding import Binding
    from textual.widgets import Footer, Header, Static

    class Minimal(App[None]):
        BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help")]

        def compose(self):
            yield Header()
            yield Static("a minimal Textual app")
            yield Footer()

        def action_help(self):
            self.query_one(Static).update("Every action is also in the command palette")

    Minimal().run()
""")

# As a user starts it: the `workbench` console script (workbench.guard:main), command `ui`.
WORKBENCH_APP = ("import sys; sys.argv = ['workbench', 'ui', '--db', 'traces/workbench.duckdb', '--graphs', 'graphs']; "
                 "from workbench.guard import main; main()")


# ----------------------------------------------------------------- a real terminal


class Terminal:
    """A program in a pseudo-terminal: what it has drawn so far, keys sent to it."""

    def __init__(self, code: str, cwd: str) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the program, with the pty as its terminal
            os.chdir(cwd)
            os.environ.update(TERM="xterm-256color", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]))
            # As a user's shell has it: bytecode is cached (installed packages have theirs, and
            # the warm-up start writes the workbench's), else every start compiles from source.
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.execv(sys.executable, [sys.executable, "-c", code])
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.pid, self.fd = pid, fd
        self.output = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        self.output += chunk
        return True

    def wait_for(self, text: str, since: int = 0, timeout: float = 60.0) -> float:
        """Seconds until ``text`` shows in the output written after offset ``since``."""
        start = time.perf_counter()
        needle = text.encode()
        while needle not in self.output[since:]:
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{text!r} not drawn in {timeout} s")
            if not self._read(0.05):
                raise RuntimeError(f"the program ended before drawing {text!r}")
        return time.perf_counter()

    def send(self, keys: str) -> float:
        mark = len(self.output)
        os.write(self.fd, keys.encode())
        return mark

    def wait_exit(self, timeout: float = 60.0) -> float:
        start = time.perf_counter()
        while True:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return time.perf_counter()
            if time.perf_counter() - start > timeout:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError("the program did not exit")
            self._read(0.005)  # keep draining, or it blocks writing its last frame

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def session(code: str, cwd: str, painted_when: str) -> dict[str, float]:
    """First paint (``painted_when`` drawn: text of the first frame), help and quit of one app in
    a fresh process."""
    term = Terminal(code, cwd)
    try:
        painted = term.wait_for(painted_when)
        time.sleep(0.5)  # let the start-up work settle, as a person would look first
        mark = term.send("?")
        sent = time.perf_counter()
        helped = term.wait_for("command palette", since=int(mark))
        time.sleep(0.2)
        term.send("\x1b")  # close help (the minimal app has none to close)
        time.sleep(0.3)
        term.send("q")
        quit_sent = time.perf_counter()
        gone = term.wait_exit()
    finally:
        term.close()
    return {"first_paint_s": painted - term.started, "help_s": helped - sent, "quit_s": gone - quit_sent}


def demo_project(root: str) -> str:
    """A project like the README's: the demo graphs and an empty store."""
    proj = os.path.join(root, "proj")
    shutil.copytree(REPO / "graphs", os.path.join(proj, "graphs"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(proj, "traces"), exist_ok=True)
    return proj


def startup(workdir: str, rounds: int) -> dict[str, Any]:
    proj = demo_project(workdir)
    out: dict[str, list[dict[str, float]]] = {"workbench": [], "minimal": []}
    # The first frame: the header's subtitle, "… graphs in graphs/" (the workbench) or the text line (the minimal app).
    session(WORKBENCH_APP, proj, "graphs in")  # the first start compiles bytecode, creates the store: not counted
    for _ in range(rounds):
        out["minimal"].append(session(MINIMAL_APP, proj, "minimal Textual"))
        out["workbench"].append(session(WORKBENCH_APP, proj, "graphs in"))
    return out


# ----------------------------------------------------------------- in-process (headless)


def _record_counter(db: str, graphs: str, steps: int) -> str:
    from workbench.loader import load_module_graphs
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    graph = next(g for g in load_module_graphs(os.path.join(graphs, "bench_counter.py")).values()
                 if g.name == "bench_counter")
    with TraceStore(db) as store:
        return Runner(graph, store).run({"limit": steps}).run_id


COUNTER = textwrap.dedent('''
    """bench_counter: a one-node loop, one superstep per count (pause_ms between steps)."""
    import time
    from typing import Annotated, Any, TypedDict

    from workbench import END, START, Graph, add


    class CounterState(TypedDict):
        limit: int
        pause_ms: float
        count: Annotated[int, add]


    graph = Graph("bench_counter", CounterState, max_steps=20_000, inputs=["limit", "pause_ms"])


    @graph.node
    def tick(state: CounterState) -> dict[str, Any]:
        if state.get("pause_ms"):
            time.sleep(state["pause_ms"] / 1000)
        return {"count": 1}


    graph.edge(START, "tick")
    graph.route("tick", lambda s: "tick" if s["count"] < s["limit"] else END, targets=["tick", END])
''')


def counter_project(root: str) -> tuple[str, str, str]:
    proj = os.path.join(root, "proj-counter")
    os.makedirs(os.path.join(proj, "graphs"), exist_ok=True)
    os.makedirs(os.path.join(proj, "traces"), exist_ok=True)
    Path(proj, "graphs", "bench_counter.py").write_text(COUNTER)
    return proj, os.path.join(proj, "traces", "workbench.duckdb"), os.path.join(proj, "graphs")


async def _until(pilot: Any, cond: Any, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the workbench did not get there")
        await pilot.pause(0.005)
    return time.perf_counter()


def open_big_run(workdir: str, steps: int, rounds: int) -> dict[str, Any]:
    """Open a ``steps``-step run, then go to its last step."""
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.messages import RunChosen
    from workbench.tui.widgets.inspector import Inspector
    from workbench.tui.widgets.timeline import Timeline

    _proj, db, graphs = counter_project(workdir)
    run_id = _record_counter(db, graphs, steps)
    samples = []

    async def once() -> dict[str, float]:
        app = WorkbenchApp(db, graphs, watch=False)
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.runs)
            await pilot.pause()
            start = time.perf_counter()
            app.post_message(RunChosen(run_id))
            timeline = app.query_one("#timeline", Timeline)
            shown = await _until(pilot, lambda: len(timeline.rows) == steps and app.selected_step == 1)
            await pilot.pause()
            timeline.focus()
            pressed = time.perf_counter()
            await pilot.press("G")
            inspector = app.query_one(Inspector)
            inspected = await _until(pilot, lambda: inspector.shown == (run_id, steps))
            return {"timeline_s": shown - start, "last_step_s": inspected - pressed}

    for _ in range(rounds):
        samples.append(asyncio.run(once()))
    return {"steps": steps, "samples": samples}


def live_run(workdir: str, steps: int, pause_ms: float) -> dict[str, Any]:
    """The workbench runs a ``steps``-step loop and shows it live: the cost of each refresh."""
    from workbench.tui.app import WorkbenchApp

    _proj, db, graphs = counter_project(os.path.join(workdir, "live"))

    async def go() -> list[tuple[int, float, int]]:
        app = WorkbenchApp(db, graphs, watch=False)
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.registry.entries)
            app.selected_graph = "bench_counter"
            app._start("run", "bench_counter", input={"limit": steps, "pause_ms": pause_ms})
            await _until(pilot, lambda: app.live is None and app.open_run is not None
                         and app.open_run["status"] == "completed", timeout=600)
            await pilot.pause(0.3)
            return list(app.timeline_loader.stats)

    stats = asyncio.run(go())
    return {"steps": steps, "pause_ms": pause_ms, "refreshes": stats}


RECORDER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[3])
    from workbench.loader import load_module_graphs
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    db, steps = sys.argv[1], int(sys.argv[2])
    graph = next(g for g in load_module_graphs(sys.argv[3] + "/bench_counter.py").values()
                 if g.name == "bench_counter")
    with TraceStore(db) as store:
        t = time.perf_counter()
        result = Runner(graph, store).run({"limit": steps, "pause_ms": float(sys.argv[4])})
        took = time.perf_counter() - t
    print(json.dumps({"s": took, "status": result.status}))
""")


def watched(workdir: str, steps: int, rounds: int, pause_ms: float) -> dict[str, Any]:
    """A run recorded by another process, unwatched and watched live by the workbench."""
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.messages import RunChosen

    proj, db, graphs = counter_project(os.path.join(workdir, "watched"))

    def record() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", RECORDER, db, str(steps), graphs, str(pause_ms)],
                                stdout=subprocess.PIPE, text=True, cwd=proj)

    def took(proc: subprocess.Popen[str]) -> float:
        out, _ = proc.communicate(timeout=600)
        return float(json.loads(out.strip().splitlines()[-1])["s"])

    async def with_workbench() -> float:
        app = WorkbenchApp(db, graphs, watch=False)
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.registry.entries)
            known = {r["run_id"] for r in app.runs}
            proc = record()
            await _until(pilot, lambda: any(r["run_id"] not in known for r in app.runs), timeout=120)
            new = next(r["run_id"] for r in app.runs if r["run_id"] not in known)
            app.post_message(RunChosen(new))  # open it: from now on the timeline follows it
            while proc.poll() is None:
                await pilot.pause(0.05)
            return took(proc)

    out: dict[str, list[float]] = {"unwatched": [], "watched": []}
    for _ in range(rounds):
        out["unwatched"].append(took(record()))
        out["watched"].append(asyncio.run(with_workbench()))
    return out


# ----------------------------------------------------------------- report


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(res: dict[str, Any]) -> str:
    lines = ["", "## The workbench TUI", ""]
    if "startup" in res:
        wb, mini = res["startup"]["workbench"], res["startup"]["minimal"]
        paint_wb, paint_min = _med([s["first_paint_s"] for s in wb]), _med([s["first_paint_s"] for s in mini])
        help_wb, quit_wb = _med([s["help_s"] for s in wb]), _med([s["quit_s"] for s in wb])
        help_min, quit_min = _med([s["help_s"] for s in mini]), _med([s["quit_s"] for s in mini])
        ratio = paint_wb / paint_min
        lines += [
            f"first paint: workbench {paint_wb * 1000:.0f} ms, minimal Textual app {paint_min * 1000:.0f} ms "
            f"= {ratio:.2f}× (target ≤ 2×: {'met' if ratio <= 2 else 'missed'})",
            f"help (? to drawn): workbench {help_wb * 1000:.0f} ms (minimal app's redraw {help_min * 1000:.0f} ms)",
            f"quit (q to process gone): workbench {quit_wb * 1000:.0f} ms "
            f"(target < 500 ms: {'met' if quit_wb < 0.5 else 'missed'}), minimal app {quit_min * 1000:.0f} ms",
        ]
    if "big" in res:
        big = res["big"]
        t = _med([s["timeline_s"] for s in big["samples"]])
        last = _med([s["last_step_s"] for s in big["samples"]])
        lines.append(f"open a {big['steps']:,}-step run: timeline shown in {t * 1000:.0f} ms; "
                     f"G to the inspector on step {big['steps']:,} in {last * 1000:.0f} ms")
    if "live" in res:
        stats = res["live"]["refreshes"]
        steps = res["live"]["steps"]
        first = [s for s in stats if 0 < s[0] <= 100]
        last = [s for s in stats if s[0] > steps - 100]
        f_ms, l_ms = _med([s[1] for s in first]) * 1000, _med([s[1] for s in last]) * 1000
        f_rows, l_rows = _med([s[2] for s in first]), _med([s[2] for s in last])
        lines.append(f"live {steps:,}-step run: {len(stats)} refreshes; per refresh at steps 1–100 "
                     f"{f_ms:.1f} ms / {f_rows:.0f} rows read, at the last 100 {l_ms:.1f} ms / {l_rows:.0f} rows "
                     f"= {l_ms / f_ms:.2f}× (constant work: rows {l_rows:.0f} vs {f_rows:.0f})")
    if "watched" in res:
        un, wa = res["watched"]["unwatched"], res["watched"]["watched"]
        ratio = _med(wa) / _med(un)
        lines.append(f"recording a 1,000-step run: unwatched {_med(un):.2f} s, watched live by the workbench "
                     f"{_med(wa):.2f} s = {ratio:.2f}× (target ≤ 1.2×: {'met' if ratio <= 1.2 else 'missed'})")
    return "\n".join(lines)


def run(quick: bool = False, only: set[str] | None = None) -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    workdir = tempfile.mkdtemp(prefix="workbench-bench-tui-")
    res: dict[str, Any] = {}
    want = only or {"startup", "big", "live", "watched"}
    try:
        if "startup" in want:
            print("  tui: first paint, help, quit (pty) ...", file=sys.stderr)
            res["startup"] = startup(workdir, 2 if quick else 5)
        if "big" in want:
            print("  tui: a 10,000-step run ...", file=sys.stderr)
            res["big"] = open_big_run(workdir, 2000 if quick else 10_000, 1 if quick else 3)
        if "live" in want:
            print("  tui: a live 1,000-step run ...", file=sys.stderr)
            res["live"] = live_run(workdir, 300 if quick else 1000, 2.0)
        if "watched" in want:
            print("  tui: watched vs unwatched ...", file=sys.stderr)
            res["watched"] = watched(workdir, 300 if quick else 1000, 1 if quick else 3, 1.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tui", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--only", action="append", choices=["startup", "big", "live", "watched"],
                    help="run only this part (repeatable)")
    ap.add_argument("--json", metavar="FILE", help="also write every sample to FILE as JSON")
    args = ap.parse_args(argv)
    res = run(args.quick, set(args.only) if args.only else None)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
