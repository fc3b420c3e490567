"""Export runs to a portable JSON-lines file, and import such files into another trace store.

The file (``*.jsonl``) is plain data, documented in docs/sql.md: a header line
``{"format": "workbench-trace", "version": 1, "schema_version": 3, "runs": [...]}`` and then one
line per stored row, ``{"table": "runs", "row": {...}}``, with timestamps as epoch microseconds
(UTC) and JSON columns as JSON. Importing validates every line against the schema before writing
anything, never executes anything from the file, and is idempotent: runs already in the store
are skipped, and a run held by several files (or listed twice) is imported once. A malformed or
hostile file, or two files holding different versions of one run, is refused with a one-line
reason and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from workbench import codec
from workbench.errors import InputError, SerializationError
from workbench.printable import json_safe
from workbench.runtime.types import run_id_problem
from workbench.store.schema import SCHEMA_VERSION
from workbench.store.store import RunsAddedMeanwhile, TraceStore
from workbench.store.tables import INSERTS, NOT_NULL
from workbench.transfer_checks import check_row

FORMAT = "workbench-trace"
VERSION = 1
MAX_LINE_BYTES = 64 * 1024 * 1024

# file table name -> journal record kind (which knows the base table and its columns)
TABLE_KINDS = {
    "runs": "run", "steps": "task", "state_changes": "change", "supersteps": "plan",
    "llm_calls": "llm", "interrupts": "interrupt", "events": "event",
}


def _select(kind: str) -> str:
    table, cols = INSERTS[kind]
    exprs = []
    for name, t in cols:
        if t == "TS":
            exprs.append(f'epoch_us("{name}")')
        elif t == "JSON":
            exprs.append(f'"{name}"::VARCHAR')
        else:
            exprs.append(f'"{name}"')
    return f"SELECT {', '.join(exprs)} FROM {table} WHERE run_id = ?"


def export_runs(store: TraceStore, run_ids: list[str], path: str) -> list[str]:
    """Write the runs (with the ancestors forks share history with) to ``path``; return the ids."""
    for rid in run_ids:
        if "/" in rid:  # a subgraph run is imported with its root run, never alone
            root = rid.split("/", 1)[0]
            raise InputError(f"{rid} is a subgraph run of run {root}: export {root} (its subgraph runs go with it)")
    _check_target(store, path)
    wanted: list[str] = []
    for rid in run_ids:
        for ancestor, _ in reversed(store.lineage(rid)):
            if ancestor not in wanted:
                wanted.append(ancestor)
    # The subgraph runs under each (child ids extend their caller's), with what they share history with.
    for rid in list(wanted):
        for (child,) in store._query("SELECT run_id FROM wb_runs WHERE starts_with(run_id, ? || '/') "
                                    "ORDER BY length(run_id), run_id", [rid]):
            for ancestor, _ in reversed(store.lineage(child)):
                if ancestor not in wanted:
                    wanted.append(ancestor)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--to {path} is a folder; name the file to write, e.g. {os.path.join(path, 'runs.jsonl')}")
    if not os.path.isdir(folder):
        raise InputError(f"--to {path}: folder {folder} does not exist; create it first")
    # Written beside the target under a name of its own, then moved into place: the target is
    # whole or untouched, and a failed export leaves nothing behind. The name carries the
    # process id: what a killed export left (SIGKILL, SIGTERM) is removed by the next one.
    _remove_dead_exports(folder, os.path.basename(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"--to {path}: cannot write in {folder} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            header = {"format": FORMAT, "version": VERSION, "schema_version": SCHEMA_VERSION, "runs": wanted}
            fh.write(json.dumps(header) + "\n")
            for rid in wanted:
                for table, kind in TABLE_KINDS.items():
                    _, cols = INSERTS[kind]
                    for values in store._query(_select(kind), [rid]):
                        row = {}
                        for (name, t), v in zip(cols, values, strict=True):
                            row[name] = json.loads(v) if t == "JSON" and v is not None else v
                        fh.write(json_safe(json.dumps({"table": table, "row": row}, ensure_ascii=False,
                                                      default=str)) + "\n")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:  # a failed export leaves nothing behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"--to {path}: cannot write it ({exc.strerror or exc}); nothing was written") from None
        raise
    return wanted


def _remove_dead_exports(folder: str, name: str) -> None:
    """Remove ``NAME.PID.*.tmp`` files in ``folder`` whose process is gone (a killed export's)."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    prefix = name + "."
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive: an export running now
        except ProcessLookupError:
            pass
        except OSError:  # another user's process: not ours to judge
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, entry))


