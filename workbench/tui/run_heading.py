"""The heading over the timeline: which run, its graph and status, what it came from, whether
its code changed since, and why it is paused or waiting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from workbench.store.reader import shown_status
from workbench.tui.stepping import pause_words


def committed_steps(run: dict[str, Any], rows: Sequence[Any]) -> int:
    """How many steps ``run`` (a ``get_run`` row) has, as the Runs table and ``workbench runs``
    count them (``TraceStore.list_runs``): a run that stopped, its recorded last step; a run
    recording, the steps before the one it stands at (the last top-level row of its timeline
    ``rows``). Never a subgraph's inner steps, a step pending or in flight, nor the step of a
    subgraph that paused inside it (⏸): a warranty run paused in its review after step 1 said
    2 steps while the table said 1."""
    if run["status"] != "running" and run.get("last_step") is not None:
        return int(run["last_step"])
    top = [row.step for row in rows if not row.depth]
    return max(0, max(top) - 1) if top else 0


def run_heading(run: dict[str, Any], steps: int, graph: Any) -> Text:
    """The heading for ``run`` (a ``get_run`` row) with ``steps`` steps; ``graph`` is the loaded
    graph of that name (None if it is not loaded)."""
    head = Text()
    head.append(f"run {run['run_id']}", style="bold")
    head.append(f"  {run['graph']}  ")
    status = shown_status(run)
    head.append(status, style={"completed": "green", "failed": "red", "interrupted": "magenta"}.get(status, "yellow"))
    head.append(f"  {steps} steps")
    if run["parent_run_id"] and run.get("relation") == "continuation":
        head.append(f"  next turn of {run['parent_run_id']} (from step {run['fork_step'] + 1})", style="cyan")
    elif run["parent_run_id"]:
        head.append(f"  fork of {run['parent_run_id']} at step {run['fork_step'] + 1}", style="magenta")
    if graph is not None:
        changed = graph.changed_since(run.get("node_versions"))
        if changed:
            head.append(f"\ncode changed since this run: {', '.join(changed)} (R re-runs from a step)",
                        style="magenta")
    paused = (run.get("config") or {}).get("paused")
    if run["status"] == "paused" and paused:
        head.append(f"\n{pause_words(paused)} — s steps, c continues, f forks", style="yellow")
    elif run["status"] == "waiting":
        head.append("\nwaiting for human input — press i to answer", style="yellow")
    if run["error"]:
        head.append(f"\n{run['error']}", style="red")
    return head
