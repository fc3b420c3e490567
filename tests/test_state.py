"""Typed shared state: merge rules, defaults, key and type checks, and the three schema kinds."""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any, Optional, TypedDict

import pytest
from pydantic import BaseModel, Field

from workbench import END, START, Graph, Overwrite, Runner, add, append, custom, merge, replace
from workbench.errors import InputError, InvalidUpdateError
from workbench.state import StateSchema, apply_changes


def concat_upper(current: str | None, update: str) -> str:
    return (current or "") + update.upper()


class Rules(TypedDict):
    name: str
    items: Annotated[list[str], append]
    total: Annotated[int, add]
    cost: Annotated[float, add]
    meta: Annotated[dict[str, Any], merge]
    log: Annotated[str, custom(concat_upper)]
    best: Annotated[int, max]
    history: Annotated[list[int], operator.add]
    score: Annotated[int, operator.add]
    plain: Annotated[str, replace]
    maybe: Optional[str]  # noqa: UP045 - the Optional spelling is part of what is tested
    flag: bool
    tags: list[str]
    extra: dict[str, int]


# ---------------------------------------------------------------- schema unit tests


def test_rules_are_read_from_annotations() -> None:
    schema = StateSchema(Rules)
    kinds = {k: schema.rule(k).kind for k in schema.keys}
    assert kinds == {
        "name": "replace", "items": "append", "total": "add", "cost": "add", "meta": "merge",
        "log": "custom", "best": "custom", "history": "append", "score": "add", "plain": "replace",
        "maybe": "replace", "flag": "replace", "tags": "replace", "extra": "replace",
    }
    assert schema.keys[0] == "name" and schema.keys[-1] == "extra"  # declaration order


def test_defaults_per_type_and_rule() -> None:
    state, changes = StateSchema(Rules).initial({})
    assert state == {
        "name": "", "items": [], "total": 0, "cost": 0.0, "meta": {}, "log": "", "best": 0,
        "history": [], "score": 0, "plain": "", "maybe": None, "flag": False, "tags": [], "extra": {},
    }
    assert isinstance(state["cost"], float) and isinstance(state["total"], int)
    assert [(k, op) for k, op, _ in changes] == [(k, "set") for k in state]


def test_defaults_are_fresh_objects() -> None:
    schema = StateSchema(Rules)
    a, _ = schema.initial({})
    b, _ = schema.initial({})
    a["items"].append("x")
    a["meta"]["k"] = 1
    assert b["items"] == [] and b["meta"] == {}


def test_input_overlays_defaults() -> None:
    state, _ = StateSchema(Rules).initial({"name": "n", "items": ["a"]})
    assert state["name"] == "n" and state["items"] == ["a"] and state["total"] == 0


def test_replace_rule() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({"name": "old"})
    new, changes = schema.merge(state, [("n", {"name": "new"})])
    assert new["name"] == "new"
    assert state["name"] == "old"  # the old state is left as it was
    assert changes == [("name", "set", "new")]


def test_append_one_item_or_a_list() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({"items": ["a"]})
    new, changes = schema.merge(state, [("x", {"items": "b"}), ("y", {"items": ["c", "d"]})])
    assert new["items"] == ["a", "b", "c", "d"]
    assert state["items"] == ["a"]
    # Stored as the appended items only, not the whole list.
    assert changes == [("items", "extend", ["b", "c", "d"])]


def test_operator_add_on_a_list_appends_and_on_an_int_adds() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({"history": [1], "score": 5})
    new, changes = schema.merge(state, [("x", {"history": [2, 3], "score": 2}), ("y", {"score": 3})])
    assert new["history"] == [1, 2, 3]
    assert new["score"] == 10
    assert ("history", "extend", [2, 3]) in changes
    assert ("score", "set", 10) in changes


def test_add_rule_sums_from_several_nodes() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    new, _ = schema.merge(state, [("a", {"total": 2, "cost": 0.25}), ("b", {"total": 3, "cost": 1})])
    assert new["total"] == 5
    assert new["cost"] == pytest.approx(1.25)


def test_merge_dict_rule_update_keys_win() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({"meta": {"a": 1, "b": 1}})
    new, changes = schema.merge(state, [("x", {"meta": {"b": 2}}), ("y", {"meta": {"c": 3}})])
    assert new["meta"] == {"a": 1, "b": 2, "c": 3}
    assert state["meta"] == {"a": 1, "b": 1}
    assert changes == [("meta", "set", {"a": 1, "b": 2, "c": 3})]


def test_merge_rule_refuses_a_non_dict() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    with pytest.raises(InvalidUpdateError, match=r"node 'x'.*'meta'"):
        schema.merge(state, [("x", {"meta": ["not", "a", "dict"]})])