def _check_target(store: TraceStore, path: str) -> None:
    """Refuse to write over the store itself (its file, write-ahead log or spool) or over a file
    that is not an export: a mistyped ``--to`` must not destroy a trace store or a graph file.
    An earlier export, or an empty file, is replaced."""
    target = os.path.realpath(path)
    spool = getattr(store.backend, "spool", None)
    local = os.path.realpath(store.path) if os.path.exists(store.path) else None
    if local is not None and target in (local, f"{local}.wal", f"{local}.journal"):
        raise InputError(f"--to {path} is the trace store's own file; name a new file, e.g. runs.jsonl")
    if spool is not None and (target + os.sep).startswith(os.path.realpath(spool.root) + os.sep):
        raise InputError(f"--to {path} is inside the trace store's spool; name a file elsewhere, e.g. runs.jsonl")
    if not os.path.isfile(target) or os.path.getsize(target) == 0:
        return
    try:
        with open(target, "rb") as fh:
            first = fh.readline(4096)
        header = json.loads(first)
    except (OSError, ValueError):
        header = None
    if not (isinstance(header, dict) and header.get("format") == FORMAT):
        raise InputError(f"--to {path} exists and is not a workbench export, so it is not replaced; "
                         "name a new file, or move that one away first")


def _umask() -> int:
    """This process's umask (mkstemp makes its file private; the export gets the usual mode).
    Read, not set and put back: ``os.umask`` changes it for every thread meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022



# Timestamps travel as epoch microseconds; keep them within years 1970..9999.
_MAX_TS = 253_402_300_799_000_000


def _check_value(where: str, name: str, sql_type: str, value: Any, required: bool) -> Any:
    if value is None:
        if required:
            raise InputError(f"{where}: column {name!r} must not be null")
        return None
    if sql_type == "VARCHAR":
        if not isinstance(value, str):
            raise InputError(f"{where}: column {name!r} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{where}: column {name!r} holds text that is not valid Unicode (a lone surrogate)") \
                from None
        return value
    if sql_type in ("INTEGER", "BIGINT", "TS"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{where}: column {name!r} must be an integer")
        if sql_type == "BIGINT" and not -(2**63) <= value < 2**63:
            raise InputError(f"{where}: column {name!r} is out of range")
        if sql_type == "INTEGER" and not -(2**31) <= value < 2**31:
            raise InputError(f"{where}: column {name!r} is out of range")
        if sql_type == "TS" and not 0 <= value <= _MAX_TS:
            raise InputError(f"{where}: timestamp {name!r} is out of range")
        return value
    if sql_type == "BOOLEAN":
        if not isinstance(value, bool):
            raise InputError(f"{where}: column {name!r} must be true or false")
        return value
    if sql_type == "DOUBLE":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value \
                or value in (float("inf"), float("-inf")):
            raise InputError(f"{where}: column {name!r} must be a finite number")
        return float(value)
    # JSON: any JSON value the store can hold (no NaN, valid Unicode, within the size and
    # nesting limits), stored as its text.
    try:
        return codec.dumps(value, name)
    except SerializationError as exc:
        raise InputError(f"{where}: {exc}") from None


# What a row's status may be (what workbench writes): anything else would be shown as it is
# and read by no rule.
STATUSES = {
    "run": frozenset({"running", "waiting", "paused", "completed", "failed", "superseded"}),
    "task": frozenset({"completed", "failed", "interrupted", "cancelled", "closed"}),
}


def _check_shape(where: str, table: str, kind: str, row: dict[str, Any]) -> None:
    """What the commands read out of a row's JSON columns and names has the shape workbench
    writes: a hand-edited file whose config says ``"max_steps": "lots"`` imported, then made
    ``fork`` record a run and crash (an internal error), ``replay`` and ``show`` too."""
    def bad(column: str, what: str) -> InputError:
        return InputError(f"{where}: run {row.get('run_id')!r}: {table} column {column!r} {what}")

    def load(column: str) -> Any:
        text = row.get(column)
        return None if text is None else json.loads(text)

    if kind == "run":
        versions = load("node_versions")
        if versions is not None and not (isinstance(versions, dict)
                                         and all(isinstance(v, str) for v in versions.values())):
            raise bad("node_versions", "must be an object of node name to version text")
        config = load("config")
        if config is not None and not isinstance(config, dict):
            raise bad("config", "must be an object")
        config = config or {}
        for key in ("max_steps", "first_step"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise bad("config", f"holds {key} {value!r}: a whole number of at least 1, or null")
        for key in ("break_before", "break_after"):
            value = config.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise bad("config", f"holds {key} {value!r}: a list of node names")
        if config.get("paused") is not None and not isinstance(config["paused"], dict):
            raise bad("config", "holds 'paused' that is not an object")
        if row.get("relation") not in (None, "fork", "continuation"):
            raise bad("relation", f"is {row['relation']!r}: 'fork', 'continuation' or null")
    elif kind == "change":
        if row["op"] not in ("set", "extend"):
            raise bad("op", f"is {row['op']!r}: 'set' or 'extend'")
        if row["op"] == "extend" and not isinstance(load("value"), list):
            raise bad("value", "of an 'extend' change must be a list")
    elif kind == "plan":
        tasks, joins = load("tasks"), load("joins")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("node"), str)
                                                  for t in tasks):
            raise bad("tasks", 'must be a list of {"node": NAME, ...} objects')
        # Resuming and forking copy each entry as a list (planner.Planner._next).
        if joins is not None and not (isinstance(joins, dict) and all(isinstance(v, list) for v in joins.values())):
            raise bad("joins", "must be an object of lists, or null")
    elif kind == "task":
        goto = load("goto")
        # A resumed step reads each destination as a node name or a Send {"node": NAME, "arg": ...}.
        if goto is not None and not (isinstance(goto, list) and all(
                isinstance(g, str) or (isinstance(g, dict) and isinstance(g.get("node"), str)) for g in goto)):
            raise bad("goto", 'must be a list of node names or {"node": NAME, ...} objects, or null')
    elif kind == "llm":
        _check_call_shape(row, bad, load)


def _check_call_shape(row: dict[str, Any], bad: Callable[[str, str], InputError], load: Callable[[str], Any]
                      ) -> None:
    """A model call's answer is the assistant message (show, diff, the workbench and a replay
    read its ``content``), its request a list of message objects, its parameters an object: a
    response of ``5`` imported, then ``show`` crashed and replay reported a bogus divergence."""
    if row["kind"] not in ("llm", "tool"):
        raise bad("kind", f"is {row['kind']!r}: 'llm' or 'tool'")
    params = load("params")
    if params is not None and not isinstance(params, dict):
        raise bad("params", "must be an object or null")
    if row["kind"] != "llm":  # a tool's arguments and result are any JSON values
        return
    response = load("response")
    if response is not None and not isinstance(response, dict):
        raise bad("response", "of a model call must be an object (the assistant message) or null")
    messages = load("messages")
    if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
        raise bad("messages", "of a model call must be a list of message objects or null")


def read_trace_file(path: str) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """Parse and validate an export file completely; return (run ids, [(kind, row)])."""
    name = os.path.basename(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    now = time.time_ns() // 1000  # timestamps ahead of this (beyond clock skew) are refused
    with fh:
        header_line = fh.readline(MAX_LINE_BYTES + 1)
        try:
            header = json.loads(header_line)
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{name}: not a workbench trace file (the first line is not JSON)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InputError(f"{name}: not a workbench trace file (no '{FORMAT}' header)")
        if header.get("version") != VERSION:
            raise InputError(f"{name}: trace file version {header.get('version')!r} is not supported "
                             f"(this workbench reads version {VERSION})")
        runs = header.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            raise InputError(f"{name}: header 'runs' must be a list of run ids")
        schema = header.get("schema_version", SCHEMA_VERSION)
        if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SCHEMA_VERSION:
            raise InputError(f"{name}: written for trace store schema {schema!r}; this workbench reads schemas "
                             f"1..{SCHEMA_VERSION} (a newer workbench made it: import it there)")
        for lineno, raw in enumerate(fh, start=2):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"{name}:{lineno}: line longer than {MAX_LINE_BYTES} bytes")
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"{name}:{lineno}: not valid JSON") from None
            if not isinstance(item, dict) or set(item) != {"table", "row"}:
                raise InputError(f"{name}:{lineno}: expected {{\"table\": ..., \"row\": {{...}}}}")
            table, row = item["table"], item["row"]
            kind = TABLE_KINDS.get(table) if isinstance(table, str) else None
            if kind is None:
                raise InputError(f"{name}:{lineno}: unknown table {table!r}")
            if not isinstance(row, dict):
                raise InputError(f"{name}:{lineno}: row must be an object")
            _, cols = INSERTS[kind]
            types = dict(cols)
            unknown = [k for k in row if k not in types]
            if unknown:
                raise InputError(f"{name}:{lineno}: table {table!r} has no column {unknown[0]!r}")
            clean = {c: _check_value(f"{name}:{lineno}", c, t, row.get(c), c in NOT_NULL[kind]) for c, t in cols}
            allowed = STATUSES.get(kind)
            if allowed is not None and clean.get("status") not in allowed:
                raise InputError(f"{name}:{lineno}: {table} status {clean.get('status')!r} is not one of "
                                 f"{', '.join(sorted(allowed))}")
            _check_shape(f"{name}:{lineno}", table, kind, clean)
            check_row(f"{name}:{lineno}", table, kind, clean, types, now)
            if clean["run_id"] not in runs:
                raise InputError(f"{name}:{lineno}: row of run {clean['run_id']!r}, which the header does not list")
            rows.append((kind, clean))
    listed = {r["run_id"] for k, r in rows if k == "run"}
    missing = [r for r in runs if r not in listed]
    if missing:
        raise InputError(f"{name}: run {missing[0]!r} is listed in the header but has no runs row")
    # Every task ran in a planned step: a step's plan is recorded before its tasks run, and
    # resuming, replaying and forking read it. A file missing one would import a run that
    # cannot be continued and replays wrongly.
    # An attempt may be interrupted (or cancelled) and run on, but it ends once: completed,
    # failed or closed.
    ended: dict[tuple[Any, ...], dict[str, Any]] = {}
    for k, r in rows:
        if k == "task" and r["status"] in ("completed", "failed", "closed"):
            key = (r["run_id"], r["step"], r["task"], r["attempt"])
            if ended.setdefault(key, r) != r:
                raise InputError(f"{name}: run {r['run_id']!r} has attempt {r['attempt']} of task {r['task']} at step "
                                 f"{r['step']} ending twice ({ended[key]['status']} and {r['status']}); the file "
                                 "contradicts itself")
    planned = {(r["run_id"], r["step"]) for k, r in rows if k == "plan"}
    for k, r in rows:
        if k == "task" and (r["run_id"], r["step"]) not in planned:
            raise InputError(f"{name}: run {r['run_id']!r} has a task at step {r['step']} but no plan for that step "
                             "(its 'supersteps' row is missing); the file is incomplete")
    parents = {r["run_id"]: r["parent_run_id"] for k, r in rows if k == "run"}
    for start in parents:
        seen = {start}
        cur = parents.get(start)
        while cur is not None and cur in parents:
            if cur in seen:
                raise InputError(f"{name}: run {start!r} is its own ancestor through parent_run_id (a fork cycle)")
            seen.add(cur)
            cur = parents[cur]
    return runs, rows


def _check_tree(versions: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]], new: set[str]) -> None:
    """Every run imported is a run a user started (an id any run could have) or the run of a
    subgraph inside one imported with it: a file must not attach history, questions or calls to
    a run already in the store (they would show as its own, and take the answers meant for it)."""
    for rid in new:
        path, run_rows = versions[rid]
        name = os.path.basename(path)
        head = next(row for kind, row in run_rows.values() if kind == "run")
        root, caller = head.get("root_run_id"), head.get("caller_run_id")
        if root is None and caller is None:
            problem = run_id_problem(rid)
            if problem:
                raise InputError(f"{name}: {problem}; nothing was imported")
            continue
        if root not in new or caller not in new or not rid.startswith(f"{caller}/"):
            raise InputError(f"{name}: run {rid!r} is a subgraph run of {caller!r} in {root!r}, which this import "
                             "does not bring; a subgraph run is imported with its root run, never added to a "
                             "run already in the store; nothing was imported")
        tail = rid[len(caller) + 1:]
        if not tail or not tail.isprintable() or "/" in tail:
            raise InputError(f"{name}: subgraph run id {rid!r} is not CALLER/STEP.TASK.N; nothing was imported")


def _row_key(kind: str, row: dict[str, Any]) -> str:
    """A row's identity for deduplication: its kind and every value (JSON columns as their text)."""
    return json.dumps([kind, [row[c] for c, _ in INSERTS[kind][1]]], ensure_ascii=False)


