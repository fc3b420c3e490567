"""Lineage: runs as a tree, each fork under the run it was forked from, each next turn of a
conversation (a continuation) under the turn it continues."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Tree

from workbench.store.reader import shown_status
from workbench.tui.messages import RunChosen
from workbench.tui.widgets.runs_table import STATUS_STYLE


class LineageTree(Tree[str]):
    """Roots are runs that are not forks; children are their forks (and forks of forks)."""

    BORDER_TITLE = "Fork lineage"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("runs", **kwargs)
        self.show_root = False

    def show_runs(self, runs: list[dict[str, Any]]) -> None:
        self.clear()
        by_id = {r["run_id"]: r for r in runs}
        children: dict[str | None, list[dict[str, Any]]] = {}
        for r in sorted(runs, key=lambda r: str(r["started_at"])):
            parent = r["parent_run_id"] if r["parent_run_id"] in by_id else None
            children.setdefault(parent, []).append(r)

        def label(r: dict[str, Any]) -> Text:
            t = Text(f"{r['run_id']} ", style="bold")
            t.append(r["graph"] + " ")
            status = shown_status(r)
            t.append(status, style=STATUS_STYLE.get(status, ""))
            if r["parent_run_id"] and r.get("relation") == "continuation":
                t.append(f"  next turn from step {r['fork_step'] + 1}", style="cyan")
            elif r["parent_run_id"]:
                t.append(f"  forked at step {r['fork_step'] + 1}", style="dim")
            return t

        def add(node: Any, r: dict[str, Any]) -> None:
            kids = children.get(r["run_id"], [])
            if kids:
                branch = node.add(label(r), data=r["run_id"], expand=True)
                for k in kids:
                    add(branch, k)
            else:
                node.add_leaf(label(r), data=r["run_id"])

        for r in reversed(children.get(None, [])):
            add(self.root, r)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data:
            self.post_message(RunChosen(event.node.data))
