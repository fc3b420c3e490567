"""Issue 11's figures that the other sections do not measure: the state at any step of a long
run through the Python API, and the first second of a command — each beside its reference in
the same run, rounds interleaved. Also the summary of every issue-11 target, met or missed.
"""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import workloads

ROOT = Path(__file__).resolve().parent.parent


def state_at(workdir: str, n: int, rounds: int) -> dict[str, Any]:
    """``RunHistory(store, run).state_after(step)`` — opening the history included — for the
    first, middle and last step of an ``n``-step run, beside the ``state_at`` SQL macro."""
    from workbench import Runner, TraceStore
    from workbench.history import RunHistory

    path = os.path.join(workdir, f"state-at-{n}.duckdb")
    with TraceStore(path) as store:
        run_id = Runner(workloads.wb_loop(n), store).run({}).run_id
    api: list[float] = []
    macro: list[float] = []
    steps = [1, n // 2, n]
    with TraceStore(path) as store:
        RunHistory(store, run_id).state_after(1)  # warm: DuckDB's first statements
        for r in range(rounds):
            for step in steps[r % 3:] + steps[:r % 3]:
                t0 = time.perf_counter()
                state = RunHistory(store, run_id).state_after(step)
                api.append(time.perf_counter() - t0)
                assert len(state["items"]) == step
                t0 = time.perf_counter()
                store.query("SELECT * FROM state_at(?, ?)", [run_id, step])
                macro.append(time.perf_counter() - t0)
    return {"n": n, "api_ms": [x * 1e3 for x in api], "macro_ms": [x * 1e3 for x in macro]}


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the process and its threads) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()[-300:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup(workdir: str, rounds: int) -> dict[str, Any]:
    """``workbench run support`` (the offline demo) and ``workbench runs`` beside a bare
    ``python -c 'import litellm'``, rounds interleaved; then the slowest recorded step of the
    demo runs (an import inside a step would show there).

    Also beside ``import litellm`` ended by ``os._exit`` (as the workbench command ends): a bare
    interpreter spends a second or more tearing litellm's modules down on exit, which the
    reference includes and the command does not. Wall and CPU time both: on a loaded machine
    CPU time is the steadier of the two.
    """
    exe = Path(sys.executable).parent / "workbench"
    wb = [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench"]
    db = os.path.join(workdir, "startup.duckdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["WORKBENCH_NO_GUARD"] = "1"  # the crash guard's fork is not what is measured
    # litellm's bytecode was compiled when it was installed; workbench's (an editable checkout,
    # and a machine that may set PYTHONDONTWRITEBYTECODE) would otherwise be compiled from
    # source on every start. Compile it once, as installing the package does.
    compileall.compile_dir(str(ROOT / "workbench"), quiet=1)
    compileall.compile_dir(str(ROOT / "graphs"), quiet=1)
    commands = {
        "import": [sys.executable, "-c", "import litellm"],
        "import_exit": [sys.executable, "-c", "import litellm, os; os._exit(0)"],
        "run": [*wb, "run", "support", "--db", db, "--json"],
        "runs": [*wb, "runs", "--db", db],
    }
    _timed(commands["run"], ROOT, env)  # warm: the store exists, files are in the page cache
    out: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    keys = list(commands)
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            wall, used = _timed(commands[key], ROOT, env)
            out[key].append(wall)
            cpu[key].append(used)
    from workbench import TraceStore

    with TraceStore(db) as store:
        slowest = store.query("SELECT node, max(duration_ms) AS ms FROM wb_tasks GROUP BY node ORDER BY ms DESC "
                              "LIMIT 3")
        calls = store.query("SELECT max(latency_ms) FROM wb_llm_calls")
    return {"s": out, "cpu": cpu, "slowest": [(str(n), float(ms)) for n, ms in slowest],
            "max_call_ms": float(calls[0][0] or 0.0)}


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _per_round(table: dict[str, list[float]], a: str, b: str) -> float:
    """The median over rounds of ``a - b`` (the two ran seconds apart in each round)."""
    return _med([x - y for x, y in zip(table[a], table[b], strict=True)])


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def report(res: dict[str, Any], flat: list[tuple[str, float]], fan_ratio: float | None) -> str:
    """The state-at and start-up tables, then every issue-11 target with its verdict."""
    out: list[str] = []
    summary: list[tuple[str, str, str, str]] = []
    sa = res.get("state_at")
    if sa:
        api, macro = _med(sa["api_ms"]), _med(sa["macro_ms"])
        worst = max(sa["api_ms"])
        out.append(
            f"\nState at a step of a {sa['n']:,}-step run (steps 1, {sa['n'] // 2:,}, {sa['n']:,}; "
            f"{len(sa['api_ms'])} samples)\n"
            f"  RunHistory(store, run).state_after(step), opening included: median {api:.1f} ms, max {worst:.1f} ms\n"
            f"  reference, the state_at SQL macro in the same rounds: median {macro:.1f} ms "
            f"(API {api / macro:.2f}× the macro)"
        )
        summary.append(("state at any step, 10k run (Python API)", f"{api:.1f} ms (macro {macro:.1f} ms)",
                        "≤ 50 ms", _verdict(api <= 50)))
    st = res.get("startup")
    if st:
        imp, run, runs = (_med(st["s"][k]) for k in ("import", "run", "runs"))
        over = _per_round(st["s"], "run", "import")
        lines = [
            f"\nThe first second: wall time of a command, median of {len(st['s']['run'])} interleaved rounds",
            f"  python -c 'import litellm' (reference)   {imp:.2f} s",
            f"  workbench run support (offline demo)      {run:.2f} s  (import {over:+.2f} s, per round)",
            f"  workbench runs (never imports litellm)    {runs:.2f} s",
        ]
        if "import_exit" in st["s"]:
            bare = _per_round(st["s"], "run", "import_exit")
            lines.append(f"  import litellm ended by os._exit          {_med(st['s']['import_exit']):.2f} s  "
                         f"(run support {bare:+.2f} s against it, per round)")
        if "cpu" in st:
            c = st["cpu"]
            lines.append(f"  CPU time (user + system), medians: import {_med(c['import']):.2f} s, "
                         f"run support {_med(c['run']):.2f} s ({_per_round(c, 'run', 'import'):+.2f} s per round)"
                         + (f", import ended by os._exit {_med(c['import_exit']):.2f} s "
                            f"({_per_round(c, 'run', 'import_exit'):+.2f} s)" if "import_exit" in c else ""))
        steps = ", ".join(f"{n} {ms:.1f} ms" for n, ms in st["slowest"])
        slowest_call = st["max_call_ms"]
        lines.append(f"  slowest recorded steps of the demo runs: {steps}; slowest model call {slowest_call:.1f} ms")
        out.append("\n".join(lines))
        summary.append(("workbench run support start-up", f"import {over:+.2f} s", "≤ import + 0.5 s",
                        _verdict(over <= 0.5)))
    for label, ratio in flat:
        summary.append((f"flatness, {label}", f"{ratio:.2f}× (10k vs 1k per step)", "≤ 1.1×",
                        _verdict(ratio <= 1.1)))
    if fan_ratio is not None:
        summary.append(("fan-out 100 + join, recording on", f"{fan_ratio:.2f}× LG none", "≤ 0.25×",
                        _verdict(fan_ratio <= 0.25)))
    if summary:
        width = max(len(s[0]) for s in summary)
        vw = max(len(s[1]) for s in summary)
        out.append("\nIssue 11 targets (each against its reference in this run)")
        out += [f"  {a:<{width}}  {b:<{vw}}  target {c:<16} {d}" for a, b, c, d in summary]
    return "\n".join(out)
