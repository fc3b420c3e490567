"""The fault matrix (issue 7): what the trace store and the CLI do when the world misbehaves.

* **Disk full** mid-run, on a real 2 MB tmpfs: the run stops with one clear line, nothing
  already recorded is lost, and once there is room ``workbench resume`` finishes the run with the
  state an uninterrupted run has, and ``workbench replay`` reports it identical.
* **A journal cut or bit-flipped at every byte offset** (what a crash mid-write, or a bad disk,
  leaves): the store opens, whole frames are loaded, damage is set aside under
  ``<db>.spool/damaged/``, and every run can be resumed to exactly the uninterrupted state.
* **Bit flips in the DuckDB file** at many offsets: ``sql``, ``show`` and ``runs`` either work
  or say, in one line with exit 2, that the store is corrupt/damaged — never a traceback, never
  a silent death (the crash guard), never "in use by another process".
* **A store held by a foreign DuckDB process, read-only files and directories, newer and
  unreadable schema versions:** one line each, the file left as it was.

Disk full uses a real tmpfs when this runs as root and may mount (``WORKBENCH_FAULTS_TMPFS=0``
forces the fallback: a file size limit, under which writes fail with EFBIG instead of ENOSPC).

Sizes: ``WORKBENCH_FAULTS=full`` runs every case of the matrices (every byte of the sample
journal end to end, every interesting page of the sample DuckDB file), ``WORKBENCH_FAULTS=every4k``
also flips every 4 KiB page of the DuckDB file, data or not. The default runs a representative
subset; the journal's reader is checked at every byte offset in every mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faults_helpers import (
    CliFarm,
    Job,
    cli_env,
    copy_store,
    crash_record,
    declared_entry_point,
    ledger_reference,
    make_project,
    one_clean_line,
    run_cli,
    sha,
    stderr_lines,
    wb,
    workbench_cmd,
)

from workbench.loader import load_graph
from workbench.runtime import Runner
from workbench.store import TraceStore
from workbench.store.journal import read_frames

MODE = os.environ.get("WORKBENCH_FAULTS", "").lower()
FULL = MODE in ("full", "every4k")


def _json(res: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in res.stderr, res.stderr
    return json.loads(res.stdout)


def _duplicates(store: TraceStore, run_id: str) -> list[Any]:
    """Tasks completed more than once, and steps planned more than once."""
    tasks = store.query("SELECT step, task, count(*) FROM steps WHERE run_id = ? AND status = 'completed' "
                        "GROUP BY step, task HAVING count(*) > 1", [run_id])
    plans = store.query("SELECT step, count(*) FROM supersteps WHERE run_id = ? GROUP BY step HAVING count(*) > 1",
                        [run_id])
    return [*tasks, *plans]


# =========================================================================== disk full

DISK_STEPS, DISK_SIZE = 40, 40_000  # about 3.2 MB of journal for the whole run: more than the disk holds
DISK_SIZE_LIMIT = 2 * 1024 * 1024


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or os.environ.get("WORKBENCH_FAULTS_TMPFS") == "0":
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return res.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _limit_file_size() -> None:  # pragma: no cover - runs in the child
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_SIZE_LIMIT, DISK_SIZE_LIMIT))


@dataclass
class DiskFull:
    how: str  # "tmpfs" | "rlimit"
    reference: dict[str, Any]
    failed: subprocess.CompletedProcess[str]
    run_id: str = ""
    status_after: str = ""
    committed: int = -1
    state_committed: dict[str, Any] = field(default_factory=dict)
    last_step_shown: int = 0  # the last step the run's progress output showed a task of
    resumed: dict[str, Any] = field(default_factory=dict)
    resume_stderr: str = ""
    replay: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    duplicates: list[Any] = field(default_factory=list)
    read_while_full: subprocess.CompletedProcess[str] | None = None


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiskFull]:
    root = tmp_path_factory.mktemp("diskfull")
    proj = make_project(root / "proj", steps=DISK_STEPS, size=DISK_SIZE)

    ref = wb("run", "ledger", "--db", str(root / "ref" / "t.duckdb"), "--json", cwd=proj)
    assert ref.returncode == 0, ref.stderr
    reference = _json(ref)["state"]
    assert reference == ledger_reference(DISK_STEPS, DISK_SIZE)

    disk = root / "disk"
    disk.mkdir()
    mounted = _mount_tmpfs(disk, "2m")
    db = str(disk / "t.duckdb")
    try:
        # Without a tmpfs (not root, no mount in this container): a file size limit, under which
        # writes fail with EFBIG just as they fail with ENOSPC on a full disk.
        failed = subprocess.run([*workbench_cmd(), "run", "ledger", "--db", db], cwd=proj, env=cli_env(),
                                capture_output=True, text=True, timeout=300,
                                preexec_fn=None if mounted else _limit_file_size)
        scenario = DiskFull("tmpfs" if mounted else "rlimit", reference, failed)
        steps = [int(m.group(1)) for m in re.finditer(r"^\s*step\s+(\d+)\s", failed.stdout, flags=re.M)]
        scenario.last_step_shown = max(steps, default=0)
        if mounted:  # a read while the disk is still full, then make room
            scenario.read_while_full = wb("runs", "--db", db, cwd=proj)
            subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)

        runs = _json(wb("runs", "--db", db, "--json", cwd=proj))
        assert len(runs) == 1, runs
        scenario.run_id = runs[0]["run_id"]
        scenario.status_after = runs[0]["status"]
        with TraceStore(db) as store:
            scenario.committed = store.last_committed_step(scenario.run_id)
            scenario.state_committed = store.state_at(scenario.run_id, scenario.committed)

        res = wb("resume", scenario.run_id, "--db", db, "--json", cwd=proj, timeout=300)
        scenario.resume_stderr = res.stderr
        if res.stdout.strip():
            scenario.resumed = json.loads(res.stdout)
        rep = wb("replay", scenario.run_id, "--db", db, "--json", cwd=proj, timeout=300)
        if rep.stdout.strip():
            scenario.replay = json.loads(rep.stdout)
        with TraceStore(db) as store:
            scenario.output = store.get_run(scenario.run_id)["output"]
            scenario.duplicates = _duplicates(store, scenario.run_id)
        yield scenario
    finally:
        if mounted:
            _umount(disk)


# Tests sharing an expensive module fixture share an xdist worker (it is built once).
@pytest.mark.xdist_group("faults-disk-full")
def test_disk_full_happens_mid_run(disk_full: DiskFull) -> None:
    """The scenario is what it claims: the run stopped part-way, with some steps recorded."""
    assert disk_full.failed.returncode != 0, disk_full.failed.stdout[-2000:]
    assert disk_full.status_after == "running"  # interrupted, resumable
    assert 1 <= disk_full.committed < DISK_STEPS, disk_full.committed


@pytest.mark.xdist_group("faults-disk-full")
def test_disk_full_stops_with_one_clear_line(disk_full: DiskFull) -> None:
    res = disk_full.failed
    assert res.returncode == 2, (res.returncode, res.stderr)
    line = one_clean_line(res.stderr, res.stdout)
    words = ("no space",) if disk_full.how == "tmpfs" else ("no space", "too large")
    assert any(w in line.lower() for w in words), line
    assert line.startswith("workbench: error:"), line
    assert "TransactionContext" not in res.stderr, res.stderr


@pytest.mark.xdist_group("faults-disk-full")
def test_a_command_on_the_still_full_disk_says_so_in_one_line(disk_full: DiskFull) -> None:
    """The stopped run's journal is loaded by the next command to open the store, which needs
    room too: every command, reads included, ended in an internal error (a raw DuckDB commit
    error), exit 1. It says what is wrong and that the journal is kept, exit 2."""
    res = disk_full.read_while_full
    if res is None:
        pytest.skip("the disk was a file size limit (no tmpfs here): a new process has room")
    assert res.returncode == 2, (res.returncode, res.stderr)
    line = one_clean_line(res.stderr, res.stdout)
    assert "no space left on the device to load what a stopped process left in its journal" in line, line


@pytest.mark.xdist_group("faults-disk-full")
def test_disk_full_loses_nothing_already_recorded(disk_full: DiskFull) -> None:
    """Every step the run finished before the one whose record failed is in the store, whole."""
    assert disk_full.committed >= disk_full.last_step_shown - 1, (disk_full.committed, disk_full.last_step_shown)
    ref = disk_full.reference
    state = disk_full.state_committed
    n = state["n"]
    assert state["items"] == ref["items"][:n]  # a prefix: nothing missing, nothing twice
    assert state["side"] == [s for s in ref["side"] if int(s.split(".")[0]) <= n]


@pytest.mark.xdist_group("faults-disk-full")
def test_disk_full_resume_completes_like_an_uninterrupted_run(disk_full: DiskFull) -> None:
    assert "Traceback" not in disk_full.resume_stderr, disk_full.resume_stderr
    assert disk_full.resumed.get("status") == "completed", disk_full.resume_stderr
    assert disk_full.resumed["state"] == disk_full.reference
    assert disk_full.output == disk_full.reference
    assert disk_full.duplicates == []


@pytest.mark.xdist_group("faults-disk-full")
def test_disk_full_replay_is_identical(disk_full: DiskFull) -> None:
    assert disk_full.replay.get("identical") is True, disk_full.replay


# =========================================================================== the journal, cut and flipped

JOURNAL_STEPS, JOURNAL_SIZE = 6, 16  # ticks 1..6 with one fan-out after tick 5: 7 steps a run


@dataclass
class JournalSample:
    proj: Path
    db: str
    journal_name: str
    data: bytes  # the journal's bytes
    bounds: list[int]  # offsets where frames start, and the end
    frame_runs: list[set[str]]  # run ids each frame holds
    loaded_run: str  # the run DuckDB already has (its frames are before the load position)
    runs: list[str]  # every run, in the order recorded
    reference: dict[str, Any]
    graph: Any


@pytest.fixture(scope="module")
def journal_sample(tmp_path_factory: pytest.TempPathFactory) -> JournalSample:
    """A store whose journal holds three runs: the first also loaded into DuckDB, the other two
    only in the journal (the writer held back), then the process SIGKILLed."""
    root = tmp_path_factory.mktemp("journal")
    proj = make_project(root / "proj", steps=JOURNAL_STEPS, size=JOURNAL_SIZE)
    db = str(root / "sample" / "t.duckdb")
    Path(db).parent.mkdir()
    runs = crash_record(db, "ledger", [{}, "flush", "hold_writer", {}, {}], cwd=proj)
    reference = ledger_reference(JOURNAL_STEPS, JOURNAL_SIZE)
    assert [r["status"] for r in runs] == ["completed"] * 3
    assert all(r["state"] == reference for r in runs)
    [journal] = list(Path(db + ".spool", "journals").glob("*.wbj"))
    data = journal.read_bytes()
    bounds = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]
    assert bounds[-1] == len(data)
    frames = read_frames(str(journal)).frames
    frame_runs = [{str(rec["run_id"]) for _, rec in f.records if rec.get("run_id")} for f in frames]
    assert len(frames) == len(bounds) - 1
    return JournalSample(proj, db, journal.name, data, bounds, frame_runs, runs[0]["run_id"],
                         [r["run_id"] for r in runs], reference, load_graph(str(proj / "graphs" / "ledger.py")))


def _whole_frames_before(sample: JournalSample, offset: int) -> int:
    return sum(1 for b in sample.bounds[1:] if b <= offset)


def _frames_from(path: Path, sample: JournalSample, frame: int) -> Any:
    """Read from the start of frame index ``frame`` (the reader takes a starting offset, as
    recovery does from a load position): each check costs one frame, not the whole journal."""
    return read_frames(str(path), sample.bounds[frame])


def test_journal_reader_at_every_cut_offset(journal_sample: JournalSample, tmp_path: Path) -> None:
    """Cut at every byte: the whole frames before the cut are read, never a partial one."""
    sample = journal_sample
    full = read_frames_bytes(sample.data, tmp_path)
    assert len(full.frames) == len(sample.bounds) - 1
    path = tmp_path / "cut.wbj"
    path.write_bytes(sample.data)
    for cut in range(len(sample.data), -1, -1):  # shrinking the file one byte at a time
        os.truncate(path, cut)
        k = _whole_frames_before(sample, cut)
        first = max(k - 1, 0)  # one whole frame before the cut, then the cut
        result = _frames_from(path, sample, first)
        assert [f.records for f in result.frames] == [f.records for f in full.frames[first:k]], cut
        assert [f.number for f in result.frames] == list(range(first + 1, k + 1)), cut
        assert result.end == sample.bounds[k], cut
        assert result.stop == ("eof" if cut in sample.bounds else "torn"), cut
        if cut % 251 == 0:  # and now and then from the very start
            assert len(read_frames(str(path)).frames) == k, cut


def test_journal_reader_at_every_flipped_byte(journal_sample: JournalSample, tmp_path: Path) -> None:
    """A bit flipped anywhere: the frames before it are read, the frame holding it is not."""
    sample = journal_sample
    full = read_frames_bytes(sample.data, tmp_path)
    path = tmp_path / "flip.wbj"
    path.write_bytes(sample.data)
    fd = os.open(path, os.O_RDWR)
    try:
        for offset in range(len(sample.data)):
            k = _whole_frames_before(sample, offset)
            first = max(k - 1, 0)
            for bit in (0x01, 0x80):
                os.pwrite(fd, bytes([sample.data[offset] ^ bit]), offset)
                result = _frames_from(path, sample, first)
                os.pwrite(fd, sample.data[offset:offset + 1], offset)
                assert [f.records for f in result.frames] == [f.records for f in full.frames[first:k]], (offset, bit)
                assert result.end == sample.bounds[k], (offset, bit)
                last_newline = offset == len(sample.data) - 1
                # A flipped final newline looks exactly like a torn write; anything else is damage.
                assert result.stop == ("torn" if last_newline else "damaged"), (offset, bit, result.stop)
    finally:
        os.close(fd)


def read_frames_bytes(data: bytes, tmp: Path) -> Any:
    path = tmp / "whole.wbj"
    path.write_bytes(data)
    result = read_frames(str(path))
    assert result.stop == "eof"
    return result


def _cut_offsets(sample: JournalSample) -> list[int]:
    if FULL:
        return list(range(len(sample.data) + 1))
    out: set[int] = set()
    for start, end in zip(sample.bounds, sample.bounds[1:], strict=False):
        # A cut leaves whole frames and, unless it falls on a boundary, a torn tail; the reader
        # test above shows that every offset inside a frame reads the same. So per frame: the
        # boundary, and a tail that lacks only its newline (whole JSON, whole checksum).
        out.update({start, end - 1})
    out.add(len(sample.data))
    return sorted(out)


def _flip_offsets(sample: JournalSample) -> list[int]:
    if FULL:
        return list(range(len(sample.data)))
    out: set[int] = set()
    for start, end in zip(sample.bounds, sample.bounds[1:], strict=False):
        # Damage in a frame's JSON, and in its newline (two frames run together).
        out.update({(start + end) // 2, end - 1})
    return sorted(out)


def _recover_and_finish(sample: JournalSample, journal: bytes, dest: Path) -> dict[str, Any]:
    """Open a copy of the store with this journal, resume every interrupted run; report."""
    db = copy_store(sample.db, dest)
    Path(db + ".spool", "journals", sample.journal_name).write_bytes(journal)
    report: dict[str, Any] = {"runs": {}, "problems": []}
    with TraceStore(db) as store:
        before = {r["run_id"]: r["status"] for r in store.list_runs()}
        report["before"] = before
        for run_id, status in before.items():
            if status == "running":
                result = Runner(sample.graph, store).resume(run_id)
                if result.status != "completed":
                    report["problems"].append(f"{run_id}: resume ended {result.status}: {result.error}")
        for r in store.list_runs():
            rid = r["run_id"]
            run = store.get_run(rid)
            state = store.state_at(rid, store.last_committed_step(rid))
            report["runs"][rid] = r["status"]
            if r["status"] != "completed":
                report["problems"].append(f"{rid} is {r['status']} after resume")
            if state != sample.reference:
                report["problems"].append(f"{rid}: state differs from the uninterrupted run: items "
                                          f"{[i.split(':')[0] for i in state.get('items', [])]}")
            if run["output"] != sample.reference:
                report["problems"].append(f"{rid}: recorded output differs")
            dupes = _duplicates(store, rid)
            if dupes:
                report["problems"].append(f"{rid}: recorded twice: {dupes}")
    report["damaged"] = sorted(Path(db + ".spool", "damaged").iterdir())
    report["journals_left"] = sorted(Path(db + ".spool", "journals").glob("*.wbj"))
    return report


def _last_frame(sample: JournalSample, run_id: str) -> int:
    """Index of the last journal frame holding a record of the run."""
    return max(i for i, runs in enumerate(sample.frame_runs) if run_id in runs)


def _expected_runs(sample: JournalSample, whole_frames: int) -> set[str]:
    """Runs the store must hold when the first ``whole_frames`` frames of the journal are intact."""
    present = {sample.loaded_run}
    for runs in sample.frame_runs[:whole_frames]:
        present |= runs
    return present


def test_journal_cut_anywhere_recovers_and_resumes_exactly(journal_sample: JournalSample, tmp_path: Path) -> None:
    failures = []
    for cut in _cut_offsets(journal_sample):
        report = _recover_and_finish(journal_sample, journal_sample.data[:cut], tmp_path / f"cut{cut}")
        k = _whole_frames_before(journal_sample, cut)
        problems = list(report["problems"])
        if set(report["runs"]) != _expected_runs(journal_sample, k):
            problems.append(f"runs {sorted(report['runs'])}, expected {sorted(_expected_runs(journal_sample, k))}")
        if report["damaged"]:
            problems.append(f"a torn tail was set aside as damage: {report['damaged']}")
        if report["journals_left"]:
            problems.append(f"journal not consumed: {report['journals_left']}")
        if problems:
            failures.append(f"cut at byte {cut} (of {len(journal_sample.data)}): {problems}")
        shutil.rmtree(tmp_path / f"cut{cut}", ignore_errors=True)
    assert not failures, "\n".join(failures)


def test_journal_bit_flip_sets_damage_aside_and_keeps_what_is_before(journal_sample: JournalSample,
                                                                     tmp_path: Path) -> None:
    sample = journal_sample
    loaded_frames = max(i + 1 for i, runs in enumerate(sample.frame_runs) if sample.loaded_run in runs)
    failures = []
    for offset in _flip_offsets(sample):
        data = bytearray(sample.data)
        data[offset] ^= 0x01
        report = _recover_and_finish(sample, bytes(data), tmp_path / f"flip{offset}")
        k = _whole_frames_before(sample, offset)
        problems = list(report["problems"])
        if k < loaded_frames:
            # Already in DuckDB: recovery starts after the load position and never reads it.
            expected = set(sample.runs)
            if report["damaged"]:
                problems.append(f"set aside although before the load position: {report['damaged']}")
        else:
            expected = _expected_runs(sample, k)
            last_newline = offset == len(sample.data) - 1
            if last_newline:
                if report["damaged"]:
                    problems.append("a torn-looking tail was set aside")
            elif len(report["damaged"]) != 1:
                problems.append(f"damage not set aside: damaged/ holds {report['damaged']}")
            elif report["damaged"][0].read_bytes() != bytes(data[sample.bounds[k]:]):
                problems.append("damaged/ does not hold the journal from the damaged frame on")
        if set(report["runs"]) != expected:
            problems.append(f"runs {sorted(report['runs'])}, expected {sorted(expected)}")
        intact = [r for r in sample.runs if _last_frame(sample, r) < k]
        if any(report["before"].get(r) != "completed" for r in intact):
            problems.append(f"a run whose frames are all before the damage is not intact: {report['before']}")
        if report["journals_left"]:
            problems.append(f"journal not consumed: {report['journals_left']}")
        if problems:
            failures.append(f"bit flip at byte {offset} (frame {k + 1}): {problems}")
        shutil.rmtree(tmp_path / f"flip{offset}", ignore_errors=True)
    assert not failures, "\n".join(failures)


# =========================================================================== bit flips in the DuckDB file

FLIP_BYTES = 16
FLIP_COMMANDS: dict[str, list[str]] = {
    "runs": ["runs"],
    "show": ["show", "last"],
    "sql": ["sql", "SELECT count(*) AS n, sum(length(value::VARCHAR)) AS bytes FROM state_changes"],
}
DEFAULT_FLIP_OFFSETS = 64  # spread over the file's pages that hold data; WORKBENCH_FAULTS=full for all

SIMPLE_GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "simple.py"


@dataclass
class FlipCase:
    offset: int
    command: str
    path: str
    returncode: int
    stdout: str
    stderr: str
    timeout: bool

    def problem(self) -> str | None:
        """What is wrong with how the command ended, or None."""
        if self.timeout:
            return "hung (killed after 60 s)"
        if self.returncode < 0:
            return f"died of {signal.Signals(-self.returncode).name} without a word"
        if "Traceback" in self.stderr or "Traceback" in self.stdout:
            return f"traceback: {self.stderr[-300:]}"
        if self.returncode == 0:
            return None
        lines = stderr_lines(self.stderr)
        if self.returncode != 2:
            return f"exit {self.returncode}: {self.stderr.strip()[:300]}"
        if len(lines) != 1:
            return f"{len(lines)} stderr lines: {self.stderr.strip()[:300]}"
        line = lines[0]
        if "in use" in line:
            return f"blames another process: {line}"
        if not line.startswith("workbench: error:"):
            return f"not an error line: {line}"
        if not re.search(r"corrupt|damaged", line, flags=re.I):
            return f"does not say the store is corrupt or damaged: {line}"
        return None


@dataclass
class FlipMatrix:
    sample: str
    size: int
    offsets: list[int]
    cases: list[FlipCase]
    root: Path


def _interesting_offsets(data: bytes) -> list[int]:
    """The 4 KiB pages worth flipping: every page holding data, and the first page of every
    256 KiB block (where DuckDB keeps a block's checksum) — a flip in a never-used page of the
    file is a no-op by construction (WORKBENCH_FAULTS=every4k flips those too)."""
    pages = range(0, len(data), 4096)
    if MODE == "every4k":
        return list(pages)
    picked = {o for o in pages if any(data[o:o + 4096])} | set(range(12288, len(data), 262144)) | {0, 4096, 8192}
    return sorted(picked)


_PAGE = 4096


def _write_sparse(path: Path, data: bytes, pages: set[int]) -> None:
    """Write ``data`` to a new file, only its ``pages`` (offsets of 4 KiB pages; the rest must be
    zeros) and the size: the file reads back byte for byte as ``data``, the zeros as holes. The
    sample is mostly never-used pages, and writing every flipped copy in full was a tenth of the
    matrix's CPU (kernel time)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset in sorted(pages):
            os.pwrite(fd, data[offset:offset + _PAGE], offset)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _spread(offsets: list[int], n: int) -> list[int]:
    if len(offsets) <= n:
        return offsets
    return [offsets[round(i * (len(offsets) - 1) / (n - 1))] for i in range(n)]


@pytest.fixture(scope="module")
def flip_matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlipMatrix]:
    """A closed sample store (a completed run with fan-outs, a waiting run, a failed run), and
    every command of FLIP_COMMANDS run against copies of it with 16 bytes flipped at each offset."""
    root = tmp_path_factory.mktemp("dbflips")
    proj = make_project(root / "proj", steps=12)
    shutil.copy(SIMPLE_GRAPH, proj / "graphs" / "simple.py")
    sample = str(root / "sample" / "t.duckdb")
    assert run_cli("run", "ledger", "--db", sample, "--json", cwd=proj).returncode == 0
    assert run_cli("run", "simple", "--input", '{"ask": true}', "--db", sample, "--json", cwd=proj).returncode == 3
    assert run_cli("run", "graphs/simple.py:failing", "--db", sample, "--json", cwd=proj).returncode == 1
    assert not Path(sample + ".wal").exists()
    data = Path(sample).read_bytes()
    zero_page = bytes(_PAGE)
    data_pages = {o for o in range(0, len(data), _PAGE) if data[o:o + _PAGE] != zero_page[:len(data) - o]}
    offsets = _interesting_offsets(data)
    if not FULL:
        offsets = sorted(set(_spread(offsets, DEFAULT_FLIP_OFFSETS)) | {0, 4096, 8192})
    farm = CliFarm(root / "farm")
    cases: list[FlipCase] = []
    try:
        chunk = 24  # flipped copies on disk at a time
        for i in range(0, len(offsets), chunk):
            jobs: list[Job] = []
            meta: list[tuple[int, str, str]] = []
            for offset in offsets[i:i + chunk]:
                damaged = bytearray(data)
                for j in range(offset, min(offset + FLIP_BYTES, len(data))):
                    damaged[j] ^= 0xFF
                pages = data_pages | {p - p % _PAGE for p in (offset, min(offset + FLIP_BYTES, len(data)) - 1)}
                for command, argv in FLIP_COMMANDS.items():
                    where = root / "cases" / f"{offset}-{command}"
                    where.mkdir(parents=True)
                    path = where / "t.duckdb"
                    _write_sparse(path, bytes(damaged), pages)
                    assert os.path.getsize(path) == len(damaged)
                    jobs.append(Job([*argv, "--db", str(path)], str(where), entry=declared_entry_point()))
                    meta.append((offset, command, str(path)))
            for (offset, command, path), res in zip(meta, farm.run(jobs), strict=True):
                cases.append(FlipCase(offset, command, path, res.returncode, res.stdout, res.stderr, res.timeout))
            keep = {c.path for c in cases if c.problem() or "crashed" in c.stderr or c.returncode == 2}
            for _, _, path in meta:
                if path not in keep:
                    shutil.rmtree(Path(path).parent)
    finally:
        farm.close()
    yield FlipMatrix(sample, len(data), offsets, cases, root)