_IMPORT_ATTEMPTS = 5


def _plan_import(versions: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]], existing: set[str]
                 ) -> tuple[list[str], list[str], dict[str, list[dict[str, Any]]]]:
    """Which runs to import (and their rows by kind) and which to skip, given the runs the store
    has: a parent neither imported nor present, or a subgraph run without its root, is refused."""
    for rid, (_, run_rows) in versions.items():
        for kind, row in run_rows.values():
            parent = row.get("parent_run_id") if kind == "run" else None
            if parent is not None and parent not in versions and parent not in existing:
                what = "continues" if row.get("relation") == "continuation" else "is a fork of"
                raise InputError(f"run {rid!r} {what} {parent!r}, which is neither in the "
                                 "file nor in this store; export the parent too")
    imported = [rid for rid in versions if rid not in existing]
    skipped = [rid for rid in versions if rid in existing]
    _check_tree(versions, set(imported))
    batch: dict[str, list[dict[str, Any]]] = {}
    for rid in imported:
        for kind, row in versions[rid][1].values():
            if kind == "run" and row["status"] == "running" and not str(row.get("error") or "").startswith(
                    "interrupted"):
                # Exported while a process recorded it: here nobody does. Shown interrupted (it
                # showed "running" for ever), resumable from its last committed step.
                row = {**row, "error": EXPORTED_RUNNING}
            batch.setdefault(kind, []).append(row)
    return imported, skipped, batch


