"""Many processes on one store, and the fleet store's per-step cost (``python -m bench``).

* **Concurrency** — ``procs`` processes each record ``runs`` runs of the support demo into one
  local store at once, while a process standing in for the open workbench watches it (polls the
  change token, and on every change reloads the runs list and the newest run's timeline, as the
  TUI does). Reported: runs recorded, lost (missing or unfinished) and refused (any error), the
  wall time, and the reader's refreshes.
* **Visibility** — a recorder commits a step every ``gap`` seconds; a reader in this process
  polls the change token and notes, for each new step, how long after the step ended it became
  visible to another process.
* **Fleet per step** — the 1,000-step loop recording into a DuckLake on a throwaway PostgreSQL
  (tests/pgcluster.py), beside the local store and LangGraph without a checkpointer, in the same
  rounds.

Nothing here asserts on a timing; the numbers are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_RECORDER = textwrap.dedent("""
    import json, sys
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    db, worker, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    messages = ["My login page shows an error 500", "I was charged twice, I want a refund of $40",
                "How do I change my invoice address?", "This is unacceptable, I want a manager"]
    graph = load_graph("support")
    done = refused = 0
    with TraceStore(db) as store:
        for i in range(runs):
            try:
                r = Runner(graph, store).run({"message": messages[i % 4], "customer_id": "C-100" + str(i % 3 + 1)})
                done += r.status in ("completed", "waiting")
            except Exception as exc:
                refused += 1
                print(f"refused: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(json.dumps({"worker": worker, "done": done, "refused": refused}), flush=True)
""")

_WATCHER = textwrap.dedent("""
    import json, sys, time
    from workbench.history import timeline
    from workbench.store import TraceStore

    store = TraceStore(sys.argv[1])
    last, refreshes, errors = None, 0, 0
    sys.stdin = open(sys.stdin.fileno())  # closed by the driver when the recorders are done
    import select
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.3)   # the TUI polls every 0.3 s
        if ready and not sys.stdin.read(1):
            break
        try:
            token = store.change_token()
            if token != last:
                last = token
                runs = store.list_runs(1000)
                if runs:
                    timeline(store, runs[0]["run_id"])
                refreshes += 1
        except Exception as exc:
            errors += 1
            print(f"watcher: {type(exc).__name__}: {exc}", file=sys.stderr)
    store.close()
    print(json.dumps({"refreshes": refreshes, "errors": errors}), flush=True)
""")

_TICKER = textwrap.dedent("""
    import sys, time
    from typing import Annotated, TypedDict
    from workbench import END, START, Graph, Runner, TraceStore, append

    class S(TypedDict):
        n: int
        log: Annotated[list[str], append]

    steps, gap = int(sys.argv[2]), float(sys.argv[3])
    g = Graph("ticker", S, max_steps=steps + 1)

    @g.node
    def tick(state):
        time.sleep(gap)  # the step's own work (this is the workload being observed, not a wait)
        return {"n": state["n"] + 1, "log": ["t"]}

    g.edge(START, "tick")
    g.route("tick", lambda s: "tick" if s["n"] < steps else END, targets=["tick", END])
    with TraceStore(sys.argv[1]) as store:
        Runner(g, store).run({})
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def concurrency(workdir: str, procs: int, runs: int) -> dict[str, Any]:
    """``procs`` recorders × ``runs`` support-demo runs, with a watcher standing in for the TUI."""
    project = Path(workdir) / "concurrency"
    shutil.copytree(REPO / "graphs", project / "graphs", ignore=shutil.ignore_patterns("__pycache__"))
    db = str(project / "traces" / "workbench.duckdb")
    from workbench.store import TraceStore

    TraceStore(db).close()
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, db], cwd=project, env=_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-c", _RECORDER, db, f"w{i}", str(runs)], cwd=project, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(procs)]
    reports, stderr = [], []
    for w in workers:
        out, err = w.communicate()
        stderr.append(err)
        reports.append(json.loads(out.strip().splitlines()[-1]) if out.strip() else {"done": 0, "refused": runs})
    wall = time.perf_counter() - t0
    wout, werr = watcher.communicate("")  # closing its stdin tells it to stop
    watch = json.loads(wout.strip().splitlines()[-1]) if wout.strip() else {"refreshes": 0, "errors": -1}
    with TraceStore(db) as store:
        recorded = store.query("SELECT count(*), count(*) FILTER (WHERE status IN ('completed', 'waiting')) "
                               "FROM runs")[0]
    expected = procs * runs
    return {
        "procs": procs, "runs_each": runs, "expected": expected, "recorded": recorded[0], "finished": recorded[1],
        "lost": expected - recorded[1], "refused": sum(r["refused"] for r in reports), "wall_s": wall,
        "runs_per_s": recorded[0] / wall if wall else 0.0, "watcher": watch,
        "stderr": [line for e in [*stderr, werr] for line in e.splitlines()
                   if "refused" in line or "watcher" in line][:5],
    }