@pytest.mark.parametrize("command", list(FLIP_COMMANDS))
@pytest.mark.xdist_group("faults-flip-matrix")
def test_duckdb_bit_flips_never_crash_the_cli(flip_matrix: FlipMatrix, command: str) -> None:
    cases = [c for c in flip_matrix.cases if c.command == command]
    assert len(cases) == len(flip_matrix.offsets)
    failures = [f"offset {c.offset}: {c.problem()}" for c in cases if c.problem()]
    outcomes = {"ok": sum(c.returncode == 0 for c in cases), "error": sum(c.returncode == 2 for c in cases)}
    assert not failures, (f"workbench {' '.join(FLIP_COMMANDS[command])!r} on {flip_matrix.sample} with "
                          f"{FLIP_BYTES} bytes flipped (xor 0xff) at offset N; {outcomes}; "
                          f"{len(failures)} of {len(cases)} bad:\n" + "\n".join(failures))


@pytest.mark.xdist_group("faults-flip-matrix")
def test_duckdb_bit_flips_are_noticed(flip_matrix: FlipMatrix) -> None:
    """The matrix is not vacuous: some flips are caught as corruption (or engine crashes)."""
    assert any(c.returncode == 2 for c in flip_matrix.cases)


def _pick(cases: list[FlipCase], predicate: Any, n: int) -> list[FlipCase]:
    seen: set[int] = set()
    out = []
    for c in cases:
        if predicate(c) and c.offset not in seen:
            seen.add(c.offset)
            out.append(c)
    return out[:n]


