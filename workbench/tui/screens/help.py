"""The help screen: every key, grouped by where it works."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

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
| i | answer the run waiting for human input |
| w | conditional breakpoint (an expression over the state) |
| t | continue the selected run's conversation with new input (a new run: its next turn) |
| f | fork the selected run at the selected step (edit state or a model answer) |
| R | re-run from the selected step with the current code |
| p | replay the open run with today's code, serving recorded answers (reports the first divergence) |
| [ / ] | show the previous / next graph |
| G | move to the graph list (↑ ↓ pick a graph) |
| m / d | mark a run for comparison / compare with the marked run (or a fork with its parent) |
| / | search (runs, or steps in the timeline) |
| z | zoom: the focused pane gets the whole screen (z again, or a tab key, restores) |
| ctrl+b / L | show or hide the graph list / the Live log |
| ? | this help · **q** quit |

| key | graph view |
|---|---|
| ↑ ↓ j k | move between nodes |
| b / a | toggle a breakpoint before / after the node |

| key | runs | timeline |
|---|---|---|
| enter | open the run | — |
| j k | move | move between steps |
| e | — | next error or retry |
| space | — | play the run back step by step (space again stops) |
| n | — | next search match |

| key | SQL console |
|---|---|
| ctrl+r | run the query |
| ctrl+n | clear the editor for a new query |
| esc | leave the editor (then 1-5 switch tabs again) |
| ctrl+s | save it (traces/queries.json) |
| ctrl+e / ctrl+o | export results as CSV / Parquet (traces/exports/) |

| key | in a dialog |
|---|---|
| tab / shift+tab | next / previous field (never indents) |
| esc | leave an editor; esc again closes the dialog |
| ctrl+a | select all of an editor's text (typing replaces it) |
| alt+1 alt+2 alt+3 | fork dialog: state, model call, its answer |
| ctrl+r | run / fork |

Graph files in `graphs/` reload when you save them; a broken file shows its error and the last
good version stays loaded.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self):  # type: ignore[no-untyped-def]
        yield Footer()  # this dialog's keys (the main screen's are off while it is open)
        with VerticalScroll(id="dialog", classes="dialog wide"):
            yield Markdown(HELP)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
