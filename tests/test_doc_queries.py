"""The SQL the documentation hands out: every recipe of examples/sql_recipes.sql, every query of
docs/sql.md and the headless service's `pending`, run against a store holding support runs, warranty
runs (one waiting for a human inside its `review` subgraph) and a two-turn chat. They must run,
and the ones about whole runs must count a subgraph's rows for the run a user started (a
subgraph's rows have their own run_id, ROOT/2.0.0, which is not in `runs`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, demo_project, run_cli

from workbench.store import TraceStore

RECIPES = REPO / "examples" / "sql_recipes.sql"
SQL_DOC = REPO / "docs" / "sql.md"
HEADLESS = REPO / "examples" / "headless_service.py"
RUN_ID = re.compile(r"'1a2[0-9a-f]{14}'")


def wb(proj: Path, *args: str, code: int = 0) -> Any:
    res = run_cli(*args, "--json", cwd=proj)
    assert res.returncode == code, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo project's store: support waiting and completed, warranty waiting at review/approve
    and completed after its answer, and a chat of two turns."""
    proj = demo_project(tmp_path_factory.mktemp("doc-queries") / "project")
    ids: dict[str, str] = {}
    ids["support_waiting"] = wb(proj, "run", "support", "--input",
                                '{"message": "I want a refund of $500", "customer_id": "C-1001"}', code=3)["run_id"]
    ids["support_done"] = wb(proj, "run", "support", "--input", '{"message": "login error"}')["run_id"]
    waiting = wb(proj, "run", "warranty", "--input", '{"message": "Please refund $120 for the broken kettle"}', code=3)
    assert waiting["interrupt_id"] == "2.0.0/2.0.1.0"  # asked inside the subgraph
    ids["warranty_waiting"] = waiting["run_id"]
    ids["warranty_done"] = wb(proj, "run", "warranty", "--input", '{"message": "Refund $300 for the toaster"}',
                              code=3)["run_id"]
    wb(proj, "resume", ids["warranty_done"], "--input", '"yes"')
    ids["chat_1"] = wb(proj, "run", "chat", "--input",
                       '{"messages": [{"role": "user", "content": "Hi, my name is Ada"}]}')["run_id"]
    ids["chat_2"] = wb(proj, "run", "chat", "--continue", "last", "--input",
                       '{"messages": {"role": "user", "content": "What is my name?"}}')["run_id"]
    runs = {r["run_id"]: r for r in wb(proj, "runs")}
    return {"db": str(proj / "traces" / "workbench.duckdb"), "ids": ids, "runs": runs}


def recipes(text: str) -> dict[int, str]:
    """The numbered recipes of sql_recipes.sql: ``-- N. ...`` and the statement after it."""
    out: dict[int, str] = {}
    for number, body in re.findall(r"^-- (\d+)\. .*?\n(.*?;)\s*$", text, re.S | re.M):
        statement = "\n".join(line for line in body.splitlines() if not line.startswith("--"))
        out[int(number)] = statement.strip().rstrip(";")
    return out


def doc_queries(text: str) -> dict[str, list[str]]:
    """docs/sql.md's ```sql blocks, by the heading or bold line above them."""
    out: dict[str, list[str]] = {}
    title = ""
    for part in re.split(r"(```sql\n.*?```)", text, flags=re.S):
        if part.startswith("```sql"):
            body = part[len("```sql\n"):-3]
            statements = [s.strip() for s in body.split(";") if s.strip()]
            out.setdefault(title, []).extend(
                "\n".join(line for line in s.splitlines() if not line.lstrip().startswith("--")) for s in statements)
        else:
            titles = re.findall(r"^(?:#+ (.+)|\*\*(.+?)\*\*)", part, re.M)
            if titles:
                title = "".join(titles[-1]).rstrip(":")
    return out


def query(db: str, sql: str) -> list[dict[str, Any]]:
    with TraceStore(db) as store:
        return store.query_dicts(sql)


