"""The selected graph drawn in two dimensions (workbench.graph_layout), styled by run state.

Arrow keys or h/j/k/l move the node cursor (up and down between layers, left and right within
one); PageUp/PageDown jump several layers, Home/End go to the first and last node; the view
scrolls to keep the cursor's box in sight. ``b``/``a`` toggle breakpoints before/after the node,
``enter`` opens a subgraph node (its own graph, with a breadcrumb), ``esc``/``backspace`` goes
back up. Inside a subgraph, breakpoints are set by path (``review/approve``), the spelling the
runner takes.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.actions import SkipAction
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.graph import END, START, Graph
from workbench.graph_layout import SEP, Drawing, box_lines, draw, local_name
from workbench.tui.messages import BreakpointToggled

CURRENT = Style(bold=True, color="black", bgcolor="yellow")
EXECUTED = Style(color="green")
MARK_STYLES = {"●": Style(bold=True, color="red"), "*": Style(color="magenta")}
EDGE_STYLES = {"e:back": Style(color="magenta"), "e:label": Style(italic=True, dim=True)}
PAGE = 3  # layers moved by PageUp/PageDown


class GraphView(ScrollView, can_focus=True):
    """A layered drawing of one graph (or of a subgraph inside it) with a node cursor."""

    BINDINGS = [
        Binding("down,j", "move(1)", "Next layer", show=False),
        Binding("up,k", "move(-1)", "Previous layer", show=False),
        Binding("right,l", "side(1)", "Right", show=False),
        Binding("left,h", "side(-1)", "Left", show=False),
        Binding("pagedown", "move(3)", show=False),
        Binding("pageup", "move(-3)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("b", "toggle_break('before')", "Break before", tooltip="Pause runs before this node"),
        Binding("a", "toggle_break('after')", "Break after", tooltip="Pause runs after this node"),
        Binding("enter", "open", "Open subgraph", tooltip="Show the graph inside this subgraph node"),
        Binding("escape,backspace", "close", "Up", show=False, tooltip="Back to the graph that holds this one"),
    ]

    class InnerPathsLoaded(Message):
        """The nodes a run went through inside its subgraphs (paths such as ``review/approve``)."""

        def __init__(self, run_id: str, visits: dict[str, int]) -> None:
            super().__init__()
            self.run_id = run_id
            self.visits = visits

    selected: reactive[str | None] = reactive(None, layout=False, repaint=False)
    """The node under the cursor (a name in the graph shown: the root's, or a subgraph's)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.graph: Graph | None = None
        self.path: list[str] = []  # subgraph nodes opened, outermost first
        self.breaks: dict[str, set[str]] = {"before": set(), "after": set()}
        self.executed: set[str] = set()
        self.current: set[str] = set()
        self.visits: dict[str, int] = {}
        self.taken: set[tuple[str, str]] = set()  # edges the run went along (root graph names)
        self.changed: set[str] = set()
        self.error: str | None = None
        self.inner: dict[str, int] = {}  # visits inside subgraphs, by path, of the run marked
        self._inner_key: tuple[str, frozenset[tuple[str, int]]] | None = None
        self.drawing: Drawing | None = None
        self._layout_key: object = None
        self._lines: list[list[Segment]] = []
        self._head = 0  # lines above the drawing (title, error)
        self._width = 0

    # ----------------------------------------------------------------- what is shown

    @property
    def shown(self) -> Graph | None:
        """The graph drawn now: the root graph, or the subgraph opened inside it."""
        graph = self.graph
        for name in self.path:
            node = graph.nodes.get(name) if graph else None
            graph = node.subgraph if node else None
        return graph

    @property
    def prefix(self) -> str:
        """The path of the graph shown, as breakpoints spell it: ``""`` or ``"review/"``."""
        return "".join(p + SEP for p in self.path)

    @property
    def content(self) -> Text:
        """The whole drawing as text (title included), unclipped."""
        out = Text()
        for segments in self._lines:
            for seg in segments:
                out.append(seg.text, seg.style)
            out.append("\n")
        return out

    def show_graph(self, graph: Graph | None, *, changed: set[str] | None = None, error: str | None = None) -> None:
        """Draw ``graph`` (or the load error); keep the opened subgraph and the cursor when they
        still exist."""
        same = graph is not None and self.graph is not None and graph.name == self.graph.name
        self.graph = graph
        self.changed = set(changed or ())
        self.error = error
        if not same:
            self.path = []
        while self.path and self.shown is None:  # the subgraph node went away in a reload
            self.path.pop()
        self._enter_level(keep=self.selected)

    def mark_run(self, executed: Iterable[str], current: Iterable[str],
                 visits: dict[str, int] | None = None, run_id: str | None = None,
                 taken: Iterable[tuple[str, str]] | None = None) -> None:
        """Light the nodes a run went through (with how often each ran) and the one(s) it is at.
        Names may be paths (``review/approve``): they light the subgraph node from outside and
        the inner node when the subgraph is open. With ``run_id``, the steps the run took inside
        its subgraphs are read from the store too (in a worker). ``taken``: the edges it went
        along, ``(src, dst)`` (graph_layout.path_edges), lit in the root graph's drawing; None
        keeps those shown (a live step)."""
        executed, current = set(executed), set(current)
        taken = self.taken if taken is None else set(taken)
        if not executed and not current:  # no run: clear every mark
            visits, run_id, taken = {}, None, set()
        elif visits is None:  # a live step: the counts and inner paths stay until the next read
            visits, run_id = self.visits, (self._inner_key or (None,))[0]
        key = (run_id, frozenset(visits.items())) if run_id else None
        if key != self._inner_key:
            self._inner_key = key
            self.inner = {}
            if run_id and self.graph is not None and any(n.subgraph for n in self.graph.nodes.values()):
                self._load_inner(run_id)
        if (executed, current, visits, taken) == (self.executed, self.current, self.visits, self.taken):
            return
        self.executed, self.current, self.visits, self.taken = executed, current, visits, taken
        self.redraw()

    @work(thread=True, exclusive=True, group="graph-inner-paths")
    def _load_inner(self, run_id: str) -> None:
        from workbench.history import nested_tasks

        try:
            with self.app.shared.lease() as store, store.reading():  # type: ignore[attr-defined]
                rows = nested_tasks(store, run_id)
        except Exception:
            return
        seen: set[tuple[str, int, int]] = set()  # a task retried has a row per attempt
        visits: dict[str, int] = {}
        for row in rows:
            key = (row["run_id"], row["step"], row["task"])
            if row.get("depth") and key not in seen:
                seen.add(key)
                visits[row["path"]] = visits.get(row["path"], 0) + 1
        self.post_message(self.InnerPathsLoaded(run_id, visits))

    def on_graph_view_inner_paths_loaded(self, message: InnerPathsLoaded) -> None:
        if self._inner_key and self._inner_key[0] == message.run_id and message.visits != self.inner:
            self.inner = message.visits
            self.redraw()

    # ----------------------------------------------------------------- drawing

    def _local(self, names: Iterable[str]) -> set[str]:
        out = set()
        for n in names:
            local = local_name(n, self.prefix)
            if local is not None:
                out.add(local)
        return out

    def _labels(self, name: str) -> list[str]:
        graph = self.shown
        assert graph is not None
        lines = box_lines(graph, name)
        if name in (START, END):
            return lines
        full = self.prefix + name
        head = lines[0]
        if full in self.breaks["before"]:
            head = "● " + head
        if full in self.breaks["after"]:
            head += " ●"
        inside = full + SEP
        if any(b.startswith(inside) for b in self.breaks["before"] | self.breaks["after"]):
            head += " (●)"  # a breakpoint inside this subgraph
        count = self.visits.get(full, 0) or self.inner.get(full, 0)
        if count:
            head += f" ×{count}"
        if not self.path and name in self.changed:
            head += " *"
        return [head, *lines[1:]]

    def redraw(self) -> None:
        """Lay the graph out again and repaint (marks change the boxes' text)."""
        graph = self.shown
        self.border_title = self._breadcrumb()
        lines: list[list[Segment]] = []
        if self.graph is None or graph is None:
            lines.append([Segment("No graph selected. Put a graph file in graphs/ — it loads on save.",
                                  Style(dim=True))])
            self.drawing = None
        else:
            title = [Segment(self._breadcrumb(), Style(bold=True))]
            if graph.description:
                title.append(Segment(f" — {graph.description}", Style(dim=True)))
            lines.append(title)
            if self.path:
                lines.append([Segment("esc goes back up · breakpoints here are set as "
                                      f"{self.prefix}NODE", Style(dim=True))])
            if self.error:
                for line in f"✗ reload failed, showing the last good version:\n{self.error}".splitlines():
                    lines.append([Segment(line, Style(color="red"))])
            # Cursor moves and focus changes keep the boxes' text: reuse the layout then (a
            # graph of a hundred nodes takes about a second to lay out).
            labels = {n: self._labels(n) for n in [START, *graph.nodes, END]}
            key = (id(graph), tuple((n, tuple(v)) for n, v in labels.items()))
            if self.drawing is None or key != self._layout_key:
                self.drawing, self._layout_key = draw(graph, labels.__getitem__), key
            self._head = len(lines)
            executed, current = self._local(self.executed | set(self.inner)), self._local(self.current)
            lit: set[tuple[int, int]] = set()
            if not self.path:  # the run's own edges: the root graph's
                for pair in self.taken:
                    lit.update(self.drawing.edges.get(pair, ()))
            for y, row in enumerate(self.drawing.rows):
                lines.append(self._segments(row, self.drawing.owners[y], executed, current,
                                            {x for x, ly in lit if ly == y}))
        self._lines = lines
        # The drawing's width, not the title's: a long description is cut rather than adding a
        # horizontal scroll bar (and taking a row) for a drawing that fits.
        self._width = self.drawing.width if self.drawing else 0
        size = Size(self._width, len(lines))
        if self._fits(size) and self._fits(self.virtual_size):
            # No scroll bar comes or goes and nothing else moves: a repaint will do. (Setting
            # virtual_size lays the whole screen out again: a breakpoint or a step's mark
            # changed a box's width, and every such key or event cost a full layout.)
            self.set_reactive(GraphView.virtual_size, size)
        else:
            self.virtual_size = size
        self.refresh()

    def _fits(self, size: Size) -> bool:
        """Whether ``size`` fits the view with no scroll bar (False until it is on screen)."""
        region = self.scrollable_content_region
        return bool(region) and size.width <= region.width and size.height <= region.height

    def _breadcrumb(self) -> str:
        if self.graph is None:
            return "Graph"
        return " › ".join([self.graph.name, *self.path])

    def _segments(self, row: str, owners: list[str], executed: set[str], current: set[str],
                  lit: set[int]) -> list[Segment]:
        out: list[Segment] = []
        for x, (ch, owner) in enumerate(zip(row, owners, strict=False)):
            style = Style()
            if owner.startswith("n:"):
                node = owner[2:]
                if node in (START, END):
                    style = Style(dim=True)
                elif node in current:
                    style = CURRENT
                elif node in executed:
                    style = EXECUTED
                if node == self.selected:
                    style += Style(reverse=True) if self.has_focus else Style(bold=True, underline=True)
                if ch in MARK_STYLES and node not in current:
                    style += MARK_STYLES[ch]
            elif owner and x in lit and owner != "e:label":
                style = EXECUTED  # an edge the run went along
            elif owner:
                style = EDGE_STYLES.get(owner, Style(dim=owner != "e:arrow"))
            if out and out[-1].style == style:
                out[-1] = Segment(out[-1].text + ch, style)
            else:
                out.append(Segment(ch, style))
        return out

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= len(self._lines):
            return Strip.blank(width)
        return Strip(self._lines[index]).crop_extend(scroll_x, scroll_x + width, None)

    def on_focus(self) -> None:
        self.redraw()

    def on_blur(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self._scroll_to_cursor()

    # ----------------------------------------------------------------- the cursor

    def _enter_level(self, keep: str | None = None) -> None:
        """Draw the level shown and put the cursor on ``keep`` if it is there, else the first node."""
        graph = self.shown
        nodes = list(graph.nodes) if graph else []
        if keep not in nodes:
            self.redraw()  # lay out the new level first: its reading order picks the first node
            keep = self._order()[0] if nodes else None
        self.selected = keep
        self.redraw()
        self._scroll_to_cursor()

    def _order(self) -> list[str]:
        """Real nodes in reading order: by layer, left to right."""
        if self.drawing is None:
            return []
        return [n for layer in self.drawing.layers for n in layer if n not in (START, END)]

    def _layers(self) -> list[list[str]]:
        if self.drawing is None:
            return []
        layers = [[n for n in layer if n not in (START, END)] for layer in self.drawing.layers]
        return [layer for layer in layers if layer]

    def _select(self, name: str | None) -> None:
        if name is None or name == self.selected:
            return
        self.selected = name
        self.redraw()
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        if self.drawing is None or self.selected not in self.drawing.boxes:
            return
        box = self.drawing.boxes[self.selected]
        width, height = self.scrollable_content_region.size
        sx, sy = self.scroll_offset
        top, bottom = box.y + self._head - 1, box.y + self._head + box.h + 1  # with a line of edges
        # Move as little as needed, and not at all when the box is in sight; prefer the left
        # edge and the title in view when the box fits with them.
        if box.x + box.w <= width:
            sx = 0
        elif box.x < sx or box.x + box.w > sx + width:
            sx = box.x + box.w - width if box.w <= width else box.x
        if bottom <= height:
            sy = 0
        elif top < sy or bottom > sy + height:
            sy = max(0, bottom - height) if top >= sy else max(0, top)
        self.scroll_to(sx, sy, animate=False, immediate=True, force=True)

    def action_move(self, delta: int) -> None:
        """Down (``delta`` > 0) or up a number of layers, to the node nearest the cursor's column."""
        layers = self._layers()
        if not layers or self.drawing is None:
            return
        where = next((i for i, layer in enumerate(layers) if self.selected in layer), None)
        if where is None:
            self._select(layers[0][0])
            return
        target = max(0, min(len(layers) - 1, where + delta))
        boxes = self.drawing.boxes
        here = boxes[self.selected].centre if self.selected in boxes else 0
        self._select(min(layers[target], key=lambda n: abs(boxes[n].centre - here)))

    def action_side(self, delta: int) -> None:
        """Left or right within the layer; past its end, on to the next layer's first node."""
        order = self._order()
        if not order:
            return
        idx = order.index(self.selected) if self.selected in order else 0
        self._select(order[max(0, min(len(order) - 1, idx + delta))])

    def action_jump(self, index: int) -> None:
        order = self._order()
        if order:
            self._select(order[index])

    def on_click(self, event: events.Click) -> None:
        if self.drawing is None:
            return
        offset = event.get_content_offset(self)  # inside the border and padding
        if offset is None:
            return
        node = self.drawing.node_at(offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y - self._head)
        if node is not None and node not in (START, END):
            self._select(node)
            if event.chain == 2:
                self.action_open()

    # ----------------------------------------------------------------- actions

    def action_toggle_break(self, when: str) -> None:
        if self.selected is None:
            return
        name = self.prefix + self.selected
        marks = self.breaks[when]
        if name in marks:
            marks.discard(name)
        else:
            marks.add(name)
        self.redraw()
        self.post_message(BreakpointToggled(name, when))

    def action_open(self) -> None:
        """Show the graph inside the subgraph node under the cursor."""
        graph = self.shown
        node = graph.nodes.get(self.selected) if graph and self.selected else None
        if node is None or node.subgraph is None:
            self.app.notify(f"{self.selected} is not a subgraph node" if self.selected else "no node selected",
                            severity="warning", timeout=3)
            return
        self.path.append(node.name)
        self._enter_level()

    def action_close(self) -> None:
        """Back to the graph that holds the one shown (at the top, the key goes to the app)."""
        if not self.path:
            raise SkipAction()
        left = self.path.pop()
        self._enter_level(keep=left)
