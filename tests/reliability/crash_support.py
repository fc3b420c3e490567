"""The test side of the crash matrix (test_crash_matrix.py): starting processes, choosing kill
points, and checking what a trial left behind.

* :class:`Launcher` starts each process of a trial: by default a child forked from a server
  process that imported workbench once (crash_driver.serve; a second server imported litellm too,
  for graphs that call a model), so a trial costs milliseconds of start-up instead of seconds;
  ``WORKBENCH_CRASH_FORK=0`` starts a fresh interpreter for every process instead.
* :class:`Trial` is one seeded trial: a sandbox directory holding the trace store (and nothing
  else), an effect log outside it, the processes it ran, and what the killed ones left in their
  journals.
* :func:`choose_kill` picks a kill point from the counts of an uninterrupted process — the same
  command run on a copy of the store (:meth:`Trial.observe`) — never from a timer.
* :func:`snapshot_run` and the ``check_*`` functions hold the assertions every family shares.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:  # tests/conftest.py's helpers
    sys.path.insert(0, str(REPO / "tests"))

from conftest import cli_env, workbench_cmd  # noqa: E402

HERE = Path(__file__).resolve().parent
GRAPHS = HERE / "graphs"
DRIVER = HERE / "crash_driver.py"
TIMEOUT = 300.0  # a safety net against a hung process, never used to synchronise
NONCE = re.compile(r"fx-\d+-\d+-[0-9a-f]+")


def trials_per_family() -> int:
    return int(os.environ.get("WORKBENCH_CRASH_TRIALS", "6"))


def first_seed() -> int:
    return int(os.environ.get("WORKBENCH_CRASH_SEED", "0"))


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """One finished process of a trial."""

    label: str
    pid: int
    returncode: int
    stdout: str
    stderr: str
    progress: list[str]
    kill: dict[str, Any] | None

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def tagged(self, tag: str) -> Any:
        for line in self.progress:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        return None

    @property
    def result(self) -> dict[str, Any] | None:
        res = self.tagged("RESULT")
        return res if isinstance(res, dict) else None

    @property
    def counts(self) -> dict[str, int]:
        return self.tagged("COUNTS") or {}

    @property
    def json_out(self) -> Any:
        """The CLI's ``--json`` output (stdout)."""
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (f"{self.label} (pid {self.pid}, exit {self.returncode}, kill {self.kill}):\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}")


class ForkServer:
    """One ``crash_driver.serve()`` process and its reply stream."""

    def __init__(self, env: dict[str, str], cwd: Path, *, litellm: bool) -> None:
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import crash_driver; crash_driver.serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, cwd=cwd)
        self._buf = b""
        if litellm:
            self.send({"warm": "litellm"})
            assert self.reply(TIMEOUT) == {"warm": True}

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the crash-matrix fork server died (exit {self.proc.wait()})")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_MODEL_GRAPHS: dict[str, bool] = {}


def calls_a_model(spec: dict[str, Any], cwd: Path) -> bool:
    """Whether the process runs a graph that calls a model (its source uses ``ctx.llm``): the
    graph of a ``run``/``resume``, or a ``.py`` file among a CLI command's arguments."""
    refs = [spec.get("graph"), *spec.get("argv", [])]
    for ref in refs:
        if not isinstance(ref, str) or not ref.split(":")[0].endswith(".py"):
            continue
        path = str(cwd / ref.split(":")[0])  # (an absolute path stays as it is)
        if path not in _MODEL_GRAPHS:
            try:
                _MODEL_GRAPHS[path] = "ctx.llm" in Path(path).read_text(encoding="utf-8")
            except OSError:
                _MODEL_GRAPHS[path] = False
        if _MODEL_GRAPHS[path]:
            return True
    return False