def test_custom_function_rules() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({"best": 4})
    new, _ = schema.merge(state, [("a", {"log": "ab", "best": 2}), ("b", {"log": "cd", "best": 9})])
    assert new["log"] == "ABCD"
    assert new["best"] == 9


def test_parallel_writes_to_plain_key_name_both_nodes_and_key() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    with pytest.raises(InvalidUpdateError) as info:
        schema.merge(state, [("writer_one", {"name": "a"}), ("writer_two", {"name": "b"})])
    msg = str(info.value)
    assert "'writer_one'" in msg and "'writer_two'" in msg and "'name'" in msg


def test_parallel_writes_to_merge_rule_keys_are_fine() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    new, _ = schema.merge(state, [("a", {"items": "x", "total": 1}), ("b", {"items": "y", "total": 1})])
    assert new["items"] == ["x", "y"] and new["total"] == 2


def test_unknown_key_refused_naming_node_and_key() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    with pytest.raises(InvalidUpdateError) as info:
        schema.merge(state, [("mynode", {"nmae": "typo"})])
    assert "'mynode'" in str(info.value) and "'nmae'" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("total", "3", "int"), ("name", 3, "str"), ("flag", "yes", "bool"), ("tags", "a", "list"),
     ("extra", [1], "dict"), ("total", True, "int"), ("cost", "1.0", "float")],
)
def test_type_mismatch_refused(key: str, value: Any, expected: str) -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    with pytest.raises(InvalidUpdateError) as info:
        schema.merge(state, [("typed", {key: value})])
    msg = str(info.value)
    assert "'typed'" in msg and repr(key) in msg and expected in msg


def test_int_accepted_for_float_and_none_for_anything() -> None:
    schema = StateSchema(Rules)
    state, _ = schema.initial({})
    new, _ = schema.merge(state, [("a", {"cost": 2, "maybe": None, "name": None})])
    assert new["cost"] == 2 and new["maybe"] is None and new["name"] is None


def test_non_dict_update_refused() -> None:
    schema = StateSchema(Rules)
    with pytest.raises(InvalidUpdateError, match=r"'bad'.*list"):
        schema.merge({}, [("bad", ["name", "x"])])  # type: ignore[list-item]


def test_untyped_dict_state_accepts_any_key() -> None:
    schema = StateSchema(None)
    assert schema.is_open()
    new, changes = schema.merge({"a": 1}, [("x", {"b": 2, "a": 3})])
    assert new == {"a": 3, "b": 2}
    assert changes == [("b", "set", 2), ("a", "set", 3)]


def test_apply_changes_rebuilds_state() -> None:
    schema = StateSchema(Rules)
    state, changes0 = schema.initial({"items": ["a"]})
    s1, changes1 = schema.merge(state, [("x", {"items": ["b"], "total": 2, "meta": {"k": 1}})])
    s2, changes2 = schema.merge(s1, [("x", {"items": "c", "name": "n"})])
    rebuilt = apply_changes({}, [*changes0, *changes1, *changes2])
    assert rebuilt == s2


# ---------------------------------------------------------------- through a run


class RunState(TypedDict):
    notes: Annotated[list[str], append]
    total: Annotated[int, add]
    meta: Annotated[dict[str, Any], merge]
    best: Annotated[int, max]
    winner: str


def _fan_graph(writer_b: dict[str, Any]) -> Graph:
    g = Graph("fan", RunState)

    @g.node
    def left(state: RunState) -> dict[str, Any]:
        return {"notes": "left", "total": 1, "meta": {"left": True}, "best": 3, "winner": "left"}

    @g.node
    def right(state: RunState) -> dict[str, Any]:
        return writer_b

    g.edge(START, "left")
    g.edge(START, "right")
    g.edge("left", END)
    g.edge("right", END)
    return g


def test_parallel_branches_merge_by_rule(store: Any) -> None:
    g = _fan_graph({"notes": ["r1", "r2"], "total": 2, "meta": {"right": True}, "best": 7})
    result = Runner(g, store).run({"best": 5})
    assert result.status == "completed", result.error
    assert result.state == {
        "notes": ["left", "r1", "r2"], "total": 3, "meta": {"left": True, "right": True},
        "best": 7, "winner": "left",
    }
    assert store.get_run(result.run_id)["output"] == result.state


def test_parallel_branches_writing_same_plain_key_fail_the_run(store: Any) -> None:
    g = _fan_graph({"winner": "right"})
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'left'" in result.error and "'right'" in result.error and "'winner'" in result.error
    run = store.get_run(result.run_id)
    assert run["status"] == "failed"
    assert run["error"] == result.error
    # Nothing of the conflicting step was committed.
    assert store.state_at(result.run_id, 1) == store.state_at(result.run_id, 0)


