"""The help screen: every key, grouped by where it works.

The text is Markdown (headings, paragraphs, tables), drawn by a small renderer of its own into
one Rich renderable: Textual's Markdown widget builds a widget per block and took seconds to
open the first time on a loaded machine; this opens at once. Its lines are rendered once per
width and kept (:class:`RenderedOnce`): Textual renders a widget's content several times while
it lays a new screen out, and the tables are the slow part.
"""

from __future__ import annotations

import re

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

HELP = """
# workbench — keys

Every action is also in the command palette (**ctrl+p**). The mouse works too.

| key | anywhere |
|---|---|
| 1 2 3 4 5 | Graph, Runs, Timeline, Compare, SQL tabs |
| r | run the selected graph (input form) |
| s | step: run one superstep of the paused run (or start one paused after its first step) |
| c | continue the paused run |
| x | stop the live run after its current step (it stays paused) |
| i | answer the run waiting for human input (enter sends, ctrl+n closes it unanswered, esc later) |
| w | conditional breakpoint (an expression over the state) |
| t | continue the selected run's conversation with new input (a new run: its next turn) |
| f | fork the open run at the selected step (edit state or a model answer) |
| R | re-run from the selected step with the current code |
| p | replay the open run with today's code, serving recorded answers (reports the first divergence) |
| [ / ] | show the previous / next graph |
| G | move to the graph list (↑ ↓ pick a graph) |
| m / d | mark a run (m again unmarks) / compare with the marked run (clearing the mark), or a fork with its parent |
| v | the value under the cursor in full (Runs, Timeline, Compare, SQL) |
| / | search (runs, or steps in the timeline) |
| z | zoom: the focused pane gets the whole screen (z again, or a tab key, restores) |
| ctrl+b / L | show or hide the graph list / the Live log |
| ? | this help · **q** quit |

| key | graph view |
|---|---|
| ↑ ↓ j k | move down / up a layer (the view scrolls to the node) |
| ← → h l | move across a layer |
| pgdn pgup home end | three layers down / up, first / last node |
| b / a | toggle a breakpoint before / after the node (in a subgraph: by path, review/approve) |
| enter · esc | open the subgraph node · back up |

| key | runs | timeline |
|---|---|---|
| enter | open the run | fold / unfold a subgraph's inner steps under the step |
| ← → | — | fold / unfold (on an inner step, ← folds the step that called it) |
| j k | move | move between steps |
| pgup pgdn · g G | — | a page up / down · first / last step |
| e | — | next error or retry |
| space | — | play the run back step by step (space again stops) |
| n | — | next search match |
| esc | leave the filter or search box | leave the search box |

| key | compare |
|---|---|
| enter | both values of the row in full, side by side, differences highlighted |

| key | SQL console |
|---|---|
| ctrl+r | run the query |
| ctrl+n | clear the editor for a new query |
| esc | leave the editor (then 1-5 switch tabs again) |
| ctrl+s | save it (traces/queries.json) |
| ctrl+e / ctrl+o | export results as CSV / Parquet (traces/exports/) |
| tab | complete a view or column name |
| ctrl+f / ctrl+g | fetch 1,000 more rows / go to the views |
| ctrl+x | cancel a running query (it stops after 30 s anyway) |
| enter | on a view or column: insert its name; on a result cell: open it in full |

| key | in a dialog |
|---|---|
| tab / shift+tab | next / previous field (never indents) |
| esc | leave an editor; esc again closes the dialog |
| ctrl+a | select all of an editor's text (typing replaces it) |
| ctrl+s ctrl+l ctrl+t | fork dialog: state, model call, its answer (alt+1-3 in kitty-protocol terminals) |
| ctrl+r | run / fork |

Graph files in `graphs/` reload when you save them; a broken file shows its error and the last
good version stays loaded.
"""


_INLINE = re.compile(r"\*\*(.+?)\*\*|`(.+?)`")


def _inline(line: str) -> Text:
    """A line with **bold** and `code` spans."""
    text, at = Text(), 0
    for m in _INLINE.finditer(line):
        text.append(line[at:m.start()])
        text.append(m.group(1) or m.group(2), style="bold" if m.group(1) else "bold cyan")
        at = m.end()
    text.append(line[at:])
    return text


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def render_help(source: str) -> RenderableType:
    """The help text's headings, paragraphs and tables as one renderable."""
    parts: list[RenderableType] = []
    lines = source.strip().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            parts.append(Text(line.lstrip("#").strip(), style="bold underline", justify="center"))
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not set(lines[i]) <= set("|-: "):  # the header's underline
                    rows.append(_cells(lines[i]))
                i += 1
            table = Table(expand=True, show_edge=False, padding=(0, 1))
            for header in rows[0]:
                table.add_column(_inline(header), style="", header_style="bold")
            for row in rows[1:]:
                table.add_row(*(_inline(c) for c in row))
            parts.append(table)
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|")):
                para.append(lines[i].strip())
                i += 1
            parts.append(_inline(" ".join(para)))
        else:
            parts.append(Text(""))
            while i < len(lines) and not lines[i].strip():
                i += 1
    return Group(*parts)


class RenderedOnce:
    """A renderable drawn once per width: its lines are kept and given back as they are (cut
    or filled with blank lines to a height asked for, as Rich's own ``render_lines`` does)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable
        self._lines: dict[int, list[list[Segment]]] = {}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        lines = self._lines.get(width)
        if lines is None:
            lines = self._lines[width] = console.render_lines(self.renderable, options.update(height=None),
                                                              pad=False)
        if options.height is not None:
            blank = [Segment(" " * width)]
            lines = lines[:options.height] + [blank] * (options.height - len(lines))
        newline = Segment.line()
        for line in lines:
            yield from line
            yield newline

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.renderable)


_RENDERED: dict[str, RenderedOnce] = {}  # help text → its renderable, kept for the next time


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    source = HELP
    """The help text (Markdown)."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Footer()  # this dialog's keys (the main screen's are off while it is open)
        with VerticalScroll(id="dialog", classes="dialog wide"):
            rendered = _RENDERED.get(self.source)
            if rendered is None:
                rendered = _RENDERED[self.source] = RenderedOnce(render_help(self.source))
            yield Static(rendered, id="help-body")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