class Launcher:
    """Starts the matrix's processes (see the module docstring) and waits for each to end.

    Two fork servers, started on first use: one that imported litellm too, for processes whose
    graph calls a model, and one without it for the rest: a child forked from the smaller
    process costs less to start and to end, and a run of families without a model call never
    imports litellm."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.fork = os.environ.get("WORKBENCH_CRASH_FORK", "1") != "0"
        self.servers: dict[bool, ForkServer] = {}
        self._n = 0
        self.started = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = cli_env(PYTHONHASHSEED="0", **extra)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def _server(self, litellm: bool) -> ForkServer:
        if litellm not in self.servers:
            self.servers[litellm] = ForkServer(self.env(), self.workdir, litellm=litellm)
        return self.servers[litellm]

    def launch(self, spec: dict[str, Any], *, cwd: Path, logs: Path, label: str,
               env: dict[str, str] | None = None) -> Proc:
        self._n += 1
        self.started += 1
        logs.mkdir(parents=True, exist_ok=True)
        stem = logs / f"{self._n:04d}-{label}"
        out, err, progress = (Path(f"{stem}.{ext}") for ext in ("out", "err", "progress"))
        spec = {**spec, "progress": str(progress)}
        full_env = self.env(**(env or {}))
        if self.fork:
            server = self._server(calls_a_model(spec, cwd))
            server.send({"spec": spec, "cwd": str(cwd), "env": full_env, "stdout": str(out), "stderr": str(err)})
            started = server.reply(TIMEOUT)
            assert started is not None and "pid" in started, started
            pid = int(started["pid"])
            done = server.reply(TIMEOUT)
            if done is None:
                os.kill(pid, signal.SIGKILL)
                server.reply(TIMEOUT)
                raise AssertionError(f"{label} (pid {pid}) did not end within {TIMEOUT} s")
            code = int(done["returncode"])
        else:
            spec_file = Path(f"{stem}.spec.json")
            spec_file.write_text(json.dumps(spec))
            with open(out, "wb") as fo, open(err, "wb") as fe:
                proc = subprocess.Popen([sys.executable, str(DRIVER), str(spec_file)], cwd=cwd, env=full_env,
                                        stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
                pid = proc.pid
                try:
                    code = proc.wait(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise AssertionError(f"{label} (pid {pid}) did not end within {TIMEOUT} s") from None
        lines = progress.read_text(encoding="utf-8").splitlines() if progress.exists() else []
        pids = [int(ln.split()[1]) for ln in lines if ln.startswith("PID ")]
        return Proc(label, pids[0] if pids else pid, code, out.read_text(errors="replace"),
                    err.read_text(errors="replace"), lines, spec.get("kill"))

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()


# --------------------------------------------------------------------------- kill points


def choose_kill(rng: random.Random, counts: dict[str, int], menu: list[str]) -> dict[str, Any] | None:
    """A kill point drawn from ``menu`` (repeat a site to weight it), at an occurrence the
    observed process reached (a site it never reached falls back to ``py``).

    Always the same number of draws, whatever the counts: a count that depends on timing (how
    the background writer batched its frames) changes that one kill point, not the rest of the
    trial's draws.
    """
    site = rng.choice(menu)
    where = rng.random()
    frame_how = rng.choice(["before", "after", "torn"])
    cut = round(rng.uniform(0.02, 0.98), 3)
    commit_how = rng.choice(["before", "after"])
    if not counts.get(site):
        site = "py"
    if not counts.get(site):
        return None
    kill: dict[str, Any] = {"site": site, "nth": 1 + int(where * counts[site])}
    if site == "frame":
        kill["how"] = frame_how
        if frame_how == "torn":
            kill["cut"] = cut
    elif site.startswith("commit"):
        kill["how"] = commit_how
    return kill


def site_label(kill: dict[str, Any]) -> str:
    return f"{kill['site']}:{kill['how']}" if kill.get("how") else str(kill["site"])


# --------------------------------------------------------------------------- journals


def journal_pid(journal_id: str) -> int | None:
    """The pid in a journal's id (``host-pid-random.generation``)."""
    parts = journal_id.rsplit(".", 1)[0].rsplit("-", 2)
    try:
        return int(parts[1]) if len(parts) == 3 else None
    except ValueError:
        return None


