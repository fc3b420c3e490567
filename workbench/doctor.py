"""``workbench doctor``: is a trace store whole, and what is waiting in its spool?

Every table is read in full by a separate process, so that damage that crashes the database
engine (see guard.py) is found and named — which table — instead of killing the caller. Then
the spool is listed: journals of live processes, journals left by dead ones (loaded by the next
process that opens the store), and what was set aside as damaged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

TABLES = ["wb_meta", "wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_llm_calls", "wb_interrupts",
          "wb_events", "wb_journals"]

_PROBE = """
import json, sys, time
import duckdb
from workbench.store.database import classify, connect
from workbench.store.spool import Spool
path = sys.argv[1]
tables, views = sys.argv[2:sys.argv.index("--views")], sys.argv[sys.argv.index("--views") + 1:]
spool = Spool(path + ".spool")
deadline = time.monotonic() + 60
foreign_since = None
with spool.waiting(reader=True):
    while True:
        try:
            con = connect(path, read_only=True)
            break
        except duckdb.Error as exc:
            now = time.monotonic()
            if classify(exc) != "locked":
                raise
            # A workbench process hands the file over soon; another program may keep it.
            foreign_since = None if spool.held_by_workbench() else (foreign_since or now)
            if now > deadline or (foreign_since is not None and now - foreign_since >= 2):
                print(json.dumps({"locked": str(exc).strip().splitlines()[0]}), flush=True)
                sys.exit(3)
            time.sleep(0.05)
spool.hold()  # a workbench process has the file open: others wait for it instead of giving up
for t in tables:
    print(json.dumps({"table": t}), flush=True)
    try:
        n = 0
        for _ in con.execute(f"SELECT * FROM {t}").fetchall():
            n += 1
        print(json.dumps({"table": t, "rows": n}), flush=True)
    except duckdb.CatalogException:
        print(json.dumps({"table": t, "missing": True}), flush=True)
    except duckdb.Error as exc:
        print(json.dumps({"table": t, "error": str(exc).strip().splitlines()[0]}), flush=True)
for v in views:
    try:
        con.execute(f"SELECT * FROM {v} LIMIT 0").fetchall()
    except duckdb.Error as exc:
        print(json.dumps({"view": v, "error": str(exc).strip().splitlines()[0]}), flush=True)
"""


@dataclass
class Report:
    """What ``doctor`` found: ``problems`` empty means healthy."""

    path: str
    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "healthy": self.healthy, "tables": self.tables, "problems": self.problems,
                "notes": self.notes}


def examine(path: str) -> Report:
    """Check the store at ``path`` (without changing it)."""
    from workbench.store.spool import Spool, journal_owner

    report = Report(path)
    if not os.path.exists(path):
        report.problems.append(f"{path} does not exist")
        return report
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) < 12 or head[8:12] != b"DUCK":
        report.problems.append(f"{path} is not a DuckDB database (no DuckDB header)")
        return report
    from workbench.sqlquery import DOCUMENTED_VIEWS

    env = {k: v for k, v in os.environ.items()}
    res = subprocess.run([sys.executable, "-c", _PROBE, path, *TABLES, "--views", *DOCUMENTED_VIEWS],
                         capture_output=True, text=True, env=env, timeout=3600)
    current = None
    for line in res.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if "locked" in item:  # in use, not damaged: the same one line as any command
            import duckdb

            from workbench.store.database import explain_open_error

            raise explain_open_error(path, duckdb.IOException(item["locked"]))
        if "view" in item:  # the data is whole; the views are definitions, made again by maintain
            report.problems.append(f"view {item['view']} cannot be read ({item['error']}): run "
                                   f"'workbench maintain --db {path}' to make the views again")
            continue
        current = item["table"]
        if "rows" in item:
            report.tables[current] = item["rows"]
        elif item.get("missing"):
            report.problems.append(f"table {current} is missing: not a workbench trace store, or damaged")
        elif "error" in item:
            report.problems.append(f"table {current} cannot be read: {item['error']}")
    if res.returncode < 0:
        name = signal.Signals(-res.returncode).name
        report.problems.append(f"the database engine crashed ({name}) reading table {current}: the file is damaged")
    elif res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
        report.problems.append(f"the store cannot be opened: {last}")
    spool = Spool(path + ".spool")
    for journal in spool.journal_ids():
        alive = spool.is_alive(journal_owner(journal))
        size = os.path.getsize(spool.journal_path(journal)) if os.path.exists(spool.journal_path(journal)) else 0
        state = "being written by a live process" if alive else "left by a process that stopped: loaded on next open"
        report.notes.append(f"journal {journal} ({size} bytes): {state}")
    if os.path.isdir(spool.damaged):
        for name in sorted(os.listdir(spool.damaged)):
            report.notes.append(f"set aside as damaged: {os.path.join(spool.damaged, name)}")
    return report
