"""``workbench.toml``: a file that is not TOML, a misspelt key or a value of the wrong type stops
every command that reads it with one line (exit 2), creating nothing — never a quiet fall-back
to the offline demo model and a local store. Also ``--version`` and ``run --max-steps``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from workbench.project_config import ConfigError, load
from workbench.store import TraceStore
from workbench.store.lake import configured_location

BROKEN = '[store\nlocation = "x"\n[llm]\nmodel = "openai/gpt-4o-mini"\n'
INPUT = '{"message": "a"}'


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


def _one_error(res: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that exited 2."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["run", "support", "--input", INPUT],
    ["run", "support", "--input", INPUT, "--db", "elsewhere.duckdb"],
    ["runs"], ["show", "last"], ["sql", "SELECT 1"], ["resume", "last"], ["test", "--graph", "support"],
    ["demo"], ["doctor"],
])
def test_a_malformed_file_stops_every_command_that_reads_it(project: Path, argv: list[str]) -> None:
    (project / "workbench.toml").write_text(BROKEN)
    before = _files(project)
    line = _one_error(run_cli(*argv, cwd=project))
    assert line == ("workbench: error: workbench.toml is not valid TOML: Expected ']' at the end of a table "
                    "declaration (at line 1, column 7)")
    assert _files(project) == before  # no store, no spool, nothing


@pytest.mark.parametrize(("text", "expected"), [
    ('[store]\nlocaton = "x"\n', "unknown key 'locaton' in [store] (known keys: location, data_path, spool)"),
    ('[llm]\nmodle = "openai/gpt-4o-mini"\n', "unknown key 'modle' in [llm] (known keys: model, fallbacks)"),
    ("[store]\nlocation = 5\n",
     "[store] location must be a non-empty string, got 5 (known keys of [store]: location, data_path, spool)"),
    ('[llm]\nfallbacks = "a/b"\n',
     "[llm] fallbacks must be a list of model names (strings), got 'a/b' (known keys of [llm]: model, fallbacks)"),
    ('[stor]\nlocation = "x"\n', "unknown section [stor] (known sections: [llm], [store])"),
    ('model = "openai/gpt-4o-mini"\n', "unknown key 'model' at the top level (known sections: [llm], [store])"),
])
def test_an_unknown_key_or_a_wrong_type_is_named(project: Path, text: str, expected: str) -> None:
    (project / "workbench.toml").write_text(text)
    before = _files(project)
    for argv in (["run", "support", "--input", INPUT], ["runs"]):
        assert _one_error(run_cli(*argv, cwd=project)) == f"workbench: error: workbench.toml: {expected}"
    assert _files(project) == before


def test_the_python_api_raises_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.llm import resolve_model

    monkeypatch.chdir(tmp_path)
    assert load() == {}  # no file: nothing configured
    (tmp_path / "workbench.toml").write_text("[store]\nlocation = 5\n")
    with pytest.raises(ConfigError, match=r"\[store\] location must be"):
        resolve_model()  # the whole file is checked, whichever section is asked for
    with pytest.raises(ConfigError, match=r"\[store\] location must be"):
        TraceStore()
    assert list(tmp_path.iterdir()) == [tmp_path / "workbench.toml"]


def test_a_valid_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workbench.toml").write_text('[store]\nlocation = "t/x.duckdb"\ndata_path = "/srv/lake"\n'
                                             '[llm]\nmodel = "m/x"\nfallbacks = []\n')
    assert configured_location() == "t/x.duckdb"


def test_the_missing_store_note_names_the_config_file(project: Path) -> None:
    """The path came from [store] location: that is where to look, not only --db or WORKBENCH_DB."""
    (project / "workbench.toml").write_text('[store]\nlocation = "traces/typo.duckdb"\n')
    listed = run_cli("runs", cwd=project)
    assert listed.returncode == 0
    assert listed.stderr.strip() == ("workbench: note: no trace store at traces/typo.duckdb yet, nothing is "
                                     "recorded there (check --db or [store] location in workbench.toml)")
    assert _one_error(run_cli("show", "last", cwd=project)) == (
        "workbench: error: no trace store at traces/typo.duckdb: nothing is recorded there "
        "(check --db or [store] location in workbench.toml)")
    assert not (project / "traces" / "typo.duckdb").exists()


# ---------------------------------------------------------------- --version, run --max-steps


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    res = run_cli("--version", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"workbench {version('agent-workbench')}"
    assert list(tmp_path.iterdir()) == []


def test_run_takes_a_step_limit(project: Path) -> None:
    limited = run_cli("run", "support", "--input", INPUT, "--max-steps", "1", "--json", cwd=project)
    assert limited.returncode == 1 and "step limit of 1" in limited.stdout
    assert run_cli("run", "support", "--input", INPUT, "--max-steps", "50", cwd=project).returncode == 0
    # The next turn of a conversation takes one too.
    turn = run_cli("run", "support", "--continue", "last", "--input", INPUT, "--max-steps", "1", cwd=project)
    assert turn.returncode == 1 and "step limit of 1" in turn.stderr


@pytest.mark.parametrize("value", ["0", "-3"])
def test_run_refuses_a_bad_step_limit_as_resume_does(project: Path, value: str) -> None:
    before = _files(project)
    line = _one_error(run_cli("run", "support", "--input", INPUT, "--max-steps", value, cwd=project))
    assert line == f"workbench: error: max_steps must be a positive whole number, got {value}"
    assert _files(project) == before  # refused before the store is made
    not_a_number = run_cli("run", "support", "--max-steps", "x", cwd=project)
    assert not_a_number.returncode == 2 and "--max-steps: invalid int value: 'x'" in not_a_number.stderr
