"""How the TUI pauses runs: step (``s``), stop (``x``) and the break condition (``w``), and the
words that say which one paused a run.

All three are one ``break_when`` for the runtime. Step and stop return a reason string, which the
runtime records as ``paused["reason"]``, so the heading can say "stopped (x)" rather than blame
the break condition. The condition is edge-triggered (workbench/breakcondition.py): it pauses
where it becomes true, and ``c`` gets past it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from workbench.breakcondition import BreakCondition, becomes_true

STEP, STOP = "step", "stop"


def make_break_when(condition: str | None, *, step_mode: bool, stop_flag: threading.Event,
                    initial_state: Mapping[str, Any] | None,
                    on_error: Callable[[Exception], object]) -> Callable[[Any], bool | str]:
    """The ``break_when`` for one run, resume or fork.

    ``initial_state``: the state where it starts (None if unknown), to learn whether the
    condition already holds there; ``on_error`` is told when the condition raises (the runtime
    then pauses the run and records the error).
    """
    cond = BreakCondition(condition) if condition else None
    edge = becomes_true(cond.holds, initially=cond.holds_quietly(initial_state)) if cond else None

    def check(state: Any) -> bool | str:
        if step_mode:
            return STEP
        if stop_flag.is_set():
            return STOP
        if edge is None:
            return False
        try:
            return edge(state)
        except Exception as exc:
            on_error(exc)
            raise

    return check


def pause_words(paused: Mapping[str, Any] | None) -> str:
    """Why a run is paused, in a few words: ``paused before draft``, ``stopped (x) after step
    5``, ``paused after step 4 (one step, s)``, ``paused after step 3: the break condition
    became true``."""
    p = paused or {}
    step = p.get("step")
    after = f" after step {step}" if step is not None else ""
    if p.get("node"):
        return f"paused {p.get('when')} {p.get('node')}"
    if p.get("reason") == STEP:
        return f"paused{after} (one step, s)"
    if p.get("reason") == STOP:
        return f"stopped (x){after}"
    if p.get("error"):
        return f"paused{after}: {p['error']}"
    return f"paused{after}: the break condition became true"


def start_state(store: Any, graph: Any, kind: str, options: dict[str, Any]) -> Any:
    """The state a run, resume or fork starts from, to learn whether the break condition already
    holds there (it then fires only once it has turned false and true again). None if unknown."""
    try:
        if kind == "run":
            return graph.schema.initial(options["input"])[0]
        if kind in ("resume", "continue"):
            rid = options["run_id"]
            return store.state_at(rid, store.last_committed_step(rid))
        request = options["request"]  # a ForkRequest
        if not isinstance(request.at_step, int):
            return None  # a step inside a subgraph: the condition watches the run's own steps
        return {**store.state_at(options["run_id"], request.at_step - 1), **request.set_state}
    except Exception:  # the run itself reports a real problem
        return None
