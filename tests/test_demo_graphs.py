"""The demo graphs in graphs/, run offline on the demo model, take different paths for different
inputs; the support hand-off pauses for a human and resumes from a new store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench import Runner
from workbench.graph import Graph
from workbench.loader import load_graph
from workbench.render import to_ascii, to_mermaid
from workbench.store import TraceStore

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")


def nodes(store: TraceStore, run_id: str) -> list[str]:
    return [t["node"] for t in store.tasks(run_id) if t["status"] in ("completed", "interrupted")]


@pytest.fixture
def db(project: Path) -> str:
    return str(project / "traces" / "demo.duckdb")


@pytest.fixture
def support(project: Path) -> Graph:
    return load_graph("support")


@pytest.fixture
def research(project: Path) -> Graph:
    return load_graph("research")


def test_demo_graphs_load_validate_and_render(support: Graph, research: Graph) -> None:
    for g, expected in ((support, {"classify", "fetch_account", "retrieve_policy", "draft", "check", "send",
                                   "handoff"}),
                        (research, {"plan", "research", "write", "critique"})):
        assert set(g.nodes) == expected
        assert g.validate() is g
        art = to_ascii(g)
        assert all(n in art for n in expected)
        assert to_mermaid(g).startswith("flowchart TD")


# ---------------------------------------------------------------- support


def test_support_technical_message_is_answered_with_one_draft(support: Graph, db: str) -> None:
    with TraceStore(db) as st:
        r = Runner(support, st).run({"message": "I get an error when I log in", "customer_id": "C-1001"})
        assert r.status == "completed", r.error
        assert r.state["category"] == "technical"
        assert r.state["drafts"] == 1
        assert r.state["handled_by"] == "assistant"
        assert r.state["reply"] == r.state["draft"]
        assert r.state["reply"].startswith("Hi Ada Lovelace,") and "password" in r.state["reply"]
        assert r.state["account"]["tier"] == "pro"
        assert nodes(st, r.run_id) == ["classify", "fetch_account", "retrieve_policy", "draft", "check", "send"]
        calls = [c for c in st.llm_calls(r.run_id) if c["kind"] == "llm"]
        assert [c["node"] for c in calls] == ["classify", "draft"]


def test_support_small_refund_is_redrafted_then_sent(support: Graph, db: str) -> None:
    with TraceStore(db) as st:
        r = Runner(support, st).run({"message": "I'd like a refund of $40 for my last order",
                                     "customer_id": "C-1002"})
        assert r.status == "completed", r.error
        assert r.state["category"] == "refund"
        assert r.state["drafts"] == 2
        assert r.state["handled_by"] == "assistant"
        assert r.state["safety_issues"] == []
        assert "guarantee" not in r.state["reply"].lower()
        assert nodes(st, r.run_id) == ["classify", "fetch_account", "retrieve_policy",
                                       "draft", "check", "draft", "check", "send"]
        # The first draft failed the safety rule: the check after it recorded the issues.
        checks = [t for t in st.tasks(r.run_id) if t["node"] == "check"]
        assert checks[0]["update"]["safety_issues"] == ["'guarantee'", "'full refund'"]
        assert checks[1]["update"]["safety_issues"] == []
        drafts = [c for c in st.llm_calls(r.run_id) if c["node"] == "draft" and c["kind"] == "llm"]
        assert "Safety feedback" in drafts[1]["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("message", "category", "answer", "reply"),
    [
        ("Please refund $500 for the annual plan", "refund", {"reply": "Billing will review your refund."},
         "Billing will review your refund."),
        ("This is unacceptable, I want to speak to a manager!", "escalation", "A manager will call you today.",
         "A manager will call you today."),
    ],
)
def test_support_handoff_waits_for_a_human_and_resumes(project: Path, db: str, message: str, category: str,
                                                       answer: Any, reply: str) -> None:
    with TraceStore(db) as st:
        r = Runner(load_graph("support"), st).run({"message": message, "customer_id": "C-1003"})
        assert r.status == "waiting"
        assert r.state["category"] == category
        assert r.interrupt["category"] == category and r.interrupt["message"] == message
        assert r.interrupt["draft"] is None
        assert r.state["drafts"] == 0
        assert nodes(st, r.run_id) == ["classify", "fetch_account", "retrieve_policy", "handoff"]
        assert st.get_run(r.run_id)["status"] == "waiting"
    # Later, from a fresh process's point of view.
    with TraceStore(db) as st:
        done = Runner(load_graph("support"), st).resume(r.run_id, answer)
        assert done.status == "completed", done.error
        assert done.state["handled_by"] == "human"
        assert done.state["reply"] == reply
        assert st.get_run(r.run_id)["status"] == "completed"
        # classify's model call was made once, before the pause.
        assert [c["node"] for c in st.llm_calls(r.run_id) if c["kind"] == "llm"] == ["classify"]


def test_support_refund_at_the_limit_is_drafted(support: Graph, db: str) -> None:
    with TraceStore(db) as st:
        r = Runner(support, st).run({"message": "refund $100 please"})
        assert r.status == "completed" and r.state["handled_by"] == "assistant"
        assert r.state["account"]["id"] == "anonymous"


def test_support_different_inputs_take_different_paths(support: Graph, db: str) -> None:
    inputs = ["my login is broken", "refund $40 please", "refund $400 please", "I will sue you"]
    with TraceStore(db) as st:
        paths = {tuple(nodes(st, Runner(support, st).run({"message": m}).run_id)) for m in inputs}
    assert len(paths) == 3  # send once, redraft then send, hand off (twice)


# ---------------------------------------------------------------- research


@pytest.mark.parametrize(
    "question",
    ["What are the costs, benefits and risks of solar panels?",
     "Should I use Postgres or SQLite?",
     "What are the costs, benefits, risks, alternatives and timelines of heat pumps versus gas boilers?"],
)
def test_research_fans_out_one_researcher_per_subtopic(research: Graph, db: str, question: str) -> None:
    tokens: list[str] = []
    with TraceStore(db) as st:
        runner = Runner(research, st, listener=lambda e: tokens.append(e.data["data"]) if e.kind == "token" else None)
        r = runner.run({"question": question})
        assert r.status == "completed", r.error
        topics = r.state["subtopics"]
        assert 2 <= len(topics) <= 5
        tasks = st.tasks(r.run_id)
        researchers = [t for t in tasks if t["node"] == "research"]
        assert len(researchers) == len(topics)
        assert {t["step"] for t in researchers} == {2}
        assert [t["arg"]["topic"] for t in researchers] == topics
        # Joined: write ran once after all researchers, with one note per subtopic, in subtopic order.
        assert next(t["step"] for t in tasks if t["node"] == "write") == 3
        assert len(r.state["notes"]) == len(topics)
        assert [n.split(":")[0] for n in r.state["notes"]] == topics
        rounds = r.state["rounds"]
        assert 1 <= rounds <= 3
        assert len([t for t in tasks if t["node"] == "write"]) == rounds
        assert r.state["critique"].startswith("GOOD") or rounds == 3
        assert "## Conclusion" in r.state["report"]
        assert tokens  # the writer streams its report


def test_research_widths_differ_by_question(research: Graph, db: str) -> None:
    with TraceStore(db) as st:
        a = Runner(research, st).run({"question": "Should I use Postgres or SQLite?"})
        b = Runner(research, st).run({"question": "What are the costs, benefits, risks, alternatives and "
                                                  "timelines of heat pumps versus gas boilers?"})
    assert len(a.state["subtopics"]) != len(b.state["subtopics"])


def test_research_stops_after_three_rounds_when_never_good(research: Graph, db: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The echo model never says GOOD: the loop must end at its round limit.
    monkeypatch.setenv("WORKBENCH_MODEL", "workbench-demo/echo")
    with TraceStore(db) as st:
        r = Runner(research, st).run({"question": "Is the loop bounded?"})
        assert r.status == "completed", r.error
        assert r.state["rounds"] == 3
        assert not r.state["critique"].startswith("GOOD")
        assert [t["node"] for t in st.tasks(r.run_id)].count("critique") == 3
