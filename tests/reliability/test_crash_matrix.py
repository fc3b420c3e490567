"""The crash matrix (issue 7): seeded SIGKILL trials, one parametrized test per family.

Families: sequential steps, fan-out, during a model call, during a human answer, during import,
during the writer's flush, during resume, inside subgraphs (a subgraph node's and a node body's
child runs, each checked like the run itself), during ``workbench rm`` (all or nothing).
Each trial kills a process at a point drawn from its
seed among the points an uninterrupted process reaches (crash_driver.py lists the sites: journal
frames, DuckDB statements and commits, the writer's batches, the demo model, node bodies and
tools, any workbench function call), continues from other processes until done, and asserts:

* nothing lost — every whole journal frame a killed process wrote is in the store;
* nothing recorded run twice — no task recorded completed twice, no node recorded completed by a
  killed process run again, each recorded tool or model call's side effect happened exactly once
  and was never made again (the effect log is outside the store);
* the run's state after every step, its plans, tasks, calls and interrupts equal those of an
  uninterrupted run (append keys hold exactly one item per step);
* the store opens; ``workbench runs`` and ``show`` exit 0; no process printed a traceback;
* nothing but the store was written (no stray, temporary or damaged file, no journal left) and,
  for imports, no graph code was run.

How many trials: ``WORKBENCH_CRASH_TRIALS`` per family (default 6: the default test run stays
short); seeds start at ``WORKBENCH_CRASH_SEED`` (default 0). The full matrix, 100 per family::

    WORKBENCH_CRASH_TRIALS=100 WORKBENCH_RELIABILITY_REPORT=crash.json \\
        .venv/bin/pytest tests/reliability/test_crash_matrix.py -m crash_matrix

One trial again: ``WORKBENCH_CRASH_SEED=37 WORKBENCH_CRASH_TRIALS=1 ... -k test_fan_out``.
``WORKBENCH_RELIABILITY_REPORT`` gets a JSON summary per family (trials, kills armed and landed,
failures with their seeds, kill sites, which recovery paths were taken, wall time) under the key
``crash_matrix`` (other keys of an existing file are kept).

The processes are children forked from a server process that imported workbench once, and
litellm too for graphs that call a model (crash_driver.serve); ``WORKBENCH_CRASH_FORK=0`` starts
a fresh interpreter for each instead (slower: litellm's import takes seconds). Each trial's final
``workbench runs`` is the installed command in a fresh interpreter either way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from crash_support import (
    GRAPHS,
    Launcher,
    Trial,
    check_cli_reads,
    check_effects,
    check_nothing_lost,
    check_same_run,
    check_sandbox,
    choose_kill,
    copy_store,
    first_seed,
    read_journals,
    snapshot_run,
    trials_per_family,
)

from workbench.store import TraceStore

# Every trial runs on one xdist worker: the module's fixed cost (the fork server, the uninterrupted
# reference runs, the template stores) is paid once rather than on every worker, and the JSON
# report is one process's tally. The largest group, so --dist loadgroup hands it out first.
pytestmark = [pytest.mark.crash_matrix, pytest.mark.xdist_group("crash_matrix")]

SEEDS = list(range(first_seed(), first_seed() + trials_per_family()))

COUNTER = str(GRAPHS / "counter.py")
FANOUT = str(GRAPHS / "fanout.py")
CHAT = str(GRAPHS / "chat.py")
APPROVAL = str(GRAPHS / "approval.py")
BULK = str(GRAPHS / "bulk.py")
NESTED = str(GRAPHS / "nested.py")
ANSWER = "approved"

# Kill-site menus (a site listed twice is drawn twice as often; crash_driver.py describes them).
SEQUENTIAL = ["py", "py", "frame", "frame", "tool.before", "tool.after", "node.enter", "node.exit", "sql",
              "commit"]
FAN_OUT = ["py", "py.thread", "frame", "frame", "frame", "tool.before", "tool.after", "node.enter", "node.exit",
           "commit.writer"]
MODEL_CALL = ["llm.before", "llm.before", "llm.after", "llm.after", "node.middle", "frame", "py"]
FIRST_RUN = ["py", "py", "frame", "frame", "tool.before", "tool.after", "node.enter", "node.exit", "commit"]
HUMAN = ["py", "py", "sql.main", "commit.main", "commit.claim", "commit.claim", "frame", "tool.before",
         "tool.after", "node.enter", "node.answered", "node.exit", "commit.writer"]
IMPORT = ["py", "py", "sql", "sql", "commit", "commit.other", "commit.load"]
WRITER = ["writer.load", "writer.load", "writer.roll", "commit.writer", "commit.writer", "commit.load", "sql.writer",
          "py.thread", "frame"]
SUBGRAPH = ["py", "py", "frame", "frame", "frame", "tool.before", "tool.after", "node.enter", "node.exit", "sql",
            "commit"]
DELETE = ["py", "py", "sql", "sql", "sql", "commit", "commit", "commit.load"]
RESUME = ["py", "py", "py", "sql.main", "commit.main", "commit.load", "commit.claim", "frame", "tool.before",
          "tool.after"]


# --------------------------------------------------------------------------- the summary


class Tally:
    """Per family: trials, kills, failures, kill sites, wall time (the JSON report)."""

    def __init__(self) -> None:
        self.families: dict[str, dict[str, Any]] = {}

    def family(self, name: str) -> dict[str, Any]:
        return self.families.setdefault(name, {
            "trials": 0, "passed": 0, "failed": 0, "kills_armed": 0, "kills_landed": 0, "processes": 0,
            "records_checked": 0, "effects_redone_unrecorded": 0, "wall_s": 0.0, "sites": Counter(),
            "paths": Counter(), "failures": [],
        })

    def write(self, path: str, started: float) -> None:
        data: dict[str, Any] = {}
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
            except ValueError:
                data = {}
        families = {k: {**v, "sites": dict(sorted(v["sites"].items())), "paths": dict(sorted(v["paths"].items())),
                        "wall_s": round(v["wall_s"], 1)}
                    for k, v in self.families.items()}
        data["crash_matrix"] = {
            "trials_per_family": trials_per_family(),
            "first_seed": first_seed(),
            "fork_server": os.environ.get("WORKBENCH_CRASH_FORK", "1") != "0",
            "wall_s": round(time.monotonic() - started, 1),
            "totals": {k: sum(f[k] for f in families.values())
                       for k in ("trials", "passed", "failed", "kills_armed", "kills_landed", "processes")},
            "families": families,
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    started = time.monotonic()
    yield
    path = os.environ.get("WORKBENCH_RELIABILITY_REPORT")
    if path and TALLY.families:
        TALLY.write(path, started)


@contextmanager
def tallied(trial: Trial) -> Iterator[dict[str, Any]]:
    fam = TALLY.family(trial.family)
    extra: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        yield extra
    except BaseException as exc:
        fam["failed"] += 1
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fam["failures"].append({"seed": trial.seed, "error": f"{type(exc).__name__}: {first}"[:300],
                                "kills": trial.sites})
        raise
    else:
        fam["passed"] += 1
    finally:
        fam["trials"] += 1
        fam["kills_armed"] += trial.armed
        fam["kills_landed"] += trial.kills
        fam["processes"] += len(trial.procs)
        fam["records_checked"] += extra.get("checked", 0)
        fam["effects_redone_unrecorded"] += extra.get("redone", 0)
        fam["sites"].update(trial.sites)
        fam["paths"].update(trial.notes)
        fam["wall_s"] += time.monotonic() - t0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    lau = Launcher(tmp_path_factory.mktemp("crash-launcher"))
    yield lau
    lau.close()


class References:
    """Uninterrupted runs (computed once per module, on first use)."""

    def __init__(self, launcher: Launcher, factory: pytest.TempPathFactory) -> None:
        self.launcher = launcher
        self.factory = factory
        self.cache: dict[str, Any] = {}

    def trial(self, name: str) -> Trial:
        return Trial(f"reference-{name}", 0, self.factory.mktemp(f"ref-{name}"), self.launcher)

    def run(self, graph: str) -> dict[str, Any]:
        """An uninterrupted run of ``graph``: its snapshot and the counts of its process."""
        if graph not in self.cache:
            t = self.trial(Path(graph).stem)
            proc = t.launch({"op": "run", "graph": graph, "db": t.db, "input": {}}, "run", counted=True)
            assert proc.returncode == 0 and proc.result and proc.result["status"] == "completed", proc.describe()
            with TraceStore(t.db) as store:
                snap = snapshot_run(store, proc.result["run_id"])
                children = child_snapshots(store, proc.result["run_id"])
            assert snap["output"] == proc.result["state"]
            self.cache[graph] = {"snapshot": snap, "counts": proc.counts, "children": children}
        return self.cache[graph]  # type: ignore[no-any-return]

    def approval(self) -> dict[str, Any]:
        if "approval" not in self.cache:
            t = self.trial("approval")
            proc = t.launch({"op": "run", "graph": APPROVAL, "db": t.db, "input": {}}, "run", counted=True)
            assert proc.result and proc.result["status"] == "waiting", proc.describe()
            run_id = proc.result["run_id"]
            counts = proc.counts
            res = t.cli("resume", run_id, "--graph", APPROVAL, "--input", json.dumps(ANSWER), "--db", t.db, "--json")
            assert res.returncode == 0 and res.json_out["status"] == "completed", res.describe()
            with TraceStore(t.db) as store:
                snap = snapshot_run(store, run_id)
            assert snap["output"]["answers"] == [ANSWER]
            self.cache["approval"] = {"snapshot": snap, "counts": counts}
        return self.cache["approval"]  # type: ignore[no-any-return]

    def import_source(self) -> dict[str, Any]:
        """A trace file of three runs of graphs/tripwire.py (completed, waiting, answered), the
        per-view row counts of each run in the store it came from, and two target stores: one
        with an unrelated completed run, one with the orphaned journal of a killed run too."""
        if "import" in self.cache:
            return self.cache["import"]  # type: ignore[no-any-return]
        src = self.trial("import-source")
        (src.box / "graphs").mkdir()
        shutil.copy(GRAPHS / "tripwire.py", src.box / "graphs" / "tripwire.py")
        ids = []
        for label, inp in (("done", {}), ("waiting", {"ask": True}), ("answered", {"ask": True})):
            p = src.launch({"op": "run", "graph": "graphs/tripwire.py", "db": src.db, "input": inp}, label)
            assert p.result and p.returncode == 0, p.describe()
            ids.append(p.result["run_id"])
        p = src.cli("resume", ids[2], "--graph", "graphs/tripwire.py", "--input", '"fine"', "--db", src.db, "--json")
        assert p.returncode == 0 and p.json_out["status"] == "completed", p.describe()
        trace = str(src.root / "trace.jsonl")
        p = src.cli("export", *ids, "--to", trace, "--db", src.db)
        assert p.returncode == 0, p.describe()
        with TraceStore(src.db) as store:
            counts = {r: view_counts(store, r) for r in ids}
            rows = {r: run_row(store, r) for r in ids}

        templates = {}
        for kind in ("clean", "orphan"):
            t = self.trial(f"import-target-{kind}")
            if kind == "clean":
                p = t.launch({"op": "run", "graph": COUNTER, "db": t.db, "input": {}}, "unrelated")
                assert p.returncode == 0, p.describe()
                frames: dict[str, Any] = {}
            else:
                p = t.launch({"op": "run", "graph": COUNTER, "db": t.db, "input": {}}, "orphan",
                             {"site": "frame", "nth": 9, "how": "after"})
                assert p.killed, p.describe()
                frames = read_journals(t.db)
            run_id = p.result["run_id"] if p.result else recorded_run_id(t)
            assert run_id is not None
            probe = copy_store(t.db, t.root / "probe")
            with TraceStore(probe) as store:
                expect = snapshot_run(store, run_id)
            templates[kind] = {"db": t.db, "frames": frames, "run_id": run_id, "snapshot": expect}
        self.cache["import"] = {"trace": trace, "runs": ids, "counts": counts, "rows": rows, "templates": templates}
        return self.cache["import"]  # type: ignore[no-any-return]


    def delete_source(self) -> dict[str, Any]:
        """A store holding a run with subgraph runs (graphs/nested.py), a fork of it (sharing its
        history) and an unrelated run: what a ``workbench rm`` trial starts from."""
        if "delete" in self.cache:
            return self.cache["delete"]  # type: ignore[no-any-return]
        t = self.trial("delete-source")
        p = t.launch({"op": "run", "graph": NESTED, "db": t.db, "input": {}}, "run")
        assert p.result and p.result["status"] == "completed", p.describe()
        root = p.result["run_id"]
        f = t.cli("fork", root, "--at", "2", "--graph", NESTED, "--db", t.db, "--json")
        assert f.returncode == 0 and f.json_out["status"] == "completed", f.describe()
        other = t.launch({"op": "run", "graph": COUNTER, "db": t.db, "input": {}}, "unrelated")
        assert other.result and other.result["status"] == "completed", other.describe()
        with TraceStore(t.db) as store:
            doomed = [r for (r,) in store.query("SELECT run_id FROM wb_runs WHERE run_id <> ? ORDER BY run_id",
                                                [other.result["run_id"]])]
            rows = {r: table_rows(store, r) for r in doomed}
            kept = snapshot_run(store, other.result["run_id"])
        assert len(doomed) >= 5, doomed  # the run, its fork, and their subgraph runs
        self.cache["delete"] = {"db": t.db, "root": root, "fork": f.json_out["run_id"], "doomed": doomed,
                                "rows": rows, "other": other.result["run_id"], "kept": kept}
        return self.cache["delete"]  # type: ignore[no-any-return]


def table_rows(store: Any, run_id: str) -> dict[str, int]:
    """How many rows of every base table belong to a run."""
    from workbench.store.tables import INSERTS

    tables = sorted({table for table, _ in INSERTS.values()})
    return {t: store.query(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id])[0][0] for t in tables}


def view_counts(store: Any, run_id: str) -> dict[str, int]:
    views = ("runs", "steps", "state_changes", "supersteps", "llm_calls", "tool_calls", "interrupts", "events")
    return {v: store.query(f"SELECT count(*) FROM {v} WHERE run_id = ?", [run_id])[0][0] for v in views}


def run_row(store: Any, run_id: str) -> dict[str, Any]:
    rows = store.query_dicts("SELECT graph, status, output, input, error, last_step, parent_run_id, fork_step "
                             "FROM runs WHERE run_id = ?", [run_id])
    assert len(rows) == 1
    row = rows[0]
    for col in ("output", "input"):  # JSON: compared as values, not as text
        row[col] = json.loads(row[col]) if row[col] is not None else None
    return row  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def refs(launcher: Launcher, tmp_path_factory: pytest.TempPathFactory) -> References:
    return References(launcher, tmp_path_factory)


# --------------------------------------------------------------------------- driving a run


def recorded_run_id(trial: Trial) -> str | None:
    for records in trial.frames.values():
        for kind, rec in records:
            if kind == "run":
                return str(rec["run_id"])
    return None


def drive_to_completion(trial: Trial, graph: str, counts: dict[str, int], first_menu: list[str] | None,
                        resume_menu: list[str], resume_kills: int, *, until: str = "completed",
                        extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    """Start a run killed at a seeded point (none without ``first_menu``), then resume it from
    new processes (the first ``resume_kills`` of them killed too) until it is ``until``.
    Returns the run id and the final process's result."""

    def run_spec(db: str) -> dict[str, Any]:
        return {"op": "run", "graph": graph, "db": db, "input": {}, **(extra or {})}

    first_kill = choose_kill(trial.rng, counts, first_menu) if first_menu else None
    proc = trial.launch(run_spec(trial.db), "run", first_kill)
    run_id: str | None = None
    for _ in range(12):
        if not proc.killed:
            res = proc.result
            assert res is not None, proc.describe()
            if proc.returncode == 0:
                assert res["status"] == until, proc.describe()
                return str(res["run_id"]), res
            # The killed process had recorded the run's end (or its question): nothing to resume.
            stopped = "already completed" if until == "completed" else "is waiting for input"
            assert stopped in res.get("error", ""), proc.describe()
            trial.notes.append(f"killed after the run was recorded {until}")
            assert run_id is not None
            return run_id, None
        run_id = run_id or recorded_run_id(trial)
        if run_id is None:  # not in a journal: loaded and the journal closed, or never recorded
            listed = check_cli_reads(trial, [])
            run_id = listed[0]["run_id"] if listed else None
        if run_id is None:  # killed before the run was recorded at all: start it again
            trial.notes.append("killed before the run was recorded")
            proc = trial.launch(run_spec(trial.db), "run-again")
            continue

        def resume_spec(db: str, run_id: str = run_id) -> dict[str, Any]:
            return {"op": "resume", "graph": graph, "db": db, "run_id": run_id, **(extra or {})}

        kill = trial.kill_for(resume_spec, resume_menu, "observe-resume") if resume_kills > 0 else None
        resume_kills -= 1
        proc = trial.launch(resume_spec(trial.db), "resume", kill)
    raise AssertionError("the run did not complete after 12 processes")