@pytest.mark.xdist_group("faults-flip-matrix")
def test_installed_script_on_damaged_stores(flip_matrix: FlipMatrix) -> None:
    """The same verdicts from the real installed ``workbench`` script (not the forked farm):
    for stores on which the engine crashes, and stores it reports corrupt."""
    crashed = _pick(flip_matrix.cases, lambda c: "engine crashed" in c.stderr or c.returncode < 0, 3)
    corrupt = _pick(flip_matrix.cases, lambda c: c.returncode == 2 and "engine crashed" not in c.stderr, 3)
    failures = []
    for c in crashed + corrupt:
        res = wb(*FLIP_COMMANDS[c.command], "--db", c.path, cwd=Path(c.path).parent)
        real = FlipCase(c.offset, c.command, c.path, res.returncode, res.stdout, res.stderr, False)
        if real.problem() or real.returncode != 2:
            failures.append(f"offset {c.offset} {c.command}: exit {res.returncode}: {real.problem()}")
    assert crashed or corrupt
    assert not failures, "\n".join(failures)


@pytest.mark.xdist_group("faults-flip-matrix")
def test_doctor_names_the_damaged_table(flip_matrix: FlipMatrix) -> None:
    crashed = _pick(flip_matrix.cases, lambda c: "engine crashed" in c.stderr or c.returncode < 0, 3)
    unreadable = _pick(flip_matrix.cases, lambda c: "checksum" in c.stderr and "cannot be read" not in c.stderr, 2)
    if not crashed:
        pytest.skip("no flip in this sample crashes the engine")
    failures = []
    for c in crashed + unreadable:
        res = wb("doctor", "--db", c.path, cwd=Path(c.path).parent)
        out = res.stdout + res.stderr
        if res.returncode != 1 or "Traceback" in out or "DAMAGED" not in res.stdout:
            failures.append(f"offset {c.offset}: exit {res.returncode}: {out.strip()[:300]}")
        elif c in crashed and not re.search(r"table wb_\w+", res.stdout):
            failures.append(f"offset {c.offset}: the engine crash names no table: {res.stdout.strip()[:300]}")
    assert not failures, "\n".join(failures)


