"""The JSON codec: what values become in the store, and how the schema restores them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional, TypedDict

import pytest
from pydantic import BaseModel

from workbench import END, START, Graph, Runner, Send, append
from workbench.codec import coerce, dumps, fast_dumps, loads, to_jsonable
from workbench.errors import InputError, SerializationError
from workbench.store import TraceStore


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int
    at: dt.datetime | None = None


class Address(BaseModel):
    street: str
    since: dt.date
    color: Color = Color.RED


class Opaque:
    """A class with no codec."""


WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
NAIVE = dt.datetime(2024, 1, 2, 3, 4, 5)


# ---------------------------------------------------------------- encoding


def test_primitives_pass_through() -> None:
    value = {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": [None]}}
    assert to_jsonable(value) == value
    assert json.loads(dumps(value)) == value


def test_special_types_are_reduced_to_json() -> None:
    value = {
        "when": WHEN, "day": dt.date(2024, 2, 29), "t": dt.time(12, 30), "span": dt.timedelta(minutes=2),
        "raw": b"\x00\xffbin", "color": Color.BLUE, "level": Level.HIGH, "pt": Point(1, 2, NAIVE),
        "addr": Address(street="Main", since=dt.date(2020, 1, 1)), "tup": (1, 2), "set": {3, 1, 2},
        "uid": uuid.UUID(int=5), "path": Path("/tmp/x"), "dec": Decimal("1.10"),
    }
    out = to_jsonable(value)
    assert out["when"] == "2024-05-06T07:08:09.123456+00:00"
    assert out["day"] == "2024-02-29"
    assert out["t"] == "12:30:00"
    assert out["span"] == 120.0
    assert out["raw"] == {"$bytes": "AP9iaW4="}
    assert out["color"] == "blue"
    assert out["level"] == 2
    assert out["pt"] == {"x": 1, "y": 2, "at": "2024-01-02T03:04:05"}
    assert out["addr"] == {"street": "Main", "since": "2020-01-01", "color": "red"}
    assert out["tup"] == [1, 2]
    assert out["set"] == [1, 2, 3]
    assert out["uid"] == str(uuid.UUID(int=5))
    assert out["path"] == "/tmp/x"
    assert out["dec"] == "1.10"
    # The result is plain JSON.
    assert json.loads(json.dumps(out)) == out


def test_non_string_dict_keys() -> None:
    assert to_jsonable({1: "a", Color.RED: "b"}) == {"1": "a", "red": "b"}
    with pytest.raises(SerializationError, match="dict key of type tuple"):
        to_jsonable({"outer": {(1, 2): "x"}}, "state")


def test_unserializable_value_names_path_and_type() -> None:
    with pytest.raises(SerializationError) as info:
        to_jsonable({"drafts": [{"ok": 1}, {"meta": Opaque()}]}, "state")
    msg = str(info.value)
    assert "state.drafts[1].meta" in msg
    assert "Opaque" in msg


def test_nan_and_infinity_refused() -> None:
    with pytest.raises(SerializationError, match=r"state\.score"):
        dumps({"score": float("nan")}, "state")
    with pytest.raises(SerializationError, match=r"state\.x\[0\]"):
        fast_dumps({"x": [float("inf")]}, "state")


def test_no_pickle_and_no_class_names_in_output() -> None:
    text = dumps({"pt": Point(1, 2), "addr": Address(street="s", since=dt.date(2020, 1, 1))})
    assert "Point" not in text and "Address" not in text and "__" not in text


def test_fast_dumps_equals_dumps() -> None:
    for value in ({"a": [1, 2, {"b": None}]}, {"when": WHEN, "raw": b"x"}, "ü", 3):
        assert json.loads(fast_dumps(value)) == json.loads(dumps(value))


def test_loads_none() -> None:
    assert loads(None) is None
    assert loads('{"a":1}') == {"a": 1}


# ---------------------------------------------------------------- decoding by declared type


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (WHEN, dt.datetime),
        (NAIVE, dt.datetime),
        (dt.date(2024, 2, 29), dt.date),
        (b"\x00\x01\xfe", bytes),
        (Color.BLUE, Color),
        (Level.LOW, Level),
        (Point(3, 4, WHEN), Point),
        (Address(street="Elm", since=dt.date(1999, 12, 31), color=Color.BLUE), Address),
        ([WHEN, NAIVE], list[dt.datetime]),
        ({"a": b"1", "b": b"2"}, dict[str, bytes]),
        (None, Optional[dt.datetime]),  # noqa: UP045
        (WHEN, Optional[dt.datetime]),  # noqa: UP045
        (WHEN, dt.datetime | None),
        ([Point(1, 1)], list[Point]),
        ([Address(street="a", since=dt.date(2000, 1, 1))], list[Address]),
        ((1, 2), tuple[int, ...]),
        ({Color.RED}, set[Color]),
    ],
)
def test_round_trip_through_json(value: Any, annotation: Any) -> None:
    text = dumps(value)
    back = coerce(json.loads(text), annotation)
    assert back == value
    assert type(back) is type(value)


def test_coerce_leaves_unknown_shapes_alone() -> None:
    assert coerce("not a date", Any) == "not a date"
    assert coerce({"x": 1}, dict) == {"x": 1}
    assert coerce(5, int) == 5


# ---------------------------------------------------------------- through runs and the store


class Rich(TypedDict):
    when: dt.datetime
    raw: bytes
    color: Color
    point: Point
    address: Address
    stamps: Annotated[list[dt.datetime], append]
    checked: str


def _rich_graph(seen: list[dict[str, Any]]) -> Graph:
    g = Graph("rich", Rich)

    @g.node
    def produce(state: Rich) -> dict[str, Any]:
        return {
            "when": WHEN, "raw": b"\x00bytes\xff", "color": Color.BLUE, "point": Point(1, 2, NAIVE),
            "address": Address(street="Main", since=dt.date(2021, 3, 4)), "stamps": [WHEN, NAIVE],
        }

    @g.node
    def consume(state: Rich) -> dict[str, Any]:
        seen.append(dict(state))
        kinds = [type(state[k]).__name__ for k in ("when", "raw", "color", "point", "address")]
        return {"checked": ",".join(kinds)}

    g.sequence(START, "produce", "consume", END)
    return g


EXPECTED_KINDS = "datetime,bytes,Color,Point,Address"


def test_rich_values_in_state_uninterrupted(store: TraceStore) -> None:
    seen: list[dict[str, Any]] = []
    result = Runner(_rich_graph(seen), store).run({})
    assert result.status == "completed", result.error
    assert result.state["checked"] == EXPECTED_KINDS
    stored = store.state_at(result.run_id, 1)
    assert stored["raw"] == {"$bytes": "AGJ5dGVz/w=="}
    assert stored["when"] == WHEN.isoformat()
    assert stored["point"] == {"x": 1, "y": 2, "at": NAIVE.isoformat()}
    assert stored["address"] == {"street": "Main", "since": "2021-03-04", "color": "red"}
    assert stored["stamps"] == [WHEN.isoformat(), NAIVE.isoformat()]


def test_rich_values_restored_by_schema_after_resume_in_a_new_store(tmp_path: Path) -> None:
    db = str(tmp_path / "rich.duckdb")
    seen: list[dict[str, Any]] = []
    with TraceStore(db) as st:
        first = Runner(_rich_graph(seen), st).run({}, break_after=["produce"])
    assert first.status == "paused"
    assert seen == []
    with TraceStore(db) as st2:
        result = Runner(_rich_graph(seen), st2).resume(first.run_id)
    assert result.status == "completed", result.error
    # The node after the pause saw the declared types again, rebuilt from JSON by the schema.
    assert result.state["checked"] == EXPECTED_KINDS
    state = seen[0]
    assert state["when"] == WHEN and state["raw"] == b"\x00bytes\xff" and state["color"] is Color.BLUE
    assert state["point"] == Point(1, 2, NAIVE)
    assert state["address"] == Address(street="Main", since=dt.date(2021, 3, 4))
    assert state["stamps"] == [WHEN, NAIVE]


def test_pydantic_state_with_rich_fields_round_trips(tmp_path: Path) -> None:
    class Model(BaseModel):
        when: dt.datetime | None = None
        color: Color = Color.RED
        blob: bytes = b""
        seen_types: str = ""

    def build() -> Graph:
        g = Graph("pyd_rich", Model)
        g.add_node("produce", lambda s: {"when": WHEN, "color": Color.BLUE, "blob": b"\x01\x02"})
        g.add_node("consume", lambda s: {"seen_types": f"{type(s.when).__name__},{s.color.name},{s.blob!r}"})
        g.sequence(START, "produce", "consume", END)
        return g

    db = str(tmp_path / "p.duckdb")
    with TraceStore(db) as st:
        first = Runner(build(), st).run({}, break_after=["produce"])
    with TraceStore(db) as st:
        result = Runner(build(), st).resume(first.run_id)
    assert result.status == "completed", result.error
    assert result.state["seen_types"] == "datetime,BLUE,b'\\x01\\x02'"


class Loose(TypedDict):
    meta: dict[str, Any]
    items: Annotated[list[Any], append]


def test_unserializable_update_fails_the_step_naming_key_path_and_type(store: TraceStore) -> None:
    g = Graph("unser", Loose)

    @g.node
    def bad(state: Loose) -> dict[str, Any]:
        return {"meta": {"inner": {"handle": Opaque()}}}

    g.sequence(START, "bad", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "meta.inner.handle" in result.error
    assert "Opaque" in result.error
    assert "'bad'" in result.error
    rows = store.tasks(result.run_id)
    assert [(r["node"], r["status"]) for r in rows] == [("bad", "failed")]
    assert "meta.inner.handle" in rows[0]["error"]
    assert store.get_run(result.run_id)["status"] == "failed"


def test_unserializable_update_is_not_retried(store: TraceStore) -> None:
    from workbench import RetryPolicy

    calls = []
    g = Graph("unser_retry", Loose)

    @g.node(retry=RetryPolicy(attempts=3, initial_delay=0, jitter=False))
    def bad(state: Loose) -> dict[str, Any]:
        calls.append(1)
        return {"items": [Opaque()]}

    g.sequence(START, "bad", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "items[0]" in result.error and "Opaque" in result.error
    assert len(calls) == 1


def test_unserializable_send_argument_fails_naming_it(store: TraceStore) -> None:
    g = Graph("unser_send", Loose)
    g.add_node("plan", lambda s: None)
    g.add_node("work", lambda arg: {"items": ["x"]})
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("work", {"obj": Opaque()})], targets=["work"])
    g.edge("work", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "Send('work')" in result.error and "obj" in result.error and "Opaque" in result.error


def test_unserializable_input_refused() -> None:
    g = Graph("unser_input", Loose)
    g.add_node("n", lambda s: None)
    g.sequence(START, "n", END)
    with pytest.raises(InputError, match="Opaque"):
        Runner(g).run({"meta": {"x": Opaque()}})


@pytest.mark.parametrize(
    ("value", "annotation"),
    [(dt.time(1, 2, 3), dt.time), (dt.timedelta(seconds=90), dt.timedelta), (uuid.UUID(int=7), uuid.UUID),
     (Decimal("1.10"), Decimal), (Path("/tmp/x"), Path)],
)
def test_round_trip_of_other_encoded_types(value: Any, annotation: Any) -> None:
    back = coerce(json.loads(dumps(value)), annotation)
    assert back == value and type(back) is type(value)
