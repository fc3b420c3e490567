"""``python -m bench --profile``: where a recorded W1 step spends its time.

Runs the loop with a journal-backed TraceStore under cProfile (main thread: the runtime's loop)
and counts what the store's background writer did (batches, records, time spent in DuckDB per
record, by wrapping ``TraceStore._apply`` in this process only). Prints both; asserts nothing.
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


def profile(n: int = 3000, top: int = 25) -> str:
    from workbench import Runner, TraceStore
    from workbench.store import store as store_mod

    batches: list[tuple[int, float]] = []
    original = store_mod.TraceStore.__dict__["_apply"]
    inner = original.__func__ if isinstance(original, staticmethod) else original

    def counting_apply(con: Any, batch: list[Any]) -> None:
        t0 = time.perf_counter()
        inner(con, batch)
        batches.append((len(batch), time.perf_counter() - t0))

    graph = workloads.wb_loop(n)
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="workbench-profile-") as d:
        store_mod.TraceStore._apply = staticmethod(counting_apply)  # type: ignore[method-assign]
        try:
            store = TraceStore(os.path.join(d, "p.duckdb"))
            runner = Runner(graph, store)
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            runner.run({})
            prof.disable()
            t1 = time.perf_counter()
            during = len(batches)
            store.close()
            t2 = time.perf_counter()
        finally:
            store_mod.TraceStore._apply = original  # type: ignore[method-assign]

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
