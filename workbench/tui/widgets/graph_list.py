"""The list of graphs in the project, with load errors shown in place."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from workbench.graph import display_path
from workbench.registry import GraphRegistry
from workbench.tui.messages import GraphSelected


class GraphList(OptionList):
    """Graphs by name; a file that fails to load is listed with its error."""

    BORDER_TITLE = "Graphs"

    def show(self, registry: GraphRegistry, selected: str | None) -> None:
        """Refill from the registry, keeping the selection."""
        self.clear_options()
        names = registry.names()
        for name in names:
            entry = registry.entries[name]
            label = Text(name, style="bold")
            if entry.changed_nodes:
                label.append("  *reloaded", style="magenta")
            if entry.graph.description:
                label.append(f"\n{entry.graph.description}", style="dim")
            self.add_option(Option(label, id=name))
        for path, error in sorted(registry.errors.items()):
            self.add_option(Option(Text(f"✗ {display_path(path)}\n{error}", style="red"), id=f"error:{path}",
                                   disabled=True))
        if selected in names:
            self.point_at(names.index(selected))
        elif names:
            self.point_at(0)

    def point_at(self, index: int) -> None:
        """Highlight the graph the app shows, without announcing it as the user's choice.

        An announced programmatic highlight came back as a GraphSelected: with several queued at
        once (``]`` pressed three times quickly) each undid the one before and the app chose
        graphs in a circle forever, starting a subgraph reader at every turn."""
        if self.highlighted != index:
            with self.prevent(OptionList.OptionHighlighted):
                self.highlighted = index

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        option_id = event.option.id
        if option_id and not option_id.startswith("error:"):
            self.post_message(GraphSelected(option_id))
