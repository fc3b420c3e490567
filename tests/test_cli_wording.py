"""What the commands say, and what docs/cli.md says they take and print: `maintain`'s report in
the singular for one unit, `graphs` with no graphs folder (a note on stderr, nothing on stdout),
`graph`'s one-line help naming every format, `fork`'s options table and `run --json`'s fields.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli
from pgcluster import PASSWORD, postgres_cluster

from workbench.cli.parser import build_parser
from workbench.store.maintenance import _keep_interval

CLI_DOC = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of one ``## title`` section of docs/cli.md."""
    start = CLI_DOC.index(f"\n## {title}\n")
    end = CLI_DOC.find("\n## ", start + 1)
    return CLI_DOC[start:end if end >= 0 else len(CLI_DOC)]


def subcommand(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize(("keep", "age"), [("1 day", "1 day"), ("1 days", "1 day"), ("12 hours", "12 hours"),
                                           ("1 HOUR", "1 hour"), ("0 seconds", "0 seconds"), ("2 week", "2 weeks")])
def test_the_keep_interval_is_worded_in_the_singular_for_one(keep: str, age: str) -> None:
    interval, worded = _keep_interval(keep)
    assert worded == age
    assert interval == f"{age.split()[0]} {age.split()[1].rstrip('s')}s"  # what DuckDB's INTERVAL gets


@pytest.mark.xdist_group("lake")
def test_maintain_on_a_lake_says_older_than_1_day(tmp_path: Path) -> None:
    with postgres_cluster() as pg:
        env = cli_env(PGPASSWORD=PASSWORD, WORKBENCH_LAKE_DATA=str(tmp_path / "data"),
                      WORKBENCH_SPOOL=str(tmp_path / "spool"))
        db = pg.location(pg.create_database())
        simple = str(REPO / "tests" / "graphs" / "simple.py")
        assert run_cli("run", simple, "--input", '{"name": "m"}', "--db", db, cwd=tmp_path, env=env).returncode == 0
        default = run_cli("maintain", "--db", db, cwd=tmp_path, env=env)
        assert default.returncode == 0, default.stderr
        assert "expired snapshots and deleted unreferenced files older than 1 day\n" in default.stdout
        hours = run_cli("maintain", "--db", db, "--keep", "12 hours", cwd=tmp_path, env=env)
        assert "older than 12 hours\n" in hours.stdout


def test_graphs_without_a_graphs_folder_is_a_note_and_lists_nothing(tmp_path: Path) -> None:
    plain = run_cli("graphs", cwd=tmp_path)
    assert (plain.returncode, plain.stdout) == (0, "")
    assert plain.stderr == ("workbench: note: no graphs folder at graphs; run from the project directory or set "
                            "WORKBENCH_GRAPHS\n")
    as_json = run_cli("graphs", "--json", cwd=tmp_path)
    assert (as_json.returncode, json.loads(as_json.stdout)) == (0, [])
    assert as_json.stderr.startswith("workbench: note: no graphs folder")


def test_graph_help_names_every_format() -> None:
    (line,) = [ln for ln in build_parser().format_help().splitlines() if re.match(r"\s+graph\s", ln)]
    formats = next(a for a in subcommand("graph")._actions if "--format" in a.option_strings).choices
    assert sorted(formats or ()) == ["ascii", "layered", "mermaid"]
    assert all(fmt in line.lower() for fmt in formats or ()), line


def test_the_fork_options_table_lists_every_option_of_fork() -> None:
    table = [row for row in section("workbench fork").splitlines() if row.startswith("| `-")]
    documented = {opt for row in table for opt in re.findall(r"`(--[a-z-]+)", row.split(" | ")[0])}
    options = {opt for a in subcommand("fork")._actions for opt in a.option_strings if opt.startswith("--")}
    assert documented == options - {"--help"}


def test_the_run_json_fields_table_lists_every_field_printed(tmp_path: Path) -> None:
    fields_doc = section("workbench run").split("**`--json`**", 1)[1]
    documented = re.findall(r"^\| `([a-z_]+)` \|", fields_doc.split("\n\n|", 1)[1].split("\n\n", 1)[0], re.M)
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "one.py").write_text(
        "from typing import TypedDict\nfrom workbench import END, START, Graph\n\n\n"
        "class S(TypedDict):\n    n: int\n\n\ngraph = Graph('one', S)\n"
        "graph.add_node('inc', lambda s: {'n': s['n'] + 1})\ngraph.sequence(START, 'inc', END)\n",
        encoding="utf-8")
    res = run_cli("run", "one", "--input", '{"n": 1}', "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert documented == list(json.loads(res.stdout))  # every field, in the order printed