# =========================================================================== locked, read-only, schema versions

HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    con.close()
""")


@pytest.fixture(scope="module")
def filled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store with a completed ledger run and a waiting run (made once)."""
    root = tmp_path_factory.mktemp("filled")
    proj = make_project(root / "proj")
    shutil.copy(SIMPLE_GRAPH, proj / "graphs" / "simple.py")
    db = root / "t.duckdb"
    assert run_cli("run", "ledger", "--db", str(db), "--json", cwd=proj).returncode == 0
    assert run_cli("run", "simple", "--input", '{"ask": true}', "--db", str(db), "--json", cwd=proj).returncode == 3
    shutil.rmtree(str(db) + ".spool")
    return db


@pytest.fixture
def filled(tmp_path: Path, filled_template: Path) -> tuple[Path, Path]:
    """A project directory and a private copy of the filled store inside ``store/``."""
    proj = make_project(tmp_path / "proj")
    shutil.copy(SIMPLE_GRAPH, proj / "graphs" / "simple.py")
    db = tmp_path / "store" / "t.duckdb"
    db.parent.mkdir()
    shutil.copy(filled_template, db)
    return proj, db


READS = [["runs"], ["show", "last"], ["sql", "SELECT count(*) FROM steps"]]
WRITES = [["run", "ledger"], ["resume", "last", "--input", '"42"']]


