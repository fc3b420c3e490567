"""The main screen's layout: a collapsible sidebar and Live panel, a zoom that gives the focused
pane the whole screen, and a narrow mode for small terminals.

State lives here and is shown only through CSS classes (the styles are in app.tcss):

- ``-no-sidebar`` on ``#body`` hides the graph list (``ctrl+b``; automatic below
  :data:`NARROW` columns until the user toggles it);
- ``-no-live`` on ``#body`` hides the Live log under the graph (``L``);
- ``-narrow`` on the screen stacks the timeline over the inspector and hides the lineage tree;
- ``-short`` on the screen (below :data:`SHORT` rows) keeps the Live log to its last line, so
  the drawing keeps the height (``L`` still hides it, ``z`` on it gives it the screen);
- ``-zoom-hidden`` on every widget beside the zoomed pane and its ancestors (``z``).
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Header, TabbedContent

NARROW = 110
"""Below this many columns the screen uses its narrow layout."""

SHORT = 32
"""Below this many rows the Live log shows only its last line (an 80x24 terminal gave it 5 of
the graph tab's 17 rows)."""

# The panes ``z`` can zoom, innermost first: the focused widget's nearest one is zoomed.
ZOOMABLE = ("graphs", "graph-view", "live-log", "runs-table", "lineage", "timeline-pane", "inspector",
            "compare", "sql")


class PaneLayout:
    """Shows and hides the main screen's panes for one app."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.sidebar: bool | None = None  # None: decided by the width; else the user's choice
        self.live = True
        self.zoomed: Widget | None = None
        self.narrow = False
        self.short = False

    # ------------------------------------------------------------ sidebar, live panel

    def sidebar_shown(self) -> bool:
        return (not self.narrow) if self.sidebar is None else self.sidebar

    def toggle_sidebar(self) -> bool:
        """Show or hide the graph list; returns whether it is shown now."""
        self.sidebar = not self.sidebar_shown()
        self.apply()
        return self.sidebar

    def toggle_live(self) -> bool:
        """Show or hide the Live log; returns whether it is shown now."""
        self.live = not self.live
        self.apply()
        return self.live

    def resized(self, width: int, height: int | None = None) -> None:
        """The terminal changed size: switch between the wide and narrow, tall and short layouts."""
        narrow = width < NARROW
        short = (self.app.size.height if height is None else height) < SHORT
        if (narrow, short) != (self.narrow, self.short):
            self.narrow, self.short = narrow, short
            self.apply()

    def apply(self) -> None:
        try:
            body = self.app.query_one("#body")
        except NoMatches:  # closing
            return
        screen = self.app.screen
        wanted = ((screen, self.narrow, "-narrow"), (screen, self.short, "-short"),
                  (body, not self.sidebar_shown(), "-no-sidebar"), (body, not self.live, "-no-live"))
        # Each class change restyles the node and everything in it (the whole screen for the
        # screen's): change the classes first, then restyle each changed node once, the body
        # not again when its screen is restyled anyway. (A dialog on top is the app's screen.)
        changed = {node for node, on, name in wanted if (name in node.classes) != on}
        for node, on, name in wanted:
            node.set_class(on, name, update=False)
        if screen in changed:
            screen.update_node_styles()
        if body in changed and not (screen in changed and body.screen is screen):
            body.update_node_styles()

    # ------------------------------------------------------------ zoom

    def toggle_zoom(self, focused: Widget | None) -> str | None:
        """Zoom the pane holding ``focused`` (or restore the layout when one is zoomed).
        Returns the zoomed pane's id, or None when nothing is zoomed now."""
        if self.zoomed is not None:
            self.unzoom()
            return None
        pane = self._pane_of(focused)
        if pane is None:
            return None
        self.zoomed = pane
        pane.add_class("-zoomed")  # a pane kept small (the Live log in a short terminal) grows
        for hidden in self._around(pane):
            hidden.add_class("-zoom-hidden")
        return pane.id

    def unzoom(self) -> None:
        if self.zoomed is None:
            return
        self.zoomed.remove_class("-zoomed")
        self.zoomed = None
        for widget in self.app.query(".-zoom-hidden"):
            widget.remove_class("-zoom-hidden")

    def _pane_of(self, widget: Widget | None) -> Widget | None:
        node = widget
        while isinstance(node, Widget):
            if node.id in ZOOMABLE:
                return node
            node = node.parent  # type: ignore[assignment]
        return None

    def _around(self, pane: Widget) -> list[Widget]:
        """Everything on the screen beside ``pane`` and its ancestors: the header, the tab bar,
        and the siblings at every level."""
        out: list[Widget] = list(self.app.query(Header))
        node: Widget = pane
        while isinstance(node.parent, Widget) and node.parent is not self.app.screen:
            parent = node.parent
            out.extend(c for c in parent.children if c is not node and "-zoom-keep" not in c.classes)
            node = parent
        for tabs in self.app.query(TabbedContent):
            if tabs.id == "tabs":
                out.extend(tabs.query("ContentTabs"))
        return [w for w in out if w not in _footers(self.app)]


def _footers(app: App[Any]) -> list[Widget]:
    return list(app.query("Footer"))
