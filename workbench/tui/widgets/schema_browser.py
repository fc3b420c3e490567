"""The SQL console's schema browser: the store's views and their columns (with types).

``enter`` inserts the name under the cursor into the editor (a column as ``view.column`` is not
needed: the bare name), ``space`` or a click on the arrow opens and closes a view.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree


class SchemaBrowser(Tree[str]):
    """Views as branches, their columns as leaves; enter inserts a name into the editor."""

    BINDINGS = [
        Binding("enter", "insert_name", "Insert", tooltip="Insert the name into the editor"),
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
    ]

    class NameChosen(Message):
        """The user picked a view or column name to insert into the editor."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("views", **kwargs)
        self.show_root = False
        self.auto_expand = False
        self.guide_depth = 2

    def show_schema(self, views: dict[str, list[tuple[str, str]]]) -> None:
        """Fill the tree; the first view is opened, so its columns show."""
        self.clear()
        for i, (view, columns) in enumerate(views.items()):
            branch = self.root.add(Text(view, style="bold"), data=view, expand=i == 0)
            for column, kind in columns:
                branch.add_leaf(Text.assemble(column, (f" {kind.lower()}", "dim")), data=column)
        self.root.expand()

    def action_insert_name(self) -> None:
        node = self.cursor_node
        if node is not None and node.data:
            self.post_message(self.NameChosen(node.data))

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        # A click selects a node: the mouse inserts as enter does.
        event.stop()
        if event.node.data:
            self.post_message(self.NameChosen(event.node.data))