def test_a_cut_off_store_is_named_corrupt_by_every_reading_command(filled: tuple[Path, Path]) -> None:
    """A store file missing its end (a copy cut short): one line naming the damage and doctor,
    exit 2 (show gave an internal error, runs a bare engine message)."""
    proj, db = filled
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(size - 256 * 1024)
    for args in (["show", "last"], ["sql", "SELECT count(*) FROM steps"]):
        res = run_cli(*args, "--db", str(db), cwd=proj)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        line = one_clean_line(res.stderr, res.stdout)
        assert "is corrupt" in line and "workbench doctor" in line, line


def test_maintain_on_a_cut_off_store_says_so_and_changes_nothing(filled: tuple[Path, Path]) -> None:
    """``maintain`` on a store missing its last block: the checkpoint reads no block it leaves
    alone, so it used to print "checkpointed" and exit 0 over a store `doctor` calls DAMAGED."""
    proj, db = filled
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size - 256 * 1024)
    before = sha(db)
    res = run_cli("maintain", "--db", str(db), cwd=proj)
    assert res.returncode == 2, (res.stdout, res.stderr)
    line = one_clean_line(res.stderr, res.stdout)
    # Named by the check on the blocks in use, or by DuckDB as it reads them for that check.
    assert ("cut off" in line or "is corrupt" in line) and "workbench doctor" in line, line
    assert "checkpointed" not in res.stdout
    assert sha(db) == before


