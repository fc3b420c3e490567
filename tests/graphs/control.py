"""Graphs for control from inside a node: Commands, parallel questions, deferred nodes,
Overwrite, several retry policies (tests/test_control.py and tests/test_cli_control.py)."""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from workbench import END, START, Command, Graph, Overwrite, RetryPolicy, Send, append, interrupt


class State(TypedDict):
    topic: str
    log: Annotated[list[str], append]
    answer: str


# --- a Command picks the next node; on resume the answer decides where to jump ------------------

jump = Graph("jump", State, description="ask, then jump to yes or no")


@jump.node(goto=["yes", "no"])
def ask(state: State) -> Command:
    reply = interrupt({"question": f"go on with {state['topic']}?"})
    return Command(update={"answer": reply, "log": ["asked"]}, goto="yes" if reply == "y" else "no")


@jump.node
def yes(state: State) -> dict[str, Any]:
    return {"log": ["yes"]}


@jump.node
def no(state: State) -> dict[str, Any]:
    return {"log": ["no"]}


jump.edge(START, "ask")
jump.edge("yes", END)
jump.edge("no", END)


# --- two branches ask at once; a third finishes -------------------------------------------------

questions = Graph("questions", State, description="p and q ask in parallel, r finishes")


@questions.node
def p(state: State) -> dict[str, Any]:
    return {"log": [f"p got {interrupt({'who': 'p'})}"]}


@questions.node
def q(state: State) -> dict[str, Any]:
    return {"log": [f"q got {interrupt({'who': 'q'})}"]}


@questions.node
def r(state: State) -> dict[str, Any]:
    return {"log": ["r"]}


@questions.node
def after_p(state: State) -> dict[str, Any]:
    return {"log": ["after p"]}


@questions.node
def after_q(state: State) -> dict[str, Any]:
    return {"log": ["after q"]}


@questions.node
def after_r(state: State) -> dict[str, Any]:
    return {"log": ["after r"]}


for _n in ("p", "q", "r"):
    questions.edge(START, _n)
    questions.edge(_n, f"after_{_n}")
    questions.edge(f"after_{_n}", END)


# --- a fan-out whose branches fan out again through Commands -------------------------------------

fanout = Graph("fanout", State, description="plan sends topics; each topic sends its parts")


@fanout.node(goto=["topic"])
def plan(state: State) -> Command:
    return Command(goto=[Send("topic", {"name": t}) for t in state["topic"].split(",")])


@fanout.node(goto=["part"])
def topic(branch: dict[str, Any]) -> Command:
    name = branch["name"]
    return Command(update={"log": [f"topic {name}"]}, goto=[Send("part", {"name": f"{name}.{i}"}) for i in (1, 2)])


@fanout.node
def part(branch: dict[str, Any]) -> dict[str, Any]:
    return {"log": [f"part {branch['name']}"]}


fanout.edge(START, "plan")
fanout.edge("part", END)
fanout.edge("topic", END)


# --- a deferred summary after branches of uneven length ----------------------------------------

deferred = Graph("deferred", State, description="summary waits for the longest branch")


@deferred.node
def a(state: State) -> dict[str, Any]:
    return {"log": ["a"]}


@deferred.node
def b1(state: State) -> dict[str, Any]:
    return {"log": ["b1"]}


@deferred.node
def b2(state: State) -> dict[str, Any]:
    return {"log": ["b2"]}


@deferred.node(defer=True)
def summary(state: State) -> dict[str, Any]:
    return {"log": [f"summary of {len(state['log'])}"]}


deferred.edge(START, "a")
deferred.edge(START, "b1")
deferred.edge("b1", "b2")
deferred.edge("a", "summary")
deferred.edge("b2", "summary")
deferred.edge("summary", END)


# --- Overwrite and several updates in order -----------------------------------------------------

trim = Graph("trim", State, description="fill a list, then keep its last two items")


@trim.node
def fill(state: State) -> list[dict[str, Any]]:
    return [{"log": ["one"]}, {"log": ["two", "three"]}, {"answer": "first"}, {"answer": "filled"}]


@trim.node
def keep_two(state: State) -> dict[str, Any]:
    return {"log": Overwrite(state["log"][-2:])}


trim.sequence(START, "fill", "keep_two", END)


# --- several retry policies; each resume of the failed run gives a fresh budget ------------------

flaky = Graph("flaky", State, description="fails with ValueError unless $WORKBENCH_TEST_FIXED is set")


@flaky.node(retry=[RetryPolicy(attempts=2, initial_delay=0, jitter=False, retry_on=ValueError),
                   RetryPolicy(attempts=4, initial_delay=0, jitter=False)])
def shaky(state: State, ctx: Any) -> dict[str, Any]:
    if not os.environ.get("WORKBENCH_TEST_FIXED"):
        raise ValueError(f"attempt {ctx.attempt} failed")
    return {"log": [f"fixed at attempt {ctx.attempt}, first started {ctx.first_attempt_started.isoformat()}"]}


flaky.sequence(START, "shaky", END)


# --- a Command and a deferred node across a crash (tests/test_control.py kills the process) ------

crashy = Graph("crashy", State, description="chooser jumps while blocker waits on a gate; summary deferred")


def _gate(var: str) -> None:
    fifo = os.environ.get(var)
    if fifo:
        with open(fifo, encoding="utf-8") as fh:  # blocks until the test writes (or kills us)
            fh.readline()


@crashy.node(goto=["after"])
def chooser(state: State) -> Command:
    return Command(update={"log": ["chose"]}, goto="after")


@crashy.node
def blocker(state: State) -> dict[str, Any]:
    _gate("WORKBENCH_TEST_GATE")
    return {"log": ["unblocked"]}


@crashy.node
def after(state: State) -> dict[str, Any]:
    _gate("WORKBENCH_TEST_GATE2")
    return {"log": ["after"]}


@crashy.node(defer=True)
def wrapup(state: State) -> dict[str, Any]:
    return {"log": ["wrapup"]}


crashy.edge(START, "chooser")
crashy.edge(START, "blocker")
crashy.edge("blocker", "wrapup")
crashy.edge("after", "wrapup")
crashy.edge("wrapup", END)