def final_checks(trial: Trial, ref: dict[str, Any], run_id: str, result: dict[str, Any] | None,
                 extra: dict[str, Any], runs_expected: int = 1) -> None:
    listed = check_cli_reads(trial, [run_id], installed=True)
    assert len(listed) == runs_expected, f"{len(listed)} runs in the store, expected {runs_expected}: {listed}"
    if result is not None:
        assert result["state"] == ref["output"], "the final process's state differs from the uninterrupted run's"
    with TraceStore(trial.db) as store:
        check_same_run(snapshot_run(store, run_id), ref)
        extra["redone"] = check_effects(trial, store, [run_id])
        extra["checked"] = check_nothing_lost(trial, store)
    check_sandbox(trial)


def run_family(family: str, seed: int, tmp_path: Path, launcher: Launcher, refs: References,
               pick_graph: Callable[[Trial], str], first_menu: list[str], resume_menu: list[str],
               resume_kills: Callable[[Trial], int], spec: Callable[[Trial], dict[str, Any]] | None = None) -> None:
    trial = Trial(family, seed, tmp_path, launcher)
    with tallied(trial) as extra:
        graph = pick_graph(trial)
        ref = refs.run(graph)
        kills = resume_kills(trial)
        more = spec(trial) if spec else {}
        run_id, result = drive_to_completion(trial, graph, ref["counts"], first_menu, resume_menu, kills,
                                             extra=more)
        final_checks(trial, ref["snapshot"], run_id, result, extra)