def visibility(workdir: str, steps: int, gap: float) -> list[float]:
    """Seconds from a step's end (as recorded) to its first sighting by another process."""
    from workbench.store import TraceStore

    db = str(Path(workdir) / "visibility" / "v.duckdb")
    TraceStore(db).close()
    ticker = subprocess.Popen([sys.executable, "-c", _TICKER, db, str(steps), str(gap)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, float] = {}
    latencies: list[float] = []
    with TraceStore(db) as reader:
        last = None
        while ticker.poll() is None or last != reader.change_token():
            token = reader.change_token()
            if token != last:
                last = token
                now = time.time()
                for step, ended_us in reader.query(
                        "SELECT step, epoch_us(ended_at) FROM steps WHERE status = 'completed'"):
                    if step not in seen:
                        seen[step] = now
                        latencies.append(now - ended_us / 1e6)
            time.sleep(0.005)  # the reader's poll period (what a watching process would choose)
    ticker.communicate()
    return latencies


def fleet_available() -> bool:
    import glob

    try:
        import duckdb_extension_ducklake  # noqa: F401
    except ImportError:
        return False
    return bool(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))


class FleetStore:
    """A throwaway PostgreSQL and lake for the fleet rows of the loop benchmark."""

    def __init__(self, workdir: str) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from pgcluster import PASSWORD, postgres_cluster

        self._ctx = postgres_cluster()
        self.cluster = self._ctx.__enter__()
        self.workdir = workdir
        os.environ["PGPASSWORD"] = PASSWORD
        self._n = 0

    def location(self) -> str:
        """A fresh lake (its own database and data directory) for one sample."""
        self._n += 1
        db = self.cluster.create_database(f"bench{self._n}")
        os.environ["WORKBENCH_LAKE_DATA"] = os.path.join(self.workdir, f"lake{self._n}")
        os.environ["WORKBENCH_SPOOL"] = os.path.join(self.workdir, f"spool{self._n}")
        return str(self.cluster.location(db))

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)


def report(conc: dict[str, Any] | None, vis: list[float] | None) -> str:
    out: list[str] = []
    if conc is not None:
        w = conc["watcher"]
        out.append(
            f"\nConcurrency: {conc['procs']} processes × {conc['runs_each']} runs of the support demo into one store "
            f"at once, a watcher process standing in for the open workbench\n"
            f"  runs recorded {conc['recorded']} of {conc['expected']}, lost {conc['lost']}, "
            f"refused {conc['refused']}; "
            f"{conc['wall_s']:.1f} s wall, {conc['runs_per_s']:.1f} runs/s; the watcher refreshed {w['refreshes']} "
            f"times with {w['errors']} errors"
        )
        for line in conc["stderr"]:
            out.append(f"  {line}")
    if vis:
        vs = sorted(vis)
        p95 = vs[min(len(vs) - 1, int(len(vs) * 0.95))]
        out.append(
            f"\nVisibility: a step recorded by one process, first seen by another — {len(vs)} steps: "
            f"median {statistics.median(vs) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {vs[-1] * 1000:.0f} ms "
            "(target: within a second)"
        )
    return "\n".join(out)