def test_same_node_twice_via_send_writing_plain_key_conflicts(store: Any) -> None:
    from workbench import Send

    g = Graph("sendconflict", RunState)

    @g.node
    def start(state: RunState) -> None:
        return None

    @g.node
    def work(arg: dict[str, Any]) -> dict[str, Any]:
        return {"winner": arg["w"]}

    g.edge(START, "start")
    g.route("start", lambda s: [Send("work", {"w": "a"}), Send("work", {"w": "b"})], targets=["work"])
    g.edge("work", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'winner'" in result.error and "'work'" in result.error


def test_unknown_key_from_node_fails_run_naming_node_and_key(store: Any) -> None:
    g = Graph("unknown", RunState)

    @g.node
    def sloppy(state: RunState) -> dict[str, Any]:
        return {"wineer": "typo"}

    g.sequence(START, "sloppy", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'sloppy'" in result.error and "'wineer'" in result.error
    rows = store.tasks(result.run_id)
    assert [(r["node"], r["status"]) for r in rows] == [("sloppy", "failed")]
    assert "'wineer'" in rows[0]["error"]


def test_type_mismatch_from_node_fails_run(store: Any) -> None:
    g = Graph("mismatch", RunState)

    @g.node
    def wrong(state: RunState) -> dict[str, Any]:
        return {"total": "three"}

    g.sequence(START, "wrong", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'wrong'" in result.error and "'total'" in result.error and "int" in result.error


def test_unknown_input_key_refused() -> None:
    g = Graph("inp", RunState)
    g.add_node("n", lambda s: None)
    g.sequence(START, "n", END)
    with pytest.raises(InputError, match="'bogus'"):
        Runner(g).run({"bogus": 1})
    with pytest.raises(InputError, match=r"'winner'.*str"):
        Runner(g).run({"winner": 42})


def test_node_returning_none_changes_nothing(store: Any) -> None:
    g = Graph("noop", RunState)
    g.add_node("n", lambda s: None)
    g.sequence(START, "n", END)
    result = Runner(g, store).run({"winner": "w"})
    assert result.status == "completed"
    assert result.state["winner"] == "w"
    assert [c for c in store.changes(result.run_id) if c[0] == 1] == []


def test_node_returning_non_dict_fails(store: Any) -> None:
    g = Graph("nondict", RunState)
    g.add_node("bad", lambda s: ["oops"])
    g.sequence(START, "bad", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'bad'" in result.error and "list" in result.error


# ---------------------------------------------------------------- schema kinds


@dataclasses.dataclass
class DCState:
    question: str
    answer: str = "none yet"
    notes: Annotated[list[str], append] = dataclasses.field(default_factory=list)
    count: Annotated[int, add] = 10


class PState(BaseModel):
    question: str = ""
    answer: str = "none yet"
    notes: Annotated[list[str], append] = Field(default_factory=list)
    count: Annotated[int, add] = 10


class TDState(TypedDict):
    question: str
    answer: str
    notes: Annotated[list[str], append]
    count: Annotated[int, add]


def _kind_graph(schema: Any, seen: list[Any]) -> Graph:
    g = Graph(f"kind_{schema.__name__}", schema)

    def get(state: Any, key: str) -> Any:
        return state[key] if isinstance(state, dict) else getattr(state, key)

    @g.node
    def first(state: Any) -> dict[str, Any]:
        seen.append(state)
        return {"notes": "first:" + get(state, "question"), "count": 1}

    @g.node
    def second(state: Any) -> dict[str, Any]:
        seen.append(state)
        return {"answer": f"{len(get(state, 'notes'))} notes, count {get(state, 'count')}", "notes": ["second"]}

    g.sequence(START, "first", "second", END)
    return g


@pytest.mark.parametrize(("schema", "kind", "count0"), [(TDState, "typeddict", 0), (DCState, "dataclass", 10),
                                                        (PState, "pydantic", 10)])
def test_state_schema_kinds(schema: Any, kind: str, count0: int, store: Any) -> None:
    seen: list[Any] = []
    g = _kind_graph(schema, seen)
    assert g.schema.kind == kind
    result = Runner(g, store).run({"question": "why"})
    assert result.status == "completed", result.error
    assert result.state == {
        "question": "why", "answer": f"1 notes, count {count0 + 1}", "notes": ["first:why", "second"],
        "count": count0 + 1,
    }
    # Nodes receive the schema's own type: a dict for TypedDict, an instance otherwise.
    if kind == "typeddict":
        assert all(isinstance(s, dict) for s in seen)
    else:
        assert all(isinstance(s, schema) for s in seen)
        assert seen[0].answer == "none yet"


def test_dataclass_and_pydantic_schema_refuse_unknown_keys(store: Any) -> None:
    for schema in (DCState, PState):
        g = Graph("strict", schema)
        g.add_node("n", lambda s: {"nope": 1})
        g.sequence(START, "n", END)
        result = Runner(g, store).run({"question": "q"})
        assert result.status == "failed"
        assert "'nope'" in result.error and "'n'" in result.error


def test_describe_lists_keys_types_and_rules() -> None:
    rows = {r["key"]: r for r in StateSchema(TDState).describe()}
    assert rows["notes"]["rule"] == "append"
    assert rows["count"]["rule"] == "add"
    assert rows["question"]["type"] == "str"


def test_bad_schema_refused() -> None:
    with pytest.raises(TypeError):
        StateSchema(int)


class Mut(TypedDict):
    items: Annotated[list[str], append]
    name: str


def test_in_place_mutation_by_a_node_does_not_corrupt_recorded_state(store: Any) -> None:
    g = Graph("mutating", Mut)

    def sneaky(state: Mut) -> None:
        state["items"].append("sneaky")
        state["name"] = "changed"

    g.add_node("sneaky", sneaky)
    g.add_node("after", lambda s: {"items": ["after"]})
    g.sequence(START, "sneaky", "after", END)
    result = Runner(g, store).run({"items": ["x"]})
    assert result.status == "completed"
    recorded = store.state_at(result.run_id, result.step)
    assert result.state == recorded
    assert store.get_run(result.run_id)["output"] == recorded


# ---------------------------------------------------------------- custom rules take any update


def count_items(current: int | None, update: Any) -> int:
    return (current or 0) + 1


def add_messages(current: list[Any] | None, update: Any) -> list[Any]:
    """A LangGraph-style reducer: one message or a list of them."""
    return [*(current or []), *(update if isinstance(update, list) else [update])]


def as_text(current: Any, update: Any) -> Any:
    return str(update)


class Reduced(TypedDict):
    count: Annotated[int, custom(count_items)]
    messages: Annotated[list[dict[str, Any]], add_messages]
    broken: Annotated[int, custom(as_text)]


def test_a_custom_rule_takes_an_update_of_any_type() -> None:
    """The declared type was checked on the update: an item counted into an int key, or one
    message for a list reducer, failed with 'expects int, got str' / 'expects list, got dict'."""
    schema = StateSchema(Reduced)
    state, _ = schema.initial({})
    message = {"role": "user", "content": "hi"}
    schema.validate_update({"count": "an item", "messages": message}, "node 'n'")
    new, _ = schema.merge(state, [("n", {"count": "an item", "messages": message})])
    assert new["count"] == 1 and new["messages"] == [message]


def test_what_a_custom_rule_returns_is_checked_against_the_declared_type() -> None:
    schema = StateSchema(Reduced)
    state, _ = schema.initial({})
    with pytest.raises(InvalidUpdateError) as info:
        schema.merge(state, [("n", {"broken": 3})])
    assert str(info.value) == ("node 'n': merge rule custom(as_text) of state key 'broken' returned str, but "
                               "the key is declared int; make the rule return int")
    # A whole value (an input, an Overwrite) is the key's value itself: checked as before.
    with pytest.raises(InvalidUpdateError, match="expects int, got str"):
        schema.merge(state, [("n", {"count": Overwrite("three")})])
    with pytest.raises(InputError, match="expects int, got str"):
        Runner(_reducer_graph(lambda s: None)).run({"count": "three"})


def _reducer_graph(node: Any) -> Graph:
    g = Graph("reducers", Reduced)
    g.add_node("n", node)
    g.sequence(START, "n", END)
    return g


def test_a_run_gives_a_custom_rule_any_update(store: Any) -> None:
    message = {"role": "assistant", "content": "hello"}
    done = Runner(_reducer_graph(lambda s: {"count": "an item", "messages": message}), store).run({})
    assert done.status == "completed", done.error
    assert done.state["count"] == 1 and done.state["messages"] == [message]
    failed = Runner(_reducer_graph(lambda s: {"broken": 1}), store).run({})
    assert failed.status == "failed"
    assert "merge rule custom(as_text) of state key 'broken' returned str" in str(failed.error)


# ---------------------------------------------------------------- the state after every step


def test_states_has_every_committed_step_even_one_that_changed_nothing(store: Any) -> None:
    """``states`` left out a step whose node returned None (keys [0, 2, 3] for three steps)."""
    g = Graph("quiet", RunState)
    g.add_node("a", lambda s: None)
    g.add_node("b", lambda s: {"winner": "b"})
    g.add_node("c", lambda s: {"notes": ["c"]})
    g.sequence(START, "a", "b", "c", END)
    result = Runner(g, store).run({"winner": "w"})
    assert result.status == "completed", result.error
    states = store.states(result.run_id)
    assert sorted(states) == [0, 1, 2, 3]
    assert states[1] == states[0] and states[1]["winner"] == "w"
    assert states[2]["winner"] == "b" and states[3]["notes"] == ["c"]
    assert all(states[k] == store.state_at(result.run_id, k) for k in states)