def read_journals(db: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The records of every whole frame in the store's journals, by journal id."""
    from workbench.store.journal import read_frames

    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(Path(db + ".spool", "journals").glob("*.wbj")):
        out[path.name[: -len(".wbj")]] = [r for f in read_frames(str(path)).frames for r in f.records]
    return out


def copy_store(db: str, dest: Path) -> str:
    """Copy a store file, its WAL and its spool into ``dest`` (no process has them open)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(db)
    for suffix in ("", ".wal"):
        if Path(db + suffix).exists():
            shutil.copy2(db + suffix, dest / (src.name + suffix))
    if Path(db + ".spool").exists():
        shutil.copytree(db + ".spool", dest / (src.name + ".spool"))
    return str(dest / src.name)


# --------------------------------------------------------------------------- a trial


@dataclass
class Trial:
    family: str
    seed: int
    root: Path
    launcher: Launcher
    env: dict[str, str] = field(default_factory=dict)
    expected: tuple[str, ...] = ()  # names a family puts in the sandbox itself
    procs: list[Proc] = field(default_factory=list)
    kills: int = 0
    armed: int = 0
    sites: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # which paths the trial took (for the report)
    # records of whole frames found in the journals of killed processes, by journal id
    frames: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.family}/{self.seed}")
        self.box = self.root / "box"  # the store's directory and every process's working directory
        self.box.mkdir(parents=True, exist_ok=True)
        self.db = str(self.box / "trace.duckdb")
        self.logs = self.root / "logs"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.effects = str(self.root / "effects.jsonl")
        self._observations = 0

    # ------------------------------------------------------------------ processes

    def launch(self, spec: dict[str, Any], label: str, kill: dict[str, Any] | None = None, *,
               counted: bool = False) -> Proc:
        """Run one process; ``counted``: its ``COUNTS`` will choose kill points, so they include
        the ``py`` sites (always counted when a kill point is armed)."""
        full = {**spec, "effects": self.effects, "kill": kill, "count_py": counted or kill is not None}
        proc = self.launcher.launch(full, cwd=self.box, logs=self.logs, label=label,
                                    env={"TMPDIR": str(self.tmp), **self.env})
        self.procs.append(proc)
        check_process(proc)
        if kill is not None:
            self.armed += 1
        if proc.killed:
            self.kills += 1
            assert kill is not None
            self.sites.append(site_label(kill))
            self.frames.update(read_journals(self.db))
        return proc

    def observe(self, spec_for: Any, label: str) -> dict[str, int]:
        """What the process ``spec_for(db)`` would do, run uninterrupted on a copy of the store."""
        self._observations += 1
        scratch = self.root / f"observe-{self._observations}"
        db = copy_store(self.db, scratch / "box")
        (scratch / "tmp").mkdir()
        spec = {**spec_for(db), "effects": str(scratch / "effects.jsonl"), "kill": None, "count_py": True}
        proc = self.launcher.launch(spec, cwd=scratch / "box", logs=scratch / "logs", label=label,
                                    env={"TMPDIR": str(scratch / "tmp"), **self.env})
        check_process(proc)
        assert not proc.killed, proc.describe()
        shutil.rmtree(scratch)
        return proc.counts

    def kill_for(self, spec_for: Any, menu: list[str], label: str) -> dict[str, Any] | None:
        return choose_kill(self.rng, self.observe(spec_for, label), menu)

    def cli(self, *argv: str, label: str = "cli", kill: dict[str, Any] | None = None) -> Proc:
        return self.launch({"op": "cli", "argv": list(argv)}, label, kill)

    def effects_log(self) -> list[dict[str, Any]]:
        if not os.path.exists(self.effects):
            return []
        with open(self.effects, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    def pid_order(self) -> dict[int, int]:
        return {p.pid: i for i, p in enumerate(self.procs)}


# --------------------------------------------------------------------------- checks


def check_process(proc: Proc) -> None:
    """Every process, killed or not: no traceback; killed only where it was told to die."""
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.describe()
    if proc.killed:
        assert proc.kill is not None and any(ln.startswith("KILL ") for ln in proc.progress), proc.describe()
    else:
        assert proc.returncode >= 0, proc.describe()


def snapshot_run(store: Any, run_id: str) -> dict[str, Any]:
    """Everything a run recorded that must not depend on where it was killed."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in store.query(sql, [run_id])]

    # A subgraph's child run (CALLER/STEP.TASK.N) is listed in subgraph_runs, not runs.
    view = "subgraph_runs" if "/" in run_id else "runs"
    run = store.query_dicts(f"SELECT status, output, last_step, error FROM {view} WHERE run_id = ?", [run_id])
    assert len(run) == 1, f"run {run_id}: {len(run)} rows in runs"
    states = {int(k): v for k, v in store.states(run_id).items()}
    return {
        "status": run[0]["status"],
        "error": run[0]["error"],
        "output": json.loads(run[0]["output"]) if run[0]["output"] else None,
        "last_step": run[0]["last_step"],
        "states": states,
        "plans": [(s, json.loads(t)) for s, t in rows("SELECT step, tasks FROM supersteps WHERE run_id = ? "
                                                      "ORDER BY step")],
        "completed": [(s, t, n, json.loads(u) if u else None) for s, t, n, u in rows(
            'SELECT step, task, node, "update" FROM steps WHERE run_id = ? AND status = \'completed\' '
            "ORDER BY step, task, attempt")],
        "failed": rows("SELECT step, task, node, error FROM steps WHERE run_id = ? AND status = 'failed'"),
        "calls": sorted(rows("SELECT step, task, attempt, seq, 'llm', fingerprint FROM llm_calls "
                             "WHERE run_id = ? AND error IS NULL")
                        + [tuple(r) for r in store.query(
                            "SELECT step, task, attempt, seq, 'tool', fingerprint FROM tool_calls "
                            "WHERE run_id = ? AND error IS NULL", [run_id])]),
        "interrupts": [(s, t, n, json.loads(p) if p else None, json.loads(r) if r else None) for s, t, n, p, r in
                       rows("SELECT step, task, node, payload, response FROM interrupts WHERE run_id = ? "
                            "ORDER BY step, task, attempt, idx")],
    }


def check_same_run(got: dict[str, Any], ref: dict[str, Any]) -> None:
    """The trial's run equals the uninterrupted one: status, every step's state, plans, completed
    tasks (one per planned task: none missing, none twice), recorded calls, interrupts."""
    assert got["status"] == "completed", f"run ended {got['status']}: {got['error']}"
    assert got["failed"] == [], f"failed task rows: {got['failed']}"
    assert got["output"] == ref["output"], "final state differs from the uninterrupted run's"
    for step in sorted(set(got["states"]) | set(ref["states"])):
        assert got["states"].get(step) == ref["states"].get(step), f"state after step {step} differs"
    assert got["plans"] == ref["plans"], "planned steps differ"
    dupes = [k for k, c in Counter((s, t) for s, t, _, _ in got["completed"]).items() if c > 1]
    assert not dupes, f"tasks recorded completed more than once (step, task): {dupes}"
    missing = [c for c in ref["completed"] if c not in got["completed"]]
    extra = [c for c in got["completed"] if c not in ref["completed"]]
    assert not missing and not extra, f"completed tasks differ: missing {missing[:3]}, extra {extra[:3]}"
    assert got["calls"] == ref["calls"], "recorded model/tool calls differ"
    assert got["interrupts"] == ref["interrupts"], "interrupts differ"
    assert got["last_step"] == ref["last_step"]


def check_effects(trial: Trial, store: Any, run_ids: list[str]) -> int:
    """Each recorded tool or model call's effect happened exactly once, and no process made a
    recorded call again (its nonce is the last effect of its key); a node recorded completed by a
    process that was then killed never ran again. Returns how many effects were made again
    because the process that made them died before recording them (allowed)."""
    log = trial.effects_log()
    effects = [e for e in log if e["kind"] == "effect"]
    by_nonce: dict[str, list[int]] = {}
    for i, e in enumerate(effects):
        by_nonce.setdefault(e["nonce"], []).append(i)
    recorded: list[str] = []
    for run_id in run_ids:
        for (response,) in store.query("SELECT response FROM llm_calls WHERE run_id = ? AND error IS NULL", [run_id]):
            recorded += NONCE.findall(response or "")
        for (result,) in store.query("SELECT result FROM tool_calls WHERE run_id = ? AND error IS NULL", [run_id]):
            recorded += NONCE.findall(result or "")
    assert len(recorded) == len(set(recorded)), "one effect recorded by two calls"
    redone = 0
    for nonce in recorded:
        where = by_nonce.get(nonce, [])
        assert len(where) == 1, f"recorded effect {nonce} happened {len(where)} times"
        key = effects[where[0]]["key"]
        same_key = [i for i, e in enumerate(effects) if e["key"] == key]
        later = [effects[i] for i in same_key if i > where[0]]
        assert not later, f"recorded call {key!r} ({nonce}) was made again: {later}"
        redone += len(same_key) - 1

    order = trial.pid_order()
    done_by: dict[tuple[str, int, int], int] = {}
    for journal, records in trial.frames.items():
        pid = journal_pid(journal)
        for kind, rec in records:
            if kind == "task" and rec.get("status") == "completed" and pid is not None:
                done_by.setdefault((rec["run_id"], rec["step"], rec["task"]), pid)
    for e in log:
        if e["kind"] != "exec":
            continue
        recorder = done_by.get((e["run"], e["step"], e["task"]))
        if recorder is not None and order.get(e["pid"], -1) > order.get(recorder, 10**9):
            raise AssertionError(f"step {e['step']} task {e['task']} ({e['node']}) was recorded completed by "
                                 f"pid {recorder}, which was killed, and ran again in pid {e['pid']}")
    return redone


def _stored(store: Any, run_ids: list[str]) -> dict[str, dict[Any, list[Any]]]:
    """What the store holds of ``run_ids``, keyed as :func:`check_nothing_lost` looks records up
    (one query per table and run, instead of one per journal record)."""
    queries = {
        "run": "SELECT run_id, NULL FROM wb_runs WHERE run_id = ?",
        "task": "SELECT run_id, step, task, attempt, status, NULL FROM steps WHERE run_id = ?",
        "change": "SELECT run_id, step, key, value FROM state_changes WHERE run_id = ?",
        "plan": "SELECT run_id, step, tasks FROM supersteps WHERE run_id = ?",
        "llm": "SELECT run_id, step, task, attempt, seq, response FROM wb_llm_calls WHERE run_id = ?",
        "interrupt": "SELECT run_id, step, task, attempt, idx, NULL FROM interrupts WHERE run_id = ?",
        "event": "SELECT run_id, kind, step, NULL FROM events WHERE run_id = ?",
    }
    out: dict[str, dict[Any, list[Any]]] = {kind: {} for kind in queries}
    for kind, sql in queries.items():
        for run_id in run_ids:
            for row in store.query(sql, [run_id]):
                out[kind].setdefault(tuple(row[:-1]), []).append(row[-1])
    return out


def check_nothing_lost(trial: Trial, store: Any) -> int:
    """Every record of a whole journal frame a killed process wrote is in the store. Returns how
    many records were checked."""
    run_ids = sorted({str(r["run_id"]) for records in trial.frames.values() for _, r in records if r.get("run_id")})
    stored = _stored(store, run_ids)
    checked = 0
    for journal, records in trial.frames.items():
        for kind, r in records:
            where = f"{kind} record of journal {journal} ({ {k: r.get(k) for k in ('run_id', 'step', 'task')} })"
            if kind == "run":
                key: tuple[Any, ...] = (r["run_id"],)
            elif kind == "task":
                key = (r["run_id"], r["step"], r["task"], r["attempt"], r["status"])
            elif kind == "change":
                key = (r["run_id"], r["step"], r["key"])
            elif kind == "plan":
                key = (r["run_id"], r["step"])
            elif kind == "llm":
                key = (r["run_id"], r["step"], r["task"], r["attempt"], r["seq"])
            elif kind == "interrupt":
                key = (r["run_id"], r["step"], r["task"], r["attempt"], r["idx"])
            elif kind == "event":  # (a missing step matches a NULL one, as IS NOT DISTINCT FROM)
                key = (r["run_id"], r["kind"], r.get("step"))
            else:  # updates of rows (status, answers): superseded by later ones
                continue
            got = stored[kind].get(key, [])
            if got and kind == "change":
                assert json.loads(got[0]) == json.loads(r["value"]), f"{where}: stored value differs"
            elif got and kind == "plan":
                assert json.loads(got[0]) == json.loads(r["tasks"]), f"{where}: stored plan differs"
            elif got and kind == "llm" and r.get("response") is not None:
                assert json.loads(got[0]) == json.loads(r["response"]), f"{where}: stored response differs"
            checked += 1
            assert got, f"lost: {where} is not in the store"
    return checked


def check_sandbox(trial: Trial) -> None:
    """Nothing but the store was written in the sandbox, no journal is left unloaded, nothing was
    set aside as damaged, and no temporary file was left."""
    name = Path(trial.db).name
    strays = [p.name for p in trial.box.iterdir() if not p.name.startswith(name) and p.name not in trial.expected]
    assert not strays, f"files written next to the store: {strays}"
    spool = Path(trial.db + ".spool")
    left = sorted(p.name for p in (spool / "journals").glob("*")) if (spool / "journals").exists() else []
    assert not left, f"journals left after every process ended and the store was reopened: {left}"
    damaged = sorted(p.name for p in (spool / "damaged").glob("*")) if (spool / "damaged").exists() else []
    assert not damaged, f"records set aside as damaged: {damaged}"
    temps = sorted(p.name for p in trial.tmp.iterdir())
    assert not temps, f"temporary files left: {temps}"


def check_cli_reads(trial: Trial, run_ids: list[str], *, installed: bool = False) -> list[dict[str, Any]]:
    """``workbench runs`` and ``show`` open the store and exit 0 without a traceback.

    ``installed``: ``runs`` is the installed ``workbench`` command in a fresh interpreter (as a
    user types it, through its console script) rather than a forked child calling its ``main``.
    """
    if installed:
        res = subprocess.run([*workbench_cmd(), "runs", "--db", trial.db, "--json"], cwd=trial.box,
                             env=trial.launcher.env(TMPDIR=str(trial.tmp), **trial.env), capture_output=True,
                             text=True, timeout=TIMEOUT)
        runs = Proc("runs (installed)", 0, res.returncode, res.stdout, res.stderr, [], None)
        check_process(runs)
    else:
        runs = trial.cli("runs", "--db", trial.db, "--json", label="runs")
    assert runs.returncode == 0, runs.describe()
    for run_id in run_ids:
        show = trial.cli("show", run_id, "--db", trial.db, label="show")
        assert show.returncode == 0, show.describe()
    return runs.json_out  # type: ignore[no-any-return]
