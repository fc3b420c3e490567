"""Property-based tests (Hypothesis): the codec, the state rebuilt from the store, merge order.

* **Codec:** whatever a node may hold round-trips — ``loads(dumps(v))`` is ``v`` for JSON-native
  values, ``coerce(loads(dumps(v)), T)`` is ``v`` for datetimes, bytes, enums, dataclasses and
  containers of them; the fast path agrees with the path-naming one, and both refuse what the
  store cannot hold (NaN, lone surrogates, values nested too deep).
* **Rebuilt state:** for random schemas (replace / append / add / merge keys), random step
  shapes (one task, or several in parallel) and random updates, ``TraceStore.state_at`` and the
  SQL macro ``state_at(run_id, step)`` give, for every step, exactly the state the run had live
  after that step — and that state is what the merge rules say it should be.
* **Merge order:** parallel branches that finish in any order give the same state and the same
  stored changes as when they finish in task order.

Examples per test: ``WORKBENCH_HYPOTHESIS_EXAMPLES`` (default 25; the codec tests take 4x).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import enum
import json
import math
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import END, START, Graph, Send, add, append, merge
from workbench.codec import MAX_DEPTH, coerce, dumps, fast_dumps, loads, to_jsonable
from workbench.errors import SerializationError
from workbench.runtime import Runner
from workbench.store import TraceStore

EXAMPLES = int(os.environ.get("WORKBENCH_HYPOTHESIS_EXAMPLES", "25"))
# No example database: nothing is written into the working tree (failures print their example).
FAST = settings(max_examples=EXAMPLES * 4, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


# =========================================================================== the codec

# Text a UTF-8 file can hold: every code point but the surrogates.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | text)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=25)


@FAST
@given(json_values)
def test_json_values_round_trip_unchanged(value: Any) -> None:
    assert to_jsonable(value) == value
    encoded = dumps(value)
    assert loads(encoded) == value
    assert fast_dumps(value) == encoded
    json.loads(encoded)  # standard JSON: no NaN, no Infinity


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Stamp:
    at: dt.datetime
    note: str
    blob: bytes
    tags: list[str]


fixed_zones = st.one_of(st.none(), st.just(dt.UTC),
                        st.builds(lambda m: dt.timezone(dt.timedelta(minutes=m)), st.integers(-23 * 60, 23 * 60)))
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=fixed_zones)

TYPED: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (dt.datetime, datetimes),
    (dt.date, st.dates()),
    (dt.time, st.times()),
    (bytes, st.binary(max_size=64)),
    (uuid.UUID, st.uuids()),
    (Decimal, st.decimals(allow_nan=False, allow_infinity=False)),
    (Path, st.lists(st.text("abc/._-", min_size=1, max_size=5), min_size=1, max_size=3).map(lambda p: Path(*p))),
    (Colour, st.sampled_from(Colour)),
    (Level, st.sampled_from(Level)),
    (dt.timedelta, st.integers(-(10**9), 10**9).map(lambda ms: dt.timedelta(milliseconds=ms))),
    (Stamp, st.builds(Stamp, at=datetimes, note=text, blob=st.binary(max_size=16), tags=st.lists(text, max_size=3))),
    (list[dt.datetime], st.lists(datetimes, max_size=4)),
    (dict[str, bytes], st.dictionaries(text, st.binary(max_size=8), max_size=4)),
    (tuple[int, ...], st.lists(st.integers(), max_size=4).map(tuple)),
    (set[str], st.sets(text, max_size=4)),
    (list[Stamp] | None, st.none() | st.lists(st.builds(Stamp, at=datetimes, note=text, blob=st.binary(max_size=4),
                                                        tags=st.just([])), max_size=2)),
]


@FAST
@given(st.sampled_from(range(len(TYPED))).flatmap(lambda i: st.tuples(st.just(i), TYPED[i][1])))
def test_typed_values_round_trip_through_the_schema_type(case: tuple[int, Any]) -> None:
    index, value = case
    annotation = TYPED[index][0]
    encoded = dumps(value, "state.key")
    assert fast_dumps(value, "state.key") == encoded
    decoded = coerce(loads(encoded), annotation)
    assert decoded == value, (annotation, encoded)
    assert dumps(decoded) == encoded  # and again: a fixed point


@FAST
@given(st.recursive(st.just(math.nan) | st.just(math.inf) | st.just(-math.inf),
                    lambda inner: st.lists(inner, min_size=1, max_size=3)
                    | st.dictionaries(text, inner, min_size=1, max_size=3), max_leaves=6),
       json_values)
def test_nan_and_infinity_are_refused_on_both_paths(bad: Any, other: Any) -> None:
    value = {"ok": other, "bad": bad}
    for encode in (dumps, fast_dumps):
        with pytest.raises(SerializationError, match="bad"):
            encode(value, "state")


@FAST
@given(text, st.integers(0xD800, 0xDFFF), text, st.booleans())
def test_lone_surrogates_are_refused_on_both_paths(before: str, code: int, after: str, as_key: bool) -> None:
    bad = before + chr(code) + after
    value = {"k": {bad: 1}} if as_key else {"k": [1, bad]}
    for encode in (dumps, fast_dumps):
        with pytest.raises(SerializationError, match="surrogate"):
            encode(value, "state")


def _nested(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@FAST
@given(st.integers(0, MAX_DEPTH - 1))
def test_values_within_the_depth_limit_round_trip(depth: int) -> None:
    value = _nested(depth)
    assert loads(dumps(value)) == value
    assert fast_dumps(value) == dumps(value)


@FAST
@given(st.integers(MAX_DEPTH + 1, 3 * MAX_DEPTH))
def test_values_over_the_depth_limit_are_refused_by_dumps(depth: int) -> None:
    with pytest.raises(SerializationError, match="nested deeper"):
        dumps(_nested(depth))


@FAST
@given(st.integers(MAX_DEPTH + 1, 3 * MAX_DEPTH))
def test_values_over_the_depth_limit_are_refused_by_fast_dumps_too(depth: int) -> None:
    with pytest.raises(SerializationError, match="nested deeper"):
        fast_dumps(_nested(depth))


# =========================================================================== state rebuilt from the store

RULES = ["replace", "append", "add", "merge"]
small_json = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                      max_size=3), max_leaves=6)


def _annotation(rule: str) -> Any:
    return {"replace": Any, "append": Annotated[list, append], "add": Annotated[int, add],
            "merge": Annotated[dict, merge]}[rule]


def _update_value(rule: str) -> st.SearchStrategy[Any]:
    if rule == "replace":
        return small_json
    if rule == "append":
        return st.lists(small_json, max_size=3)
    if rule == "add":
        return st.integers(-100, 100)
    return st.dictionaries(st.sampled_from("abcde"), small_json, max_size=3)


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """Random key rules and a random sequence of steps, each a list of parallel task updates;
    a replace key is written by at most one task of a step (two would be a conflict error)."""
    rules = draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=5))
    keys = [f"k{i}" for i in range(len(rules))]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        width = draw(st.integers(1, MAX_WIDTH))
        taken: set[str] = set()
        tasks = []
        for _ in range(width):
            chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
            update = {}
            for key in chosen:
                rule = rules[keys.index(key)]
                if rule == "replace":
                    if key in taken:
                        continue
                    taken.add(key)
                update[key] = draw(_update_value(rule))
            tasks.append(update)
        steps.append(tasks)
    return rules, steps


def _model(rules: list[str], steps: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """What the merge rules say the state is after each step (index 0: the defaults)."""
    defaults = {"replace": None, "append": [], "add": 0, "merge": {}}
    state = {f"k{i}": copy.deepcopy(defaults[r]) for i, r in enumerate(rules)}
    state["cursor"] = 0
    states = [copy.deepcopy(state)]
    for number, tasks in enumerate(steps, start=1):
        for update in tasks:
            for key, value in update.items():
                rule = rules[int(key[1:])]
                if rule == "replace":
                    state[key] = value
                elif rule == "append":
                    state[key] = state[key] + value
                elif rule == "add":
                    state[key] += value
                else:
                    state[key] = {**state[key], **value}
        state["cursor"] = number
        states.append(copy.deepcopy(state))
    return states


MAX_WIDTH = 4


def _plan_graph(rules: list[str], steps: list[list[dict[str, Any]]]) -> Graph:
    """Step 1 is ``begin``; step s+2 runs nodes ``w0``..``w{n-1}`` in parallel (n = the width of
    ``steps[s]``), node ``wt`` returning ``steps[s][t]``; ``cursor`` counts the steps done."""
    fields: dict[str, Any] = {f"k{i}": _annotation(r) for i, r in enumerate(rules)}
    fields["cursor"] = Annotated[int, add]
    schema = TypedDict("PlanState", fields)  # type: ignore[misc]
    g = Graph("plan", schema, max_steps=1000)
    names = [f"w{t}" for t in range(MAX_WIDTH)]

    def after(state: Any) -> Any:
        done = state["cursor"]
        return END if done >= len(steps) else names[:len(steps[done])]

    def make(t: int) -> Any:
        def work(state: Any) -> dict[str, Any]:
            update = copy.deepcopy(steps[state["cursor"]][t])
            if t == 0:
                update["cursor"] = 1
            return update

        return work

    g.add_node("begin", lambda s: None)
    g.edge(START, "begin")
    for t, name in enumerate(names):
        g.add_node(name, make(t))
    for name in ["begin", *names]:
        g.route(name, after, targets=[*names, END])
    return g


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceStore]:
    store = TraceStore(str(tmp_path_factory.mktemp("props") / "t.duckdb"))
    yield store
    store.close()


@SLOW
@given(plans())
def test_state_rebuilt_from_the_store_is_the_live_state_after_every_step(
        prop_store: TraceStore, plan: tuple[list[str], list[list[dict[str, Any]]]]) -> None:
    rules, steps = plan
    live: dict[int, dict[str, Any]] = {}

    def watch(state: Any) -> bool:  # called with the live state after every committed step
        live[len(live) + 1] = copy.deepcopy(dict(state))
        return False

    result = Runner(_plan_graph(rules, steps), prop_store).run({}, break_when=watch)
    assert result.status == "completed", result.error
    last = prop_store.last_committed_step(result.run_id)
    assert last == len(steps) + 1
    live[last] = copy.deepcopy(result.state)
    expected = _model(rules, steps)
    for step in range(last + 1):
        model = expected[max(step - 1, 0)]
        rebuilt = prop_store.state_at(result.run_id, step)
        [(text_state,)] = prop_store.query("SELECT state FROM state_at(?, ?)", [result.run_id, step])
        assert json.loads(text_state) == rebuilt, step
        assert rebuilt == model, (step, rebuilt, model)
        if step in live:
            assert to_jsonable(live[step]) == rebuilt, step
    assert set(live) == set(range(1, last + 1))
    # Every step that changed something, in one pass (what playback uses).
    states = prop_store.states(result.run_id)
    assert {0, last} <= set(states)
    assert all(state == expected[max(step - 1, 0)] for step, state in states.items())
    # Beyond the last step: the latest state.
    assert prop_store.state_at(result.run_id, last + 5) == expected[-1]


# =========================================================================== merge order


class Race(TypedDict):
    notes: Annotated[list, append]
    total: Annotated[int, add]
    seen: Annotated[dict, merge]
    winner: Any


def _race_graph(updates: list[dict[str, Any]], finish_order: list[int]) -> tuple[Graph, list[int]]:
    """``len(updates)`` parallel branches; branch i finishes only after the one before it in
    ``finish_order`` has (asyncio events: deterministic, no sleeps). Also returns the list the
    branches append themselves to as they finish."""
    g = Graph("race", Race)
    events: dict[int, asyncio.Event] = {}
    finished: list[int] = []

    async def setup(state: Race) -> None:
        for i in range(len(updates)):
            events[i] = asyncio.Event()
        return None

    async def branch(arg: dict[str, Any]) -> dict[str, Any]:
        i = arg["i"]
        pos = finish_order.index(i)
        if pos:
            await asyncio.wait_for(events[finish_order[pos - 1]].wait(), 30)
        finished.append(i)
        events[i].set()
        return copy.deepcopy(updates[i])

    g.add_node("setup", setup)
    g.add_node("branch", branch)
    g.add_node("done", lambda s: None)
    g.edge(START, "setup")
    g.route("setup", lambda s: [Send("branch", {"i": i}) for i in range(len(updates))], targets=["branch"])
    g.edge("branch", "done")
    g.edge("done", END)
    return g, finished


@st.composite
def races(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    width = draw(st.integers(2, 5))
    writer = draw(st.integers(0, width - 1))
    updates = []
    for i in range(width):
        update: dict[str, Any] = {
            "notes": draw(st.lists(small_json, max_size=3)),
            "total": draw(st.integers(-50, 50)),
            "seen": draw(st.dictionaries(st.sampled_from("abcd"), small_json, max_size=3)),
        }
        if i == writer and draw(st.booleans()):
            update["winner"] = draw(small_json)
        updates.append(update)
    order = draw(st.permutations(range(width)))
    return updates, list(order)


@SLOW
@given(races())
def test_merge_result_does_not_depend_on_which_branch_finishes_first(
        prop_store: TraceStore, race: tuple[list[dict[str, Any]], list[int]]) -> None:
    updates, order = race
    outcomes = []
    for finish_order in (order, list(range(len(updates)))):
        graph, finished = _race_graph(updates, finish_order)
        result = Runner(graph, prop_store, max_concurrency=len(updates)).run({})
        assert result.status == "completed", result.error
        assert finished == finish_order  # they really finished in this order
        changes = [(k, op, v) for s, k, op, v in prop_store.changes(result.run_id) if s == 2]
        outcomes.append((result.state, changes, prop_store.state_at(result.run_id, 3)))
    (state_a, changes_a, stored_a), (state_b, changes_b, stored_b) = outcomes
    # The merge applies branches in task order, whatever order they finished in.
    expected: dict[str, Any] = {"notes": [], "total": 0, "seen": {}, "winner": None}
    for u in updates:
        expected["notes"] += u["notes"]
        expected["total"] += u["total"]
        expected["seen"] = {**expected["seen"], **u["seen"]}
        if "winner" in u:
            expected["winner"] = u["winner"]
    assert state_a == state_b == expected
    assert changes_a == changes_b
    assert stored_a == stored_b == expected