def test_maintain_on_a_file_duckdb_trimmed_says_checkpointed(tmp_path: Path) -> None:
    """DuckDB trims free blocks off the end of its file and still counts them as the database's
    blocks when it opens it again: ``maintain`` called such a healthy store "cut off" and told
    the user to move it aside (after ``workbench rm``, in the README's own flow). The check is on
    the blocks in use."""
    db = tmp_path / "t.duckdb"
    with TraceStore(str(db)):
        pass
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE extra AS SELECT i, md5(i::VARCHAR) AS s FROM range(100000) t(i)")
    con.execute("CHECKPOINT")
    con.execute("CREATE TABLE more AS SELECT i, md5(i::VARCHAR) || md5((i + 7)::VARCHAR) AS s FROM range(300000) t(i)")
    con.execute("CHECKPOINT")
    con.execute("DROP TABLE more")
    con.execute("CHECKPOINT")
    con.close()
    con = duckdb.connect(str(db), read_only=True)
    _, _, block_size, total_blocks, *_ = con.execute("PRAGMA database_size").fetchone()
    con.close()
    assert db.stat().st_size < 3 * 4096 + total_blocks * block_size  # what the old check refused
    res = run_cli("maintain", "--db", str(db), cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("checkpointed"), (res.stdout, res.stderr)


def test_locked_by_a_foreign_duckdb_process(filled: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """One line naming the holder, for reads and writes. The first command waits the default
    time (it must be prompt: not the 60 s a workbench holder gets); the rest wait 0.2 s, which
    ends in the same refusal without idling."""
    from workbench.store import database

    proj, db = filled
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        before = sha(db)
        for i, args in enumerate([*READS, ["doctor"], *WRITES]):  # doctor: in use, not "DAMAGED"
            if i == 1:
                monkeypatch.setattr(database, "FOREIGN_TIMEOUT_S", 0.2)
            started = time.monotonic()
            res = run_cli(*args, "--db", str(db), cwd=proj)
            took = time.monotonic() - started
            assert res.returncode == 2, (args, res.stderr)
            line = one_clean_line(res.stderr, res.stdout)
            assert f"in use by process {holder.pid}" in line, line
            assert took < 10, f"{args}: took {took:.1f} s to say the store is held"
        assert sha(db) == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


def _can(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def _chattr(path: Path, flag: str) -> bool:
    return _can("chattr") and subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def _read_only_checks(proj: Path, db: Path) -> None:
    before = sha(db)
    for args in READS:
        res = run_cli(*args, "--db", str(db), cwd=proj)
        assert res.returncode == 0, (args, res.stderr)
        assert "Traceback" not in res.stderr
    for args in WRITES:
        res = run_cli(*args, "--db", str(db), cwd=proj)
        assert res.returncode == 2, (args, res.returncode, res.stdout, res.stderr)
        line = one_clean_line(res.stderr, res.stdout)
        assert "read-only" in line or "permission" in line.lower(), line
    assert sha(db) == before


def test_read_only_store_file(filled: tuple[Path, Path]) -> None:
    """The store file cannot be written (the directory can): read, but refuse to record."""
    proj, db = filled
    run_cli("runs", "--db", str(db), cwd=proj)  # the spool exists, as it would for a store in use
    if os.geteuid() == 0:
        if not _chattr(db, "+i"):
            pytest.skip("running as root and chattr +i is not available here: chmod would not stop writes")
        try:
            _read_only_checks(proj, db)
        finally:
            _chattr(db, "-i")
    else:
        db.chmod(0o444)
        try:
            _read_only_checks(proj, db)
        finally:
            db.chmod(0o644)


def test_read_only_directory(filled: tuple[Path, Path], tmp_path: Path) -> None:
    """The store's directory is read-only (a read-only mount): read, but refuse to record."""
    proj, db = filled
    run_cli("runs", "--db", str(db), cwd=proj)
    if os.geteuid() == 0:
        view = tmp_path / "ro-view"
        view.mkdir()
        if subprocess.run(["mount", "--bind", str(db.parent), str(view)], capture_output=True).returncode != 0:
            pytest.skip("running as root and bind mounts are not allowed here: chmod would not stop writes")
        try:
            if subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode != 0:
                pytest.skip("cannot remount read-only here")
            _read_only_checks(proj, view / db.name)
        finally:
            _umount(view)
    else:
        db.parent.chmod(0o555)
        try:
            _read_only_checks(proj, db)
        finally:
            db.parent.chmod(0o755)


@pytest.mark.parametrize("version, needle", [("99", "newer"), ("abc", "unreadable schema version"),
                                             ("0", "invalid schema version"), ("", "unreadable schema version")],
                         ids=["newer", "abc", "zero", "empty"])
def test_schema_versions_are_refused_untouched(filled: tuple[Path, Path], version: str, needle: str) -> None:
    proj, db = filled
    con = duckdb.connect(str(db))
    con.execute("UPDATE wb_meta SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    before = sha(db)
    for args in [*READS, *WRITES]:
        res = run_cli(*args, "--db", str(db), cwd=proj)
        assert res.returncode == 2, (args, res.stderr)
        line = one_clean_line(res.stderr, res.stdout)
        assert needle in line, line
        assert sha(db) == before, args
    assert not Path(str(db) + ".wal").exists()


# --------------------------------------------------------------------------- crashes that are not the store's

CRASHING_GRAPH = textwrap.dedent('''
    import ctypes, os, signal
    from typing import TypedDict
    from workbench import END, START, Graph

    class S(TypedDict, total=False):
        how: str

    graph = Graph("crashing", S)

    @graph.node
    def boom(state: S) -> dict:
        if state.get("how") == "segv":
            ctypes.string_at(0)
        if state.get("how") == "abort":
            os.abort()
        if state.get("how") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return {}

    graph.sequence(START, "boom", END)
''')


def test_a_crash_in_graph_code_is_not_blamed_on_the_store(tmp_path: Path) -> None:
    """A node that crashes the process (ctypes, a C extension, ``os.abort()``) was reported as
    "the database engine crashed ... the file is damaged ... move it aside": advice to throw
    away a healthy store. The crash guard now names the code (faulthandler's report of the
    crashing thread) and leaves the store alone, exit 1; the run resumes once the code is fixed.
    A process killed by SIGKILL (the OOM killer, ``kill -9``) used to end in a traceback from the
    guard (SIGKILL's handler cannot be set); it now ends as killed, silently."""
    proj = make_project(tmp_path / "proj")
    (proj / "graphs" / "crashing.py").write_text(CRASHING_GRAPH)
    db = str(tmp_path / "t.duckdb")
    for how, sig in (("segv", "SIGSEGV"), ("abort", "SIGABRT")):
        res = wb("run", "crashing", "--input", json.dumps({"how": how}), "--db", db, cwd=proj)
        assert res.returncode == 1, (how, res.stderr)
        line = one_clean_line(res.stderr)
        assert f"crashed ({sig}) in graphs/crashing.py:" in line and "(boom), not in the database" in line, line
        assert "move it aside" not in line
    killed = wb("run", "crashing", "--input", '{"how": "kill"}', "--db", db, cwd=proj)
    assert killed.returncode == -signal.SIGKILL and killed.stderr == "", killed.stderr
    doctor = wb("doctor", "--db", db, cwd=proj)
    assert doctor.returncode == 0 and "healthy" in doctor.stdout, doctor.stdout
    from workbench.store.reader import shown_status

    runs = _json(wb("runs", "--db", db, "--json", cwd=proj))
    assert [shown_status(r) for r in runs] == ["interrupted"] * 3


def test_a_crash_under_the_store_s_code_is_still_the_database_s() -> None:
    """What decides: the crashing thread's innermost frame outside the standard library and the
    installed packages (where DuckDB itself has no Python frame)."""
    from workbench import guard

    here = os.path.dirname(guard.__file__)
    report = ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
              '  File "{}", line 80 in execute\n  File "/work/proj/graphs/g.py", line 9 in node\n')
    assert guard.code_site(report.format(os.path.join(here, "store", "reader.py"))) is None
    assert guard.code_site(report.format(os.path.join(here, "sqlquery.py"))) is None
    assert guard.code_site(report.format("/work/proj/graphs/x.py")) == "/work/proj/graphs/x.py:80 (execute)"
    stdlib_first = report.format(os.path.join(os.path.dirname(os.__file__), "ctypes", "__init__.py"))
    assert guard.code_site(stdlib_first) == "/work/proj/graphs/g.py:9 (node)"
    assert guard.code_site("Fatal Python error: Aborted\n\nCurrent thread 0x1 (most recent call first):\n"
                           "  <no Python frame>\n") is None
