"""Recorded text never drives the terminal: control characters are shown, not sent (issue:
terminal escape sequences in a graph name from an imported file retitled the window and
cleared the screen; an error quoting user input did the same on the CLI)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from conftest import run_cli
from rich.console import Console
from rich.segment import Segment

from workbench.printable import has_control, printable

HOSTILE = "support\x1b]0;PWNED\x07\x1b[2J\x1b[31mFAKE\r\x9b\u202e"


def test_control_characters_get_visible_stand_ins_of_the_same_length() -> None:
    shown = printable(HOSTILE)
    assert shown == "support␛]0;PWNED␇␛[2J␛[31mFAKE␍\ufffd\ufffd"
    assert len(shown) == len(HOSTILE) and not has_control(shown)
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"


def test_the_workbench_draws_a_line_holding_escape_codes_visibly() -> None:
    from textual.strip import Strip

    from workbench.tui.app import WorkbenchApp

    WorkbenchApp(":memory:", None, watch=False)  # making the app installs the guard
    console = Console(file=io.StringIO(), color_system="truecolor", width=40)
    strip = Strip([Segment("graph "), Segment(HOSTILE)], 6 + 12)
    drawn = strip.render(console)
    assert "\x1b]0;" not in drawn and "\x1b[2J" not in drawn and "\x07" not in drawn
    assert drawn.startswith("graph support␛]0;P")  # cut back to the line's width
    assert Strip([Segment("plain text")]).render(console) == "plain text"


def test_the_cli_prints_recorded_escape_codes_visibly(tmp_path: Path) -> None:
    (tmp_path / "esc.py").write_text(
        "from typing import TypedDict\n"
        "from workbench import END, START, Graph\n"
        "class S(TypedDict):\n    x: str\n"
        "graph = Graph('esc', S)\n"
        "@graph.node\n"
        "def boom(state):\n    raise ValueError('bad ' + state['x'])\n"
        "graph.sequence(START, 'boom', END)\n")
    db = str(tmp_path / "esc.duckdb")
    ran = run_cli("run", str(tmp_path / "esc.py"), "--input", json.dumps({"x": HOSTILE}), "--db", db, cwd=tmp_path)
    assert ran.returncode == 1
    outputs = [ran.stdout + ran.stderr]
    for argv in (["show", "last"], ["runs"], ["sql", "SELECT error, input FROM runs"]):
        res = run_cli(*argv, "--db", db, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        outputs.append(res.stdout + res.stderr)
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out, repr(out)
    assert any("bad support␛]0;PWNED" in out for out in outputs)
    # Machine output keeps the data exactly (JSON escapes it).
    as_json = run_cli("sql", "SELECT error FROM runs", "--db", db, "--format", "json", cwd=tmp_path)
    assert HOSTILE.split("\r")[0] in json.loads(as_json.stdout)[0]["error"]


def test_json_output_escapes_what_json_dumps_leaves_raw(tmp_path: Path) -> None:
    """``json.dumps(..., ensure_ascii=False)`` escapes ESC and BEL but writes C1 controls (U+009B
    is an escape sequence's start on many terminals), DEL and the bidi overrides raw: every
    ``--json`` output and ``sql --format json`` printed them. They are ``\\uXXXX`` escapes now,
    and the values read back the same."""
    (tmp_path / "esc.py").write_text(
        "from typing import TypedDict\n"
        "from workbench import END, START, Graph\n"
        "class S(TypedDict):\n    x: str\n"
        "graph = Graph('esc', S)\n"
        "@graph.node\n"
        "def echo(state):\n    return {'x': state['x'] + '\\u202eevil\\x7f'}\n"
        "graph.sequence(START, 'echo', END)\n")
    db = str(tmp_path / "esc.duckdb")
    ran = run_cli("run", str(tmp_path / "esc.py"), "--input", json.dumps({"x": HOSTILE}), "--db", db, "--json",
                  cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    outputs = {"run": ran.stdout}
    for argv in (["show", "last", "--json"], ["runs", "--json"], ["sql", "SELECT input, state FROM runs, "
                 "state_at(runs.run_id, 1)", "--format", "json"]):
        res = run_cli(*argv, "--db", db, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        outputs[argv[0]] = res.stdout
    for name, out in outputs.items():
        raw = [c for c in out if c in "\x1b\x07\x7f\x9b\u202e"]
        assert raw == [], (name, raw)
        assert name == "runs" or ("\\u009b" in out and "\\u202e" in out), name
    assert json.loads(outputs["run"])["state"]["x"] == HOSTILE + "\u202eevil\x7f"
    exported = tmp_path / "out.jsonl"
    assert run_cli("export", "last", "--to", str(exported), "--db", db, cwd=tmp_path).returncode == 0
    text = exported.read_text(encoding="utf-8")
    assert [c for c in text if c in "\x1b\x07\x7f\x9b\u202e"] == [] and "\\u202e" in text
    assert run_cli("import", str(exported), "--db", str(tmp_path / "again.duckdb"), cwd=tmp_path).returncode == 0
    assert json.loads(outputs["sql"])[0]["state"]["x"] == HOSTILE + "\u202eevil\x7f"