# --------------------------------------------------------------------------- the families


@pytest.mark.parametrize("seed", SEEDS)
def test_sequential_steps(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    run_family("sequential", seed, tmp_path, launcher, refs, lambda t: COUNTER, SEQUENTIAL, SEQUENTIAL,
               lambda t: t.rng.choice([0, 1, 1, 2]))


@pytest.mark.parametrize("seed", SEEDS)
def test_fan_out(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    run_family("fan_out", seed, tmp_path, launcher, refs, lambda t: FANOUT, FAN_OUT, FAN_OUT,
               lambda t: t.rng.choice([0, 1, 1, 2]))


@pytest.mark.parametrize("seed", SEEDS)
def test_model_call(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    run_family("model_call", seed, tmp_path, launcher, refs, lambda t: CHAT, MODEL_CALL, MODEL_CALL,
               lambda t: t.rng.choice([0, 1, 1, 2]))


@pytest.mark.parametrize("seed", SEEDS)
def test_writer_flush(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    def rolling(t: Trial) -> dict[str, Any]:  # half the trials start a fresh journal after ~256 KB
        roll = t.rng.random() < 0.5
        t.notes.append("journals rolled at 256 KB" if roll else "journals not rolled")
        return {"roll_bytes": 256 * 1024} if roll else {}

    run_family("writer_flush", seed, tmp_path, launcher, refs, lambda t: BULK, WRITER, WRITER,
               lambda t: t.rng.choice([0, 1, 1, 2]), rolling)


@pytest.mark.parametrize("seed", SEEDS)
def test_resume(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    run_family("resume", seed, tmp_path, launcher, refs, lambda t: t.rng.choice([COUNTER, FANOUT, CHAT]),
               SEQUENTIAL, RESUME, lambda t: t.rng.randint(1, 3))


def child_snapshots(store: Any, run_id: str) -> dict[str, Any]:
    """Snapshots of a run's subgraph runs, keyed by where they hang (``/2.0.0``)."""
    rows = store.query("SELECT run_id FROM subgraph_runs WHERE root_run_id = ? ORDER BY run_id", [run_id])
    return {child[len(run_id):]: snapshot_run(store, child) for (child,) in rows}


@pytest.mark.parametrize("seed", SEEDS)
def test_subgraphs(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    """Killed inside a subgraph node's child run or a node body's: each child continues from its
    last committed inner step, and equals an uninterrupted run's, as the root does."""
    trial = Trial("subgraphs", seed, tmp_path, launcher)
    with tallied(trial) as extra:
        ref = refs.run(NESTED)
        run_id, result = drive_to_completion(trial, NESTED, ref["counts"], SUBGRAPH, SUBGRAPH,
                                             trial.rng.choice([0, 1, 1, 2]))
        final_checks(trial, ref["snapshot"], run_id, result, extra)
        with TraceStore(trial.db) as store:
            children = child_snapshots(store, run_id)
            assert sorted(children) == sorted(ref["children"]), f"subgraph runs: {sorted(children)}"
            for where, snap in children.items():
                check_same_run(snap, ref["children"][where])
            extra["redone"] += check_effects(trial, store, [run_id, *(run_id + w for w in children)])


@pytest.mark.parametrize("seed", SEEDS)
def test_human_answer(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    trial = Trial("human_answer", seed, tmp_path, launcher)
    with tallied(trial) as extra:
        ref = refs.approval()
        # Half the trials kill the run before it asks too; it is resumed until it waits.
        first = FIRST_RUN if trial.rng.random() < 0.5 else None
        run_id, _ = drive_to_completion(trial, APPROVAL, ref["counts"], first, FIRST_RUN, trial.rng.choice([0, 1]),
                                        until="waiting")
        ref = ref["snapshot"]
        kills_left = trial.rng.choice([1, 1, 1, 2])
        give_answer = True
        result = None
        for _ in range(10):
            argv = ["resume", run_id, "--graph", APPROVAL, "--db"]
            answer = ["--input", json.dumps(ANSWER)] if give_answer else []

            def spec(db: str, argv: list[str] = argv, answer: list[str] = answer) -> dict[str, Any]:
                return {"op": "cli", "argv": [*argv, db, *answer, "--json"]}

            kill = trial.kill_for(spec, HUMAN, "observe-answer") if kills_left > 0 else None
            kills_left -= 1
            proc = trial.launch(spec(trial.db), "answer" if give_answer else "resume", kill)
            if proc.killed:
                trial.notes.append(f"{'answering' if give_answer else 'resuming'} process killed")
                continue
            if proc.returncode == 0:
                result = proc.json_out
                assert result["status"] == "completed", proc.describe()
                break
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1, proc.describe()
            if "already completed" in lines[0]:  # the killed process had recorded the run's end
                trial.notes.append("killed after the run was recorded completed")
                break
            # The killed process's claim went through: the question is answered, so the same
            # command is refused in one line, and the run continues without --input.
            assert give_answer and "not waiting for input" in lines[0], proc.describe()
            trial.notes.append("killed after the answer was taken: the answer is refused, resume goes on")
            give_answer = False
        else:
            raise AssertionError("the run did not complete after 10 processes")
        with TraceStore(trial.db) as store:
            answers = store.query("SELECT response FROM interrupts WHERE run_id = ?", [run_id])
        assert [json.loads(a) for (a,) in answers] == [ANSWER], f"answers recorded: {answers}"
        final_checks(trial, ref, run_id, result, extra)


@pytest.mark.parametrize("seed", SEEDS)
def test_import(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    trial = Trial("import", seed, tmp_path, launcher)
    with tallied(trial) as extra:
        source = refs.import_source()
        wanted = set(source["runs"])
        template = source["templates"][trial.rng.choice(["clean", "orphan"])]
        copy_store(template["db"], trial.box)
        trial.frames.update(template["frames"])
        marker = trial.root / "tripwire.marker"
        trial.env["CRASH_TRIPWIRE"] = str(marker)
        (trial.box / "graphs").mkdir()
        shutil.copy(GRAPHS / "tripwire.py", trial.box / "graphs" / "tripwire.py")
        trial.expected = ("graphs",)

        def spec(db: str) -> dict[str, Any]:
            return {"op": "cli", "argv": ["import", source["trace"], "--db", db, "--json"]}

        def present() -> set[str]:
            listed = check_cli_reads(trial, [])
            have = {r["run_id"] for r in listed} & wanted
            assert have in (set(), wanted), f"a killed import left some of the file's runs: {sorted(have)}"
            return have

        kill = trial.kill_for(spec, IMPORT, "observe-import")
        proc = trial.launch(spec(trial.db), "import", kill)
        for _ in range(6):
            if proc.killed:
                trial.notes.append(f"killed import left {'all' if present() else 'none'} of the file's runs")
                kill = trial.kill_for(spec, IMPORT, "observe-import") if trial.rng.random() < 0.3 else None
                proc = trial.launch(spec(trial.db), "import-again", kill)
                continue
            assert proc.returncode == 0, proc.describe()
            out = proc.json_out
            assert sorted(out["imported"] + out["skipped"]) == sorted(wanted), out
            if not trial.kills:
                assert sorted(out["imported"]) == sorted(wanted), out
            break
        else:
            raise AssertionError("the import did not finish after 6 processes")
        assert {r["run_id"] for r in check_cli_reads(trial, [], installed=True)} >= wanted
        again = trial.cli("import", source["trace"], "--db", trial.db, "--json", label="import-idempotent")
        assert again.returncode == 0, again.describe()
        assert again.json_out["imported"] == [] and sorted(again.json_out["skipped"]) == sorted(wanted), \
            again.describe()
        for run_id in source["runs"]:
            show = trial.cli("show", run_id, "--db", trial.db, label="show")
            assert show.returncode == 0, show.describe()
        with TraceStore(trial.db) as store:
            for run_id in source["runs"]:
                assert view_counts(store, run_id) == source["counts"][run_id], f"rows of {run_id} differ"
                assert run_row(store, run_id) == source["rows"][run_id], f"run {run_id} differs"
            assert snapshot_run(store, template["run_id"]) == template["snapshot"], "the store's own run changed"
            extra["checked"] = check_nothing_lost(trial, store)
        assert not marker.exists(), f"graph code was run: {marker.read_text()}"
        check_sandbox(trial)


@pytest.mark.parametrize("seed", SEEDS)
def test_delete(seed: int, tmp_path: Path, launcher: Launcher, refs: References) -> None:
    """``workbench rm`` killed mid-delete: the runs (a run, its fork, their subgraph runs) are
    all there as they were, or all gone — never torn; the unrelated run is untouched; running
    the same ``rm`` again completes (or says there is nothing left to delete)."""
    trial = Trial("delete", seed, tmp_path, launcher)
    with tallied(trial) as extra:
        source = refs.delete_source()
        copy_store(source["db"], trial.box)
        argv = ["rm", source["root"], "--with-descendants", "--json"]

        def spec(db: str) -> dict[str, Any]:
            return {"op": "cli", "argv": [*argv, "--db", db]}

        def state() -> str:
            with TraceStore(trial.db) as store:
                rows = {r: table_rows(store, r) for r in source["doomed"]}
                assert snapshot_run(store, source["other"]) == source["kept"], "the unrelated run changed"
            if rows == source["rows"]:
                return "before"
            assert all(sum(c.values()) == 0 for c in rows.values()), f"a killed rm left a torn store: {rows}"
            return "after"

        kill = trial.kill_for(spec, DELETE, "observe-rm")
        proc = trial.launch(spec(trial.db), "rm", kill)
        for _ in range(6):
            if proc.killed:
                where = state()
                trial.notes.append(f"killed rm left the store {where}")
                if where == "after":
                    again = trial.launch(spec(trial.db), "rm-again")
                    assert again.returncode == 2 and "no run" in again.stderr, again.describe()
                    break
                kill = trial.kill_for(spec, DELETE, "observe-rm") if trial.rng.random() < 0.3 else None
                proc = trial.launch(spec(trial.db), "rm-again", kill)
                continue
            assert proc.returncode == 0, proc.describe()
            assert sorted(proc.json_out["deleted"]) == sorted([source["root"], source["fork"]]), proc.json_out
            break
        else:
            raise AssertionError("the delete did not finish after 6 processes")
        assert state() == "after"
        listed = check_cli_reads(trial, [source["other"]], installed=True)
        assert [r["run_id"] for r in listed] == [source["other"]]
        extra["checked"] = len(source["doomed"])
        check_sandbox(trial)


# --------------------------------------------------------------------------- the checks can fail


def test_checks_detect_loss_and_repetition(tmp_path: Path, launcher: Launcher, refs: References) -> None:
    """The matrix's checks are not vacuous: a trial's store and effect log, tampered with after
    the fact, fail them (a lost task row, an appended item twice, a recorded effect made again, a
    node recorded completed by a killed process run again)."""
    import duckdb

    ref = refs.run(COUNTER)["snapshot"]
    trial = Trial("selfcheck", 0, tmp_path, launcher)
    killed = trial.launch({"op": "run", "graph": COUNTER, "db": trial.db, "input": {}}, "run",
                          {"site": "frame", "nth": 12, "how": "after"})
    assert killed.killed
    run_id = recorded_run_id(trial)
    assert run_id is not None
    done = trial.launch({"op": "resume", "graph": COUNTER, "db": trial.db, "run_id": run_id}, "resume")
    assert done.returncode == 0, done.describe()
    with TraceStore(trial.db) as store:
        check_same_run(snapshot_run(store, run_id), ref)
        check_effects(trial, store, [run_id])
        assert check_nothing_lost(trial, store) > 0

    con = duckdb.connect(trial.db)
    con.execute("DELETE FROM wb_tasks WHERE run_id = ? AND step = 3", [run_id])
    con.execute("UPDATE wb_changes SET value = json_array(json_extract(value, '$[0]'), json_extract(value, '$[0]')) "
                "WHERE run_id = ? AND step = 5 AND key = 'items'", [run_id])
    con.close()
    with TraceStore(trial.db) as store:
        with pytest.raises(AssertionError, match="differs"):
            check_same_run(snapshot_run(store, run_id), ref)
        with pytest.raises(AssertionError, match="lost: task record"):
            check_nothing_lost(trial, store)

    with open(trial.effects, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "effect", "key": "tick-2", "nonce": "fx-1-1-00", "pid": done.pid}) + "\n")
    with TraceStore(trial.db) as store, pytest.raises(AssertionError, match="was made again"):
        check_effects(trial, store, [run_id])
    with open(trial.effects, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "exec", "run": run_id, "step": 2, "task": 0, "attempt": 1, "node": "tick",
                             "pid": done.pid}) + "\n")
    with TraceStore(trial.db) as store, pytest.raises(AssertionError, match="ran again"):
        check_effects(trial, store, [])
