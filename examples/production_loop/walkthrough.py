"""From a failed production run to a regression test, end to end, offline.

    python examples/production_loop/walkthrough.py

1. "Production": a service runs the orders graph headless, recording to its own trace file.
   One order fails (a bug in the graph code).
2. The failed run is exported to a portable file.
3. "Laptop": the file is imported into the developer's trace store and replayed — the same
   failure, reproduced without calling any model or tool.
4. The developer fixes the code; replay now reports exactly where behaviour changed.
5. The failed run is forked from the failing step: the fork runs the fixed code and completes.
6. The fork becomes a regression test: `workbench test` passes on the fixed code and fails on
   the buggy one.

Each step runs the real `workbench` command and prints it. Everything happens in a scratch
directory; nothing in this repository is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKBENCH = [os.path.join(os.path.dirname(sys.executable), "workbench")]
if not os.path.exists(WORKBENCH[0]):
    WORKBENCH = [sys.executable, "-m", "workbench"]


# The one-line fix a developer makes in graphs/orders.py.
BUGGY = 'rate = RATES_TO_USD[state["currency"]]  # BUG: "chf" from the web form is lower case'
FIXED = 'rate = RATES_TO_USD[state["currency"].upper()]  # fixed: codes arrive in any case'


def edit(path: str, old: str, new: str) -> None:
    """Apply a one-line edit to a file, as the developer would in their editor."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if old not in text:
        raise SystemExit(f"{path} does not contain the expected line: {old}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(old, new))
    print(f"\n(edited {os.path.basename(path)}: {new.strip()})")


def sh(*args: str, cwd: str, check_codes: tuple[int, ...] = (0,)) -> str:
    print(f"\n$ workbench {' '.join(args)}")
    proc = subprocess.run([*WORKBENCH, *args], cwd=cwd, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).rstrip()
    print(out)
    print(f"(exit {proc.returncode})")
    if proc.returncode not in check_codes:
        raise SystemExit(f"unexpected exit code {proc.returncode}")
    return proc.stdout


def production(prod: str) -> str:
    """A headless service: the library, its own trace file, no UI. Returns the failed run's id."""
    sys.path.insert(0, prod)
    from workbench import Runner, TraceStore
    from workbench.loader import load_graph

    os.chdir(prod)
    graph = load_graph("orders")
    failed = ""
    with TraceStore(os.path.join(prod, "traces", "service.duckdb")) as store:
        for order in (
            {"order_id": "A-1", "note": "Item arrived broken, refund please", "currency": "EUR", "amount": 40.0},
            {"order_id": "A-2", "note": "Charged twice on my invoice", "currency": "chf", "amount": 25.0},
        ):
            result = Runner(graph, store).run(order)
            print(f"production: order {order['order_id']} -> run {result.run_id} {result.status}"
                  + (f" ({result.error})" if result.error else ""))
            if result.status == "failed":
                failed = result.run_id
    return failed


def main() -> None:
    root = tempfile.mkdtemp(prefix="workbench-loop-")
    prod, laptop = os.path.join(root, "production"), os.path.join(root, "laptop")
    for d in (prod, laptop):
        os.makedirs(os.path.join(d, "graphs"))
        os.makedirs(os.path.join(d, "traces"))
        shutil.copy(os.path.join(HERE, "orders.py"), os.path.join(d, "graphs", "orders.py"))
    print(f"scratch directory: {root}")

    print("\n== 1. production run fails")
    failed = production(prod)

    print("\n== 2. export the failed run")
    export = os.path.join(root, "failed-run.jsonl")
    sh("export", failed, "--to", export, "--db", "traces/service.duckdb", cwd=prod)

    print("\n== 3. import on the laptop and replay it: same failure, no model or tool called")
    sh("import", export, cwd=laptop)
    sh("show", failed, cwd=laptop)
    sh("replay", failed, cwd=laptop)

    print("\n== 4. fix the code; replay shows where behaviour now differs")
    graph_file = os.path.join(laptop, "graphs", "orders.py")
    edit(graph_file, BUGGY, FIXED)
    sh("replay", failed, cwd=laptop, check_codes=(4,))

    print("\n== 5. fork from the failing step with the fixed code")
    out = sh("fork", failed, "--from-failure", "--json", cwd=laptop)
    import json

    fork = json.loads(out)["run_id"]
    sh("diff", failed, fork, cwd=laptop)

    print("\n== 6. keep the fork as a regression test")
    sh("test", fork, cwd=laptop)
    edit(graph_file, FIXED, BUGGY)
    print("\n(the bug comes back...)")
    sh("test", fork, cwd=laptop, check_codes=(1,))
    print(f"\nDone. Everything is in {root}.")


if __name__ == "__main__":
    main()