def test_every_recipe_runs_and_the_run_level_ones_count_subgraphs(recorded: dict[str, Any]) -> None:
    found = recipes(RECIPES.read_text(encoding="utf-8"))
    assert sorted(found) == list(range(1, len(found) + 1)) and len(found) >= 23
    results = {n: query(recorded["db"], sql) for n, sql in found.items()}  # every one runs
    ids, runs = recorded["ids"], recorded["runs"]

    # 6: tokens per run are what `workbench runs` shows, a subgraph's model calls included
    tokens = {r["run_id"]: r["prompt_tokens"] + r["completion_tokens"] for r in results[6]}
    assert tokens == {rid: r["tokens"] for rid, r in runs.items()}
    assert tokens[ids["warranty_done"]] > 0 and tokens[ids["warranty_waiting"]] > 0

    # 18: who waits for a human: the warranty run waiting inside its subgraph too, by its own id
    waiting = {r["run_id"]: r for r in results[18]}
    assert set(waiting) == {ids["support_waiting"], ids["warranty_waiting"]}
    assert waiting[ids["warranty_waiting"]]["path"] == "review/approve"
    assert waiting[ids["warranty_waiting"]]["interrupt_id"] == "2.0.0/2.0.1.0"

    # 3 and 23 count a subgraph's steps and state for the run it belongs to; 2 counts runs, not subgraph runs
    assert {r["node"] for r in results[3]} >= {"assess", "approve", "record"}
    assert {r["run_id"] for r in results[23]} <= set(runs)
    assert all("/" not in r["run_id"] for r in results[1] + results[6] + results[18] + results[23])


def test_every_query_of_sql_md_runs_and_answers_for_runs_with_subgraphs(recorded: dict[str, Any]) -> None:
    ids, runs = recorded["ids"], recorded["runs"]
    found = doc_queries(SQL_DOC.read_text(encoding="utf-8"))
    assert sum(len(q) for q in found.values()) >= 15
    for statements in found.values():
        for sql in statements:  # a documented query names some run: here, the newest chat turn
            query(recorded["db"], RUN_ID.sub(f"'{ids['chat_2']}'", sql))

    def answer(title: str, run: str | None = None, having: str = "") -> list[dict[str, Any]]:
        (sql,) = [q for q in found[title] if having in q]
        return query(recorded["db"], RUN_ID.sub(f"'{run}'", sql) if run else sql)

    tokens = {r["run_id"]: r["tokens"] for r in answer("Tokens and cost per run")}
    assert tokens == {rid: r["tokens"] for rid, r in runs.items()}

    waiting = {r["run_id"]: r["path"] for r in answer("Runs waiting for a human, oldest first")}
    assert waiting == {ids["support_waiting"]: "handoff", ids["warranty_waiting"]: "review/approve"}

    # the id to answer by: the run to resume, not the subgraph's run (which resume refuses)
    open_questions = answer("interrupts", having="status = 'open'")
    assert {r["run_id"] for r in open_questions} == set(waiting)

    # the turns of a conversation, numbered as `workbench show` numbers them: turn 1 from step 1
    turns = answer("Conversations", ids["chat_2"], having="first_step")
    assert [(t["run_id"], t["first_step"]) for t in turns] == [(ids["chat_1"], 1), (ids["chat_2"], 2)]
    shown = run_cli("show", ids["chat_2"], cwd=Path(recorded["db"]).parent.parent).stdout
    assert f"turn 1  {ids['chat_1']}  step 1" in shown


def test_the_headless_service_lists_a_question_asked_inside_a_subgraph(
        recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # main() gives the service's logger a handler of its own: undone after the test
    logger = logging.getLogger("support-service")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    spec = importlib.util.spec_from_file_location("headless_service", HEADLESS)
    assert spec is not None and spec.loader is not None
    service = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(service)
    monkeypatch.setenv("SUPPORT_TRACE_DB", recorded["db"])
    assert service.main(["pending"]) == 0
    pending = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ids = recorded["ids"]
    assert [p["run_id"] for p in pending] == [ids["support_waiting"], ids["warranty_waiting"]]
    assert pending[1]["message"] == "Please refund $120 for the broken kettle"
