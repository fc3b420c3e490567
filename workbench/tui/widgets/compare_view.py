"""Two runs side by side, steps aligned, differences highlighted."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from workbench.compare import RunComparison


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


class CompareView(Vertical):
    """A header naming the two runs and a table of their aligned steps."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Mark a run with m (in Runs or Timeline), open another, and press d — "
                          "or press d on a fork to compare it with its parent.", style="dim"), id="compare-head")
        table: DataTable[Any] = DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.add_columns("step", "A", "B", "differences")

    def show_comparison(self, cmp: RunComparison) -> None:
        a, b = cmp.run_a, cmp.run_b
        head = Text()
        head.append("A ", style="bold")
        head.append(f"{a['run_id']} {a['status']} (code {a['code_version']})   ")
        head.append("B ", style="bold")
        head.append(f"{b['run_id']} {b['status']} (code {b['code_version']})\n")
        ta, tb = cmp.totals["a"], cmp.totals["b"]
        head.append(f"steps {ta['steps']:.0f} / {tb['steps']:.0f}   model calls {ta['llm_calls']:.0f} / "
                    f"{tb['llm_calls']:.0f}   tokens {ta['tokens']:.0f} / {tb['tokens']:.0f}   "
                    f"cost ${ta['cost_usd']:.4f} / ${tb['cost_usd']:.4f}", style="dim")
        self.query_one("#compare-head", Static).update(head)
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for s in cmp.steps:
            style = "dim" if s.same else ("bold yellow" if s.nodes_a != s.nodes_b else "")
            diffs: list[str] = []
            for key, va, vb in s.state:
                diffs.append(f"{key}: {_short(va, 25)} → {_short(vb, 25)}")
            for node, xa, xb in s.answers:
                diffs.append(f"answer in {node}: {_short(xa, 20)} → {_short(xb, 20)}")
            if s.carried and not diffs:
                diffs.append("still different: " + ", ".join(s.carried))
            text = "shared history" if s.shared else ("same" if s.same else "; ".join(diffs))
            table.add_row(Text(str(s.step), style=style), Text(", ".join(s.nodes_a) or "—", style=style),
                          Text(", ".join(s.nodes_b) or "—", style=style),
                          Text(text, style="dim" if s.same else "magenta"))
