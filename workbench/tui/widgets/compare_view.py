"""Two runs side by side, steps aligned: one row per difference, A's and B's values next to each
other with the changed words highlighted. ``enter`` on a row opens both values in full.

Differences inside a subgraph's run are listed under the step that called it, their step
written ``2 › review 3`` (step 3 of the run of subgraph node ``review`` at step 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from workbench.compare import RunComparison, StepComparison
from workbench.diffview import short_change
from workbench.tui.columns import cell_text

CAP = 20  # the widest the step, nodes and "what" columns get: the values need the room
NARROW_CAP = 12  # the same below 110 columns
PADDING = 2 * 5  # DataTable puts a cell padding of 1 on each side of its 5 columns


@dataclass
class CompareRow:
    """A row of the comparison table: a difference (``a``/``b`` set) or a summary line."""

    step: str
    nodes_a: str
    nodes_b: str
    what: str
    a: Any = None
    b: Any = None
    kind: str = "diff"  # diff, same, shared, nodes (different nodes ran, nothing else differs), note

    @property
    def nodes(self) -> str:
        """The nodes that ran: once when both ran the same, else ``A's / B's``."""
        return self.nodes_a if self.nodes_a == self.nodes_b else f"{self.nodes_a} / {self.nodes_b}"

    @property
    def openable(self) -> bool:
        return self.kind == "diff"


def comparison_rows(steps: list[StepComparison], prefix: str = "") -> list[CompareRow]:
    """The comparison flattened into rows, subgraph differences under their calling step."""
    out: list[CompareRow] = []
    for s in steps:
        label = f"{prefix}{s.step}"
        na, nb = ", ".join(s.nodes_a) or "—", ", ".join(s.nodes_b) or "—"
        if s.shared:
            out.append(CompareRow(label, na, nb, "shared history", kind="shared"))
            continue
        if s.same:
            out.append(CompareRow(label, na, nb, "same", kind="same"))
            continue
        rows = [CompareRow(label, na, nb, key, a, b) for key, a, b in s.state]
        rows += [CompareRow(label, na, nb, f"{'answer' if kind == 'model' else kind + ' result'} in {node}", a, b)
                 for node, a, b, kind in s.answers]
        for sub in s.subgraphs:
            if sub.same:
                continue
            if sub.run_a is None or sub.run_b is None:
                rows.append(CompareRow(label, na, nb, f"subgraph {sub.path}",
                                       sub.run_a or "—", sub.run_b or "—", kind="note"))
                continue
            rows += comparison_rows([t for t in sub.steps if not t.same], f"{label} › {sub.node} ")
        if not rows:
            what = "still different: " + ", ".join(s.carried) if s.carried else "different nodes"
            rows.append(CompareRow(label, na, nb, what, kind="nodes"))
        out += rows
    return out


class CompareTable(DataTable[Any]):
    """The compared steps; ``j``/``k`` move like in the other tables."""

    BINDINGS = [
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
    ]

class CompareView(Vertical):
    """A header naming the two runs and a table of their aligned differences."""

    BINDINGS = [Binding("enter", "open_diff", "Full diff", tooltip="Open both values of the row in full")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[CompareRow] = []
        self.labels = ("A", "B")

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Mark a run with m (in Runs or Timeline), open another, and press d — "
                          "or press d on a fork to compare it with its parent.", style="dim"), id="compare-head")
        yield CompareTable(id="compare-table", cursor_type="row", zebra_stripes=True)

    def _available(self) -> int:
        return self.size.width or (self.app.size.width - 40)  # (hidden until its tab shows)

    def _cap(self) -> int:
        """The widest a step/nodes/what column gets: narrower on a narrow terminal, so the two
        values keep the room (the full texts are one enter away)."""
        return CAP if self._available() >= 110 else NARROW_CAP

    def _value_width(self) -> int:
        """What is left for each of the A and B columns once the others fit their content."""
        cap = self._cap()
        fixed = sum(min(cap, max([len(title), *(len(getattr(r, key)) for r in self.rows)], default=0))
                    for title, key in (("step", "step"), ("nodes", "nodes"), ("what", "what")))
        return max(NARROW_CAP, (self._available() - fixed - PADDING - 2) // 2)

    def show_comparison(self, cmp: RunComparison) -> None:
        a, b = cmp.run_a, cmp.run_b
        self.labels = (f"A {a['run_id']}", f"B {b['run_id']}")
        head = Text()
        head.append("A ", style="bold")
        head.append(f"{a['run_id']} {a['status']} (code {a['code_version']})   ")
        head.append("B ", style="bold")
        head.append(f"{b['run_id']} {b['status']} (code {b['code_version']})\n")
        ta, tb = cmp.totals["a"], cmp.totals["b"]
        head.append(f"steps {ta['steps']:.0f} / {tb['steps']:.0f}   model calls {ta['llm_calls']:.0f} / "
                    f"{tb['llm_calls']:.0f}   tokens {ta['tokens']:.0f} / {tb['tokens']:.0f}   "
                    f"cost ${ta['cost_usd']:.4f} / ${tb['cost_usd']:.4f}", style="dim")
        head.append("   enter: full diff", style="dim italic")
        self.query_one("#compare-head", Static).update(head)
        self.rows = comparison_rows(cmp.steps)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        width, cap = self._value_width(), self._cap()
        widths = {}
        for title, key in (("step", "step"), ("nodes", "nodes"), ("what", "what")):
            longest = max([len(title), *(len(getattr(r, key)) for r in self.rows)])
            widths[key] = min(cap, longest)
            table.add_column(title, key=key, width=widths[key])
        table.add_column("A", key="a", width=width)
        table.add_column("B", key="b", width=width)
        for row in self.rows:
            dim = "dim" if row.kind in ("same", "shared") else ""
            nodes_style = "bold yellow" if row.nodes_a != row.nodes_b else dim
            if row.kind == "diff":
                va, vb = short_change(row.a, row.b, width)
            elif row.kind == "note":
                va, vb = Text(str(row.a), style="yellow"), Text(str(row.b), style="yellow")
            else:
                va, vb = Text(""), Text("")
            table.add_row(cell_text(row.step, widths["step"], dim), cell_text(row.nodes, widths["nodes"], nodes_style),
                          cell_text(row.what, widths["what"], "dim" if dim else "magenta"), va, vb)

    def on_resize(self) -> None:
        if self.rows:
            table = self.query_one("#compare-table", DataTable)
            cursor = table.cursor_row
            self._fill()
            table.move_cursor(row=cursor)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_row(event.cursor_row)

    def action_open_diff(self) -> None:
        self.open_row(self.query_one("#compare-table", DataTable).cursor_row)

    def open_row(self, index: int) -> None:
        """Open row ``index``'s two values in full, side by side, the differences highlighted."""
        from workbench.tui.screens.value_viewer import DiffScreen

        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        if not row.openable:
            self.notify(f"step {row.step}: {row.what} — nothing to open", timeout=3)
            return
        self.app.push_screen(DiffScreen(f"step {row.step} · {row.what}", row.a, row.b, *self.labels))
