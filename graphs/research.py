"""Research assistant — plan, fan out, join, write, critique, revise.

plan subtopics with the model → one researcher per subtopic, in parallel (how many is known
only at run time) → join → write a report → critique it → revise until the critic is satisfied
or three rounds have been written.

Input: {"question": str}
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, RetryPolicy, Send, add, append

MAX_ROUNDS = 3


class ResearchState(TypedDict):
    question: str
    subtopics: list[str]
    notes: Annotated[list[str], append]
    report: str
    critique: str
    rounds: Annotated[int, add]


graph = Graph("research", ResearchState, max_steps=20, inputs=["question"],
              description="plan subtopics, research them in parallel, write and revise a report")


@graph.node
def plan(state: ResearchState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Split the question into 2-5 subtopics, one per line starting with '- '."},
        {"role": "user", "content": state["question"]},
    ])
    topics = [line[2:].strip() for line in answer.text.splitlines() if line.startswith("- ")]
    return {"subtopics": topics or [state["question"]]}


def fan_out(state: ResearchState) -> list[Send]:
    return [Send("research", {"topic": t, "question": state["question"]}) for t in state["subtopics"]]


graph.route("plan", fan_out, targets=["research"])


@graph.node(retry=RetryPolicy(attempts=2, initial_delay=0.2), timeout=60)
async def research(branch: dict[str, Any], ctx: Any) -> dict[str, Any]:
    answer = await ctx.allm([
        {"role": "system", "content": "You are a research assistant. Write a two-sentence note."},
        {"role": "user", "content": f"Question: {branch['question']}\n{branch['topic']}"},
    ])
    return {"notes": [answer.text]}


@graph.node
def write(state: ResearchState, ctx: Any) -> dict[str, Any]:
    feedback = f"\nFeedback on the last version: {state['critique']}" if state["critique"] else ""
    findings = "\n".join(f"- {n}" for n in state["notes"])
    answer = ctx.llm([
        {"role": "system", "content": "Write a short report answering the question from the findings, "
                                      "one '## ' section per finding." + (" Revise it." if feedback else "")},
        {"role": "user", "content": f"Question: {state['question']}\nFindings:\n{findings}{feedback}"},
    ], stream=True)
    return {"report": answer.text, "rounds": 1}


@graph.node
def critique(state: ResearchState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Critique the report. Answer GOOD, or REVISE: and what to fix."},
        {"role": "user", "content": state["report"]},
    ])
    return {"critique": answer.text.strip()}


def good_enough(state: ResearchState) -> str:
    if state["critique"].startswith("GOOD") or state["rounds"] >= MAX_ROUNDS:
        return END
    return "write"


graph.edge(START, "plan")
graph.edge("research", "write")
graph.edge("write", "critique")
graph.route("critique", good_enough, targets=["write", END])
