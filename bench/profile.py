"""``python -m bench --profile``: where a recorded W1 step spends its time
(``--profile --only fanout``: a recorded 100-branch fan-out, 50 invokes).

Runs the workload with a journal-backed TraceStore under cProfile (main thread: the runtime's
loop) and counts what the store's background writer did (batches, records, time spent in DuckDB
per record, by wrapping the writer's ``_apply`` in this process only). Prints both; asserts
nothing.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from typing import Any

from bench import workloads


def profile(n: int = 3000, top: int = 25, workload: str = "loop") -> str:
    from workbench import Runner, TraceStore
    from workbench.store import recovery

    batches: list[tuple[int, float]] = []
    original = recovery.Recovery._apply

    def counting_apply(self: Any, con: Any, frames: list[Any], journal: str, owner: str) -> None:
        t0 = time.perf_counter()
        original(self, con, frames, journal, owner)
        batches.append((sum(len(f.records) for f in frames), time.perf_counter() - t0))

    fan = workload == "fanout"
    graph = workloads.wb_fanout(100) if fan else workloads.wb_loop(n)
    invokes = 50 if fan else 1
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="workbench-profile-") as d:
        recovery.Recovery._apply = counting_apply  # type: ignore[method-assign]
        try:
            store = TraceStore(os.path.join(d, "p.duckdb"))
            Runner(graph, store).run({})  # warm: and a fan-out's cheap branches are learned
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            for _ in range(invokes):
                Runner(graph, store).run({})
            prof.disable()
            t1 = time.perf_counter()
            during = len(batches)
            store.close()
            t2 = time.perf_counter()
        finally:
            recovery.Recovery._apply = original  # type: ignore[method-assign]

    if fan:
        out.write(f"fan-out of 100 branches + join with TraceStore (journal), {invokes} invokes, under cProfile "
                  f"(times inflated by the profiler)\nrun {(t1 - t0) / invokes * 1e3:.1f} ms/invoke; "
                  f"close {(t2 - t1) * 1e3:.0f} ms\n")
    else:
        out.write(f"W1 with TraceStore (journal), {n:,} steps, under cProfile (times inflated by the profiler)\n")
        out.write(f"run {(t1 - t0) / n * 1e6:.0f} µs/step; close {(t2 - t1) * 1e3:.0f} ms\n")
    records = sum(b for b, _ in batches)
    spent = sum(s for _, s in batches)
    if batches:
        out.write(
            f"writer: {len(batches)} batches ({during} finished during the run), {records:,} records, "
            f"median batch {statistics.median(b for b, _ in batches):.0f} records, "
            f"{spent:.2f} s in _apply = {spent / max(records, 1) * 1e6:.0f} µs per record\n\n"
        )
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()