EXPORTED_RUNNING = ("interrupted: exported while a process was recording it; this copy stops at its last "
                    "committed step (continue it with 'workbench resume')")


def import_files(store: TraceStore, paths: list[str]) -> dict[str, list[str]]:
    """Import trace files; returns {"imported": [...], "skipped": [...]} run ids.

    Every file is validated before anything is written; all rows go in one transaction. Each run
    is imported once, however many files hold it (or times a header lists it): identical
    duplicate rows collapse, and a run whose rows differ between two files is refused, naming
    both files. A run is reported either imported or skipped (already in the store), never both.
    """
    parsed = [(path, *read_trace_file(path)) for path in paths]
    # run id -> (the first file holding it, its rows there keyed by identity)
    versions: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]] = {}
    for path, runs, rows in parsed:
        mine: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {rid: {} for rid in runs}
        for kind, row in rows:
            mine[row["run_id"]].setdefault(_row_key(kind, row), (kind, row))
        for rid, run_rows in mine.items():
            heads = [row for kind, row in run_rows.values() if kind == "run"]
            if len(heads) > 1:
                raise InputError(f"{os.path.basename(path)}: run {rid!r} has {len(heads)} different 'runs' rows")
            if rid not in versions:
                versions[rid] = (path, run_rows)
            elif versions[rid][1].keys() != run_rows.keys():
                raise InputError(f"run {rid!r} differs between {versions[rid][0]} and {path}; nothing was "
                                 "imported (import the version you want on its own)")
    import duckdb

    store.flush()
    for attempt in range(_IMPORT_ATTEMPTS):
        existing = {r[0] for r in store._query("SELECT run_id FROM wb_runs")}
        imported, skipped, batch = _plan_import(versions, existing)
        try:
            store.insert_batch(batch, new_runs=imported)
            break
        except (duckdb.Error, RunsAddedMeanwhile) as exc:  # rolled back: nothing was imported
            # Another process imported some of these runs meanwhile (the same file, twice at
            # once): look again; those are skipped now, as runs already in the store are.
            # On a shared lake, two imports committing at once conflict even when their runs
            # differ (store.backend.serialize_import): the loser simply tries again.
            raced = isinstance(exc, RunsAddedMeanwhile) or store.backend.is_conflict(exc) or bool(
                set(imported) & {r[0] for r in store._query("SELECT run_id FROM wb_runs")})
            if not raced or attempt == _IMPORT_ATTEMPTS - 1:
                first = str(exc).strip().splitlines()[0]
                raise InputError(f"import refused, nothing was imported: {first}") from None
    return {"imported": imported, "skipped": skipped}
