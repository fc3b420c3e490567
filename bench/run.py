"""The benchmark driver: ``python -m bench [--quick] [--rounds N] [--json FILE] [--dir DIR]``.

Everything is measured in one process, in the same run, with repetitions interleaved (round r
runs every variant once, in an order rotated by r), and reported as medians; ratios are taken
per round (the variants of one round ran seconds apart, under the same machine load) and the
median of those ratios is shown. Set-up (opening a store, compiling a LangGraph app, creating a
SQLite file) is outside the timed region; closing a store is timed separately.

Nothing here asserts on a timing: the numbers are printed, never checked.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import workloads

# ----------------------------------------------------------------- samples


@dataclass
class Sample:
    run_s: float  # the timed run / invoke
    close_s: float = 0.0  # closing the store (flush to DuckDB) or the SQLite connection
    file_bytes: int | None = None  # database size after close
    cpu_s: float = 0.0  # process CPU time of the timed run (every thread: the store's writer too)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Variant:
    key: str
    label: str
    durable: str  # what the recording survives
    fn: Callable[[str], Sample]  # fn(path for this sample's files) -> Sample


def _fresh_path(workdir: str, name: str) -> str:
    d = tempfile.mkdtemp(prefix=name + "-", dir=workdir)
    return os.path.join(d, name)


def _file_size(path: str) -> int:
    total = 0
    for p in (path, path + ".wal", path + "-wal", path + ".journal"):
        if os.path.exists(p):
            total += os.path.getsize(p)
    return total


# ----------------------------------------------------------------- workbench


def wb_sample(graph: Any, expect: Callable[[dict[str, Any]], bool], store_mode: str | None,
              path: str, location: str | None = None) -> Sample:
    from workbench import Runner, TraceStore

    target = location or path + ".duckdb"
    store = TraceStore(target, fsync=store_mode == "fsync") if store_mode else None
    extra: dict[str, Any] = {}
    if store is not None:
        # Part of opening the store, outside the timed region (as SqliteSaver's setup()): the
        # journal file and the writer thread, which a store otherwise starts on its first record
        # (once per process and store: 1-3 ms here, mostly starting the thread). Shown apart.
        t0 = time.perf_counter()
        store.hold_journal()
        extra["journal_start_s"] = time.perf_counter() - t0
    runner = Runner(graph, store)
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    result = runner.run({})
    t1, c1 = time.perf_counter(), time.process_time()
    if store is not None:
        store.close()
    t2 = time.perf_counter()
    if result.status != "completed" or not expect(result.state):
        raise RuntimeError(f"workbench run did not finish as expected: {result.status} {result.error}")
    size = _file_size(path + ".duckdb") if store_mode and location is None else None
    return Sample(t1 - t0, t2 - t1, size, extra=extra, cpu_s=c1 - c0)


def wb_storage_stats(db_path: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), coalesce(sum(length(value::VARCHAR)), 0), max(step) FROM state_changes"
        ).fetchone()
        steps = con.execute("SELECT count(*) FROM steps").fetchone()
        assert row is not None and steps is not None
        return {"change_rows": row[0], "change_value_bytes": row[1], "last_step": row[2], "step_rows": steps[0]}
    finally:
        con.close()


# ----------------------------------------------------------------- LangGraph


_LG_APPS: dict[tuple[str, int], Any] = {}


def lg_sample(kind: str, workload: str, n: int, expect: Callable[[dict[str, Any]], bool], path: str) -> Sample:
    build = workloads.lg_loop if workload == "loop" else workloads.lg_fanout
    conn = None
    durability = None
    if kind == "none":
        app = _LG_APPS.get((workload, n))
        if app is None:
            app = _LG_APPS[(workload, n)] = build(n)
    elif kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        app = build(n, InMemorySaver())
    elif kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(path + ".sqlite", check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        app = build(n, saver)
        durability = "sync"
    else:
        raise ValueError(kind)
    config = {"recursion_limit": n + 10, "configurable": {"thread_id": "bench"}}
    inp: dict[str, Any] = {"items": []} if workload == "loop" else {"results": [], "total": 0}
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = app.invoke(inp, config, durability=durability) if durability else app.invoke(inp, config)
    t1, c1 = time.perf_counter(), time.process_time()
    if conn is not None:
        conn.close()
    t2 = time.perf_counter()
    if not expect(out):
        raise RuntimeError("LangGraph run did not finish as expected")
    size = _file_size(path + ".sqlite") if conn is not None else None
    return Sample(t1 - t0, t2 - t1, size, cpu_s=c1 - c0)


def lg_storage_stats(db_path: str) -> dict[str, Any]:
    con = sqlite3.connect(db_path)
    try:
        ck_rows, ck_bytes = con.execute(
            "SELECT count(*), coalesce(sum(length(checkpoint)) + sum(length(metadata)), 0) FROM checkpoints"
        ).fetchone()
        w_rows, w_bytes = con.execute("SELECT count(*), coalesce(sum(length(value)), 0) FROM writes").fetchone()
        sync = con.execute("PRAGMA synchronous").fetchone()[0]
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        return {"checkpoint_rows": ck_rows, "checkpoint_bytes": ck_bytes, "write_rows": w_rows,
                "write_bytes": w_bytes, "journal_mode": mode, "synchronous": sync}
    finally:
        con.close()


# ----------------------------------------------------------------- running rounds


def run_rounds(variants: list[Variant], rounds: int, workdir: str, title: str) -> dict[str, list[Sample]]:
    """Run every variant once per round, rotating the order each round; return samples by key."""
    out: dict[str, list[Sample]] = {v.key: [] for v in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            out[v.key].append(v.fn(_fresh_path(workdir, v.key)))
        print(f"  {title}: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def paired_ratio(a: list[Sample], b: list[Sample]) -> float:
    """Median over rounds of a.run / b.run (samples of the same round ran back to back)."""
    return med([x.run_s / y.run_s for x, y in zip(a, b, strict=True)])


# ----------------------------------------------------------------- tables


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [i > 0 for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in pairs)

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])


def us(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def spread(xs: list[float], scale: float) -> str:
    return f"{us(min(xs) * scale)}–{us(max(xs) * scale)}"


# ----------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps (a smoke run; numbers are rougher)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of the 1,000-step loop (default 7)")
    ap.add_argument("--json", metavar="FILE", help="also write every sample to FILE as JSON")
    ap.add_argument("--dir", metavar="DIR", help="where the database files go (default: a temporary directory)")
    ap.add_argument("--runs", type=int, default=None,
                    help="support-demo runs per process in the concurrency figure (default 100; --quick 10)")
    ap.add_argument("--profile", action="store_true",
                    help="instead: profile a recorded 3,000-step loop (cProfile + the store writer's batches); "
                         "with --only fanout, a recorded fan-out")
    ap.add_argument("--only", metavar="SECTION", choices=SECTIONS, action="append",
                    help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    ap.add_argument("--tui", action="store_true",
                    help="instead: the workbench TUI's figures (first paint, help, quit, 10,000 steps, live view)")
    args = ap.parse_args(argv)
    if args.tui:
        from bench.tui import main as tui_main

        return tui_main(["--quick"] if args.quick else [])
    if args.profile:
        from bench.profile import profile

        print(profile(workload="fanout" if args.only == ["fanout"] else "loop"))
        return 0

    n = 200 if args.quick else 1000
    n_long = 2000 if args.quick else 10_000
    width = 100
    rounds = args.rounds or (2 if args.quick else 7)
    rounds_long = 1 if args.quick else 3
    rounds_fan = 3 if args.quick else 15

    only = set(args.only or SECTIONS)
    workdir = tempfile.mkdtemp(prefix="workbench-bench-", dir=args.dir)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    fleet = None
    try:
        from bench.concurrency import FleetStore, concurrency, fleet_available, visibility

        if "w1" in only and fleet_available():
            fleet = FleetStore(workdir)
        results = _run_all(workdir, n, n_long, width, rounds, rounds_long, rounds_fan, fleet, only)
        if "concurrency" in only:
            print("  concurrency: 4 processes recording the support demo ...", file=sys.stderr)
            results["concurrency"] = concurrency(workdir, 4, args.runs or (10 if args.quick else 100))
            print("  visibility: steps seen by another process ...", file=sys.stderr)
            results["visibility"] = visibility(workdir, 20 if args.quick else 60, 0.1)
        from bench import targets

        if "state" in only:
            print("  state at a step of a long run ...", file=sys.stderr)
            results["state_at"] = targets.state_at(workdir, n_long, 3 if args.quick else 9)
        if "startup" in only:
            print("  the first second: command start-up beside import litellm ...", file=sys.stderr)
            results["startup"] = targets.startup(workdir, 2 if args.quick else 3)
    finally:
        if fleet is not None:
            fleet.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["load_start"] = load_start
    results["meta"]["load_end"] = os.getloadavg()
    results["meta"]["wall_s"] = time.perf_counter() - t_start
    print(_report(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=lambda o: o.__dict__)
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("agent-workbench", "duckdb", "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


SECTIONS = ("w1", "flatness", "fanout", "state", "startup", "concurrency")
"""What ``--only`` can pick. ``w1`` includes the storage table (it measures the same runs);
``concurrency`` includes the visibility figure."""


def _run_all(workdir: str, n: int, n_long: int, width: int, rounds: int, rounds_long: int,
             rounds_fan: int, fleet: Any = None, only: set[str] | frozenset[str] = frozenset(SECTIONS),
             ) -> dict[str, Any]:
    try:
        import langgraph.graph  # noqa: F401  (imported up front: its 1 s import is not timed)
        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: F401
    except ImportError:
        print("LangGraph is not installed: run  .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        raise SystemExit(2) from None

    meta = {
        "nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "versions": _versions(), "n": n, "n_long": n_long, "width": width, "rounds": rounds,
        "rounds_long": rounds_long, "rounds_fan": rounds_fan, "workdir": workdir,
    }

    def loop_ok(k: int) -> Callable[[dict[str, Any]], bool]:
        return lambda s: len(s["items"]) == k

    def fan_ok(s: dict[str, Any]) -> bool:
        return s["total"] == width and sorted(s["results"]) == [2 * i for i in range(width)]

    graphs = {k: workloads.wb_loop(k) for k in (1, 50, n, n_long)}
    fan_graph = workloads.wb_fanout(width)

    def loop_variants(k: int, keys: list[str]) -> list[Variant]:
        g, ok = graphs[k], loop_ok(k)
        every = {
            "wb_off": Variant("wb_off", "workbench, no store (recording off)", "—",
                              lambda p: wb_sample(g, ok, None, p)),
            "wb_journal": Variant("wb_journal", "workbench + TraceStore (journal)", "kill -9",
                                  lambda p: wb_sample(g, ok, "journal", p)),
            "wb_fsync": Variant("wb_fsync", "workbench + TraceStore(fsync=True)", "power loss",
                                lambda p: wb_sample(g, ok, "fsync", p)),
            "lg_none": Variant("lg_none", "LangGraph, no checkpointer", "—",
                               lambda p: lg_sample("none", "loop", k, ok, p)),
            "lg_memory": Variant("lg_memory", "LangGraph + InMemorySaver", "— (in memory)",
                                 lambda p: lg_sample("memory", "loop", k, ok, p)),
            "lg_sqlite": Variant("lg_sqlite", 'LangGraph + SqliteSaver, durability="sync"', "power loss",
                                 lambda p: lg_sample("sqlite", "loop", k, ok, p)),
        }
        if fleet is not None:
            every["wb_lake"] = Variant("wb_lake", "workbench + DuckLake on PostgreSQL (journal)", "kill -9",
                                       lambda p: wb_sample(g, ok, "journal", p, fleet.location()))
        return [every[key] for key in keys if key in every]

    all_loop = ["wb_off", "wb_journal", "wb_fsync", "wb_lake", "lg_none", "lg_memory", "lg_sqlite"]
    fan = _fan_variants(fan_graph, width, fan_ok)
    out: dict[str, Any] = {"meta": meta, "labels": {v.key: (v.label, v.durable)
                                                     for v in loop_variants(n, all_loop) + fan}}

    # Warm-up: every code path once (imports, DuckDB's first statements, LangGraph compiles).
    if only & {"w1", "flatness"}:
        for v in loop_variants(50, all_loop if "w1" in only else ["wb_off", "wb_journal", "lg_none"]):
            v.fn(_fresh_path(workdir, "warmup-" + v.key))
    if "fanout" in only:
        for v in fan:
            v.fn(_fresh_path(workdir, "warmup-" + v.key))

    if "w1" in only:
        out["w1"] = run_rounds(loop_variants(n, all_loop), rounds, workdir, f"W1 {n:,} steps")
        out.update(_storage(workdir, graphs, n, n_long, loop_ok))

    if "flatness" in only:
        flat = ["wb_off", "wb_journal", "lg_none"]
        out["flat"] = flat_rounds(loop_variants(n, flat), loop_variants(n_long, flat), n_long // n,
                                  rounds_long, workdir)

    if "fanout" in only:
        out["fan"] = run_rounds(fan, rounds_fan, workdir, f"fan-out {width}")
    return out


def _storage(workdir: str, graphs: dict[int, Any], n: int, n_long: int,
             loop_ok: Callable[[int], Callable[[dict[str, Any]], bool]]) -> dict[str, Any]:
    """File sizes and stored payload: a 1-step baseline, an n-step and an n_long-step run."""
    base: dict[str, Any] = {
        "wb": wb_sample(graphs[1], loop_ok(1), "journal", p := _fresh_path(workdir, "base-wb")).file_bytes,
        "lg": lg_sample("sqlite", "loop", 1, loop_ok(1), q := _fresh_path(workdir, "base-lg")).file_bytes,
    }
    base_stats = {"wb": wb_storage_stats(p + ".duckdb"), "lg": lg_storage_stats(q + ".sqlite")}
    # Storage stats of one full run of each.
    p = _fresh_path(workdir, "stats-wb")
    wb_sample(graphs[n], loop_ok(n), "journal", p)
    q = _fresh_path(workdir, "stats-lg")
    lg_sample("sqlite", "loop", n, loop_ok(n), q)
    stats: dict[str, Any] = {"wb": wb_storage_stats(p + ".duckdb"), "lg": lg_storage_stats(q + ".sqlite")}
    p = _fresh_path(workdir, "stats-wb-long")
    long_sample = wb_sample(graphs[n_long], loop_ok(n_long), "journal", p)
    stats["wb_long"] = wb_storage_stats(p + ".duckdb")
    stats["wb_long_bytes"] = long_sample.file_bytes
    return {"base": base, "base_stats": base_stats, "stats": stats}


def flat_rounds(short: list[Variant], long: list[Variant], repeat: int, rounds: int,
                workdir: str) -> dict[str, list[dict[str, float]]]:
    """Per round and variant (order rotated each round): ``repeat`` short runs back to back,
    then one long run of ``repeat`` times the steps — the same number of steps, so both halves
    are exposed to the machine's load alike (a median of short runs alone would pick the ones
    no other process interrupted, and make a long run look slower per step than it is).
    Per round: the long run's time per step over the short runs' (wall and CPU time)."""
    out: dict[str, list[dict[str, float]]] = {v.key: [] for v in short}
    pairs = list(zip(short, long, strict=True))
    for r in range(rounds):
        for s, lv in pairs[r % len(pairs):] + pairs[:r % len(pairs)]:
            shorts = [s.fn(_fresh_path(workdir, s.key)) for _ in range(repeat)]
            big = lv.fn(_fresh_path(workdir, lv.key))
            wall_short = sum(x.run_s for x in shorts) / repeat
            cpu_short = sum(x.cpu_s for x in shorts) / repeat
            out[s.key].append({"short_s": wall_short, "long_s": big.run_s, "wall": big.run_s / repeat / wall_short,
                               "cpu": big.cpu_s / repeat / cpu_short, "close_s": big.close_s,
                               "recorded": float(big.file_bytes is not None)})
        print(f"  flatness: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return out


def _fan_variants(graph: Any, width: int, ok: Callable[[dict[str, Any]], bool]) -> list[Variant]:
    return [
        Variant("fan_wb_off", "workbench, no store", "—", lambda p: wb_sample(graph, ok, None, p)),
        Variant("fan_wb_journal", "workbench + TraceStore (journal)", "kill -9",
                lambda p: wb_sample(graph, ok, "journal", p)),
        Variant("fan_lg_none", "LangGraph Send, no checkpointer", "—",
                lambda p: lg_sample("none", "fan", width, ok, p)),
        Variant("fan_lg_sqlite", 'LangGraph Send + SqliteSaver "sync"', "power loss",
                lambda p: lg_sample("sqlite", "fan", width, ok, p)),
    ]


def _report(res: dict[str, Any]) -> str:
    meta, w1 = res["meta"], res.get("w1")
    out: list[str] = []
    v = meta["versions"]
    out.append(
        f"machine: {meta['nproc']} CPUs, Python {meta['python']}, {meta['platform']}\n"
        f"versions: workbench {v['agent-workbench']}, duckdb {v['duckdb']}, langgraph {v['langgraph']}, "
        f"langgraph-checkpoint-sqlite {v['langgraph-checkpoint-sqlite']}\n"
        f"load average at start {meta['load_start'][0]:.2f}, at end {meta['load_end'][0]:.2f}; "
        f"total {meta['wall_s']:.0f} s"
    )

    if w1:
        out.append(_report_w1(res))
    flat: list[tuple[str, float]] = []
    if res.get("flat"):
        text, flat = _report_flat(res)
        out.append(text)
    fan_ratio = None
    if res.get("fan"):
        text, fan_ratio = _report_fan(res)
        out.append(text)
    from bench.concurrency import report as concurrency_report
    from bench.targets import report as targets_report

    if res.get("concurrency"):
        out.append(concurrency_report(res.get("concurrency"), res.get("visibility")))
    out.append(targets_report(res, flat, fan_ratio))
    return "\n".join(out)


def _report_w1(res: dict[str, Any]) -> str:
    meta, w1, labels = res["meta"], res["w1"], res["labels"]
    n, n_long = meta["n"], meta["n_long"]
    out: list[str] = []
    lg_none, lg_sqlite = w1["lg_none"], w1["lg_sqlite"]
    rows = []
    for key, samples in w1.items():
        run = [s.run_s / n * 1e6 for s in samples]
        total = [(s.run_s + s.close_s) / n * 1e6 for s in samples]
        close = [s.close_s * 1e3 for s in samples]
        has_file = samples[0].file_bytes is not None
        label, durable = labels[key]
        rows.append([
            label, durable, us(med(run)), spread(run, 1), f"{med(close):,.0f}" if has_file else "—",
            us(med(total)),
            f"{paired_ratio(samples, lg_none):.2f}", f"{paired_ratio(samples, lg_sqlite):.2f}",
        ])
    out.append(
        f"\nW1: {n:,}-step loop appending one string per step — median of {meta['rounds']} interleaved rounds\n"
        + table(["variant", "survives", "µs/step", "range", "close ms", "µs/step incl. close",
                 "× LG none", "× LG sqlite"], rows)
    )
    ratio = paired_ratio(w1["wb_journal"], lg_none)
    verdict = "MET" if ratio <= 0.5 else "NOT MET"
    with_close = med([(a.run_s + a.close_s) / b.run_s for a, b in zip(w1["wb_journal"], lg_none, strict=True)])
    out.append(
        f"target (issue 2 §8): durable per-step ≤ 0.5 × LangGraph without checkpointer → "
        f"workbench+journal is {ratio:.2f}× → {verdict} (run + close, amortized per step: {with_close:.2f}×)"
    )

    # Storage
    st, base, bs = res["stats"], res["base"], res["base_stats"]
    wb_sizes = [s.file_bytes for s in w1["wb_journal"]]
    lg_sizes = [s.file_bytes for s in w1["lg_sqlite"]]
    wb_size, lg_size = int(med(wb_sizes)), int(med(lg_sizes))
    long_per = (st["wb_long_bytes"] - base["wb"]) / n_long
    lg_payload = st["lg"]["checkpoint_bytes"] + st["lg"]["write_bytes"]
    lg_base_payload = bs["lg"]["checkpoint_bytes"] + bs["lg"]["write_bytes"]
    rows = [
        ["workbench DuckDB file", f"{base['wb']:,}", f"{wb_size:,}", f"{(wb_size - base['wb']) / n:,.0f}",
         f"{st['wb']['change_rows']:,}", f"{st['wb']['change_value_bytes']:,}",
         f"{(st['wb']['change_value_bytes'] - bs['wb']['change_value_bytes']) / n:.1f}"],
        [f"workbench DuckDB file, {n_long:,} steps", f"{base['wb']:,}", f"{st['wb_long_bytes']:,}",
         f"{long_per:,.0f}", f"{st['wb_long']['change_rows']:,}", f"{st['wb_long']['change_value_bytes']:,}",
         f"{(st['wb_long']['change_value_bytes'] - bs['wb']['change_value_bytes']) / n_long:.1f}"],
        ["LangGraph SqliteSaver file", f"{base['lg']:,}", f"{lg_size:,}", f"{(lg_size - base['lg']) / n:,.0f}",
         f"{st['lg']['checkpoint_rows'] + st['lg']['write_rows']:,}",
         f"{lg_payload:,}", f"{(lg_payload - lg_base_payload) / n:,.1f}"],
    ]
    out.append(
        f"\nStorage: file size after close ({n:,}-step run unless noted) minus the same store after a 1-step run\n"
        + table(["store", "1 step bytes", "N steps bytes", "bytes/step", "state rows", "state payload bytes",
                 "payload bytes/step"], rows)
        + "\n(DuckDB files grow in 256 KiB blocks: 0 means the run fit in blocks the 1-step file already had;"
        " the longer run bounds it)"
        + "\n(state rows/payload: workbench = rows and sum(length(value::VARCHAR)) of state_changes;"
        " LangGraph = checkpoints + writes rows and blob bytes)"
        + f"\nSqliteSaver connection: journal_mode={st['lg']['journal_mode']}, synchronous={st['lg']['synchronous']}"
        " (2 = FULL: every commit is fsynced)"
    )
    return "\n".join(out)


def _report_flat(res: dict[str, Any]) -> tuple[str, list[tuple[str, float]]]:
    meta, labels, flat = res["meta"], res["labels"], res["flat"]
    n, n_long = meta["n"], meta["n_long"]
    rows = []
    ratios: list[tuple[str, float]] = []
    for key, rounds in flat.items():
        short = med([r["short_s"] / n * 1e6 for r in rounds])
        long = med([r["long_s"] / n_long * 1e6 for r in rounds])
        wall, cpu = med([r["wall"] for r in rounds]), med([r["cpu"] for r in rounds])
        label, _ = labels[key]
        rows.append([label, us(short), us(long), f"{wall:.2f}", f"{min(r['wall'] for r in rounds):.2f}–"
                     f"{max(r['wall'] for r in rounds):.2f}", f"{cpu:.2f}",
                     f"{med([r['close_s'] for r in rounds]):.1f}" if rounds[0]["recorded"] else "—"])
        if key.startswith("wb_"):
            ratios.append((label, wall))
    repeat = n_long // n
    text = (f"\nFlatness: µs/step of one {n_long:,}-step run vs {repeat} runs of {n:,} steps, back to back in "
            f"the same round (median of {meta['rounds_long']} rounds; ratios per round)\n"
            + table(["variant", f"{n:,} steps", f"{n_long:,} steps", "ratio", "range", "CPU ratio", "close s"],
                    rows))
    return text, ratios


def _report_fan(res: dict[str, Any]) -> tuple[str, float]:
    meta, labels, fan = res["meta"], res["labels"], res["fan"]
    width = meta["width"]
    out: list[str] = []
    rows = []
    for key, samples in fan.items():
        run = [s.run_s * 1e3 for s in samples]
        close = [s.close_s * 1e3 for s in samples]
        label, durable = labels[key]
        start = [s.extra["journal_start_s"] * 1e3 for s in samples if "journal_start_s" in s.extra]
        rows.append([label, durable, f"{med(run):.1f}", spread(run, 1),
                     f"{med(close):.1f}" if samples[0].file_bytes is not None else "—",
                     f"{med(start):.1f}" if start else "—",
                     f"{paired_ratio(samples, fan['fan_lg_none']):.2f}"])
    out.append(
        f"\nFan-out: {width} Send branches + join, per invoke (median of {meta['rounds_fan']} rounds)\n"
        + table(["variant", "survives", "ms/invoke", "range", "close ms", "journal start ms", "× LG none"], rows)
        + "\n(journal start: the store's journal file and writer thread, started before the timed invoke;"
        " once per process and store)"
    )
    fan_ratio = paired_ratio(fan["fan_wb_journal"], fan["fan_lg_none"])
    out.append(f"target (issue 11): fan-out with recording ≤ 0.25 × LangGraph without checkpointer → "
               f"{fan_ratio:.2f}× → {'MET' if fan_ratio <= 0.25 else 'NOT MET'}")
    return "\n".join(out), fan_ratio
