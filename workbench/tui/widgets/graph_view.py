"""The selected graph drawn in the terminal, with breakpoints, the executed path and the
current node marked. Arrow keys (or j/k) move between nodes; b / a toggle breakpoints."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.graph import END, START, Graph
from workbench.render import ascii_lines
from workbench.tui.messages import BreakpointToggled


class GraphView(Static, can_focus=True):
    """An ASCII drawing of one graph (see workbench.render) styled by run state."""

    BINDINGS = [
        Binding("down,j", "move(1)", "Next node", show=False),
        Binding("up,k", "move(-1)", "Previous node", show=False),
        Binding("b", "toggle_break('before')", "Break before", tooltip="Pause runs before this node"),
        Binding("a", "toggle_break('after')", "Break after", tooltip="Pause runs after this node"),
    ]

    selected: reactive[str | None] = reactive(None)
    """The node under the cursor."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.graph: Graph | None = None
        self.breaks: dict[str, set[str]] = {"before": set(), "after": set()}
        self.executed: set[str] = set()
        self.current: set[str] = set()
        self.changed: set[str] = set()
        self.error: str | None = None

    def show_graph(self, graph: Graph | None, *, changed: set[str] | None = None, error: str | None = None) -> None:
        """Draw ``graph`` (or the load error); keep the cursor on the same node if it exists."""
        self.graph = graph
        self.changed = set(changed or ())
        self.error = error
        nodes = list(graph.nodes) if graph else []
        if self.selected not in nodes:
            self.selected = nodes[0] if nodes else None
        self.redraw()

    def mark_run(self, executed: set[str], current: set[str]) -> None:
        """Highlight the nodes a run went through and the one(s) it is at."""
        self.executed, self.current = set(executed), set(current)
        self.redraw()

    def redraw(self) -> None:
        self.update(self._render_text())

    def _render_text(self) -> Text:
        if self.graph is None:
            return Text("No graph selected. Put a graph file in graphs/ — it loads on save.", style="dim")
        out = Text()
        title = Text(f"{self.graph.name}", style="bold")
        if self.graph.description:
            title.append(f" — {self.graph.description}", style="dim")
        out.append_text(title)
        out.append("\n")
        if self.error:
            out.append(f"✗ reload failed, showing the last good version:\n{self.error}\n", style="red")
        for line, node in ascii_lines(self.graph):
            style = ""
            if node in (START, END):
                style = "dim"
            elif node is not None:
                if node in self.current:
                    style = "bold black on yellow"
                elif node in self.executed:
                    style = "green"
                if node == self.selected and self.has_focus:
                    style = (style + " reverse").strip()
                elif node == self.selected:
                    style = (style + " underline").strip()
            text = Text(line, style=style)
            if node and node not in (START, END) and line.startswith("│"):
                marks = []
                if node in self.breaks["before"]:
                    marks.append(("● before", "bold red"))
                if node in self.breaks["after"]:
                    marks.append(("● after", "bold red"))
                if node in self.changed:
                    marks.append(("* changed", "magenta"))
                for mark, mstyle in marks:
                    text.append("  ")
                    text.append(mark, style=mstyle)
            out.append_text(text)
            out.append("\n")
        return out

    def on_focus(self) -> None:
        self.redraw()

    def on_blur(self) -> None:
        self.redraw()

    def action_move(self, delta: int) -> None:
        if self.graph is None or not self.graph.nodes:
            return
        nodes = [n for _, n in ascii_lines(self.graph) if n not in (None, START, END)]
        order = list(dict.fromkeys(nodes))
        idx = order.index(self.selected) if self.selected in order else 0
        self.selected = order[max(0, min(len(order) - 1, idx + delta))]
        self.redraw()

    def action_toggle_break(self, when: str) -> None:
        if self.selected is None:
            return
        marks = self.breaks[when]
        if self.selected in marks:
            marks.discard(self.selected)
        else:
            marks.add(self.selected)
        self.redraw()
        self.post_message(BreakpointToggled(self.selected, when))
