"""The graphs of a project, loaded from its graphs directory and reloaded when files change.

Used by the TUI's hot reload; free of UI code. A file that fails to load keeps its last good
graphs and records the error (known secrets scrubbed); each reload reports which nodes' code
differs from the version loaded first (at start), so a save that only fixes a mistake still
shows the earlier changes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from workbench.errors import WorkbenchError
from workbench.graph import Graph, display_path
from workbench.loader import graphs_dir, list_graph_files, load_module_graphs
from workbench.redact import scrub


@dataclass
class GraphEntry:
    """One graph as currently loaded."""

    graph: Graph
    file: str
    changed_nodes: set[str] = field(default_factory=set)  # differ from ``baseline`` (or are new)
    baseline: dict[str, str] = field(default_factory=dict)  # node versions when first loaded


@dataclass
class ReloadResult:
    """What one reload of one file did."""

    file: str
    graphs: list[str]
    changed: dict[str, set[str]]  # graph name -> nodes whose code differs from the first load (or are new)
    error: str | None = None
    added: list[str] = field(default_factory=list)  # graphs this load listed for the first time
    removed: bool = False  # the file is gone (its graphs were taken off the list)


class GraphRegistry:
    """Graphs by name, from every ``*.py`` in the graphs directory."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or graphs_dir()
        self.entries: dict[str, GraphEntry] = {}
        self.errors: dict[str, str] = {}  # file -> last load error
        # Files refused because a graph they define has the name of one another file defines:
        # loaded again when a file goes away (the name may be free then).
        self._clashing: set[str] = set()
        self._lock = threading.Lock()

    def load_all(self) -> list[ReloadResult]:
        """(Re)load every graph file; a broken file is reported, not fatal."""
        results = [self.reload_file(path) for path in list_graph_files(self.directory)]
        present = {os.path.abspath(p) for p in list_graph_files(self.directory)}
        with self._lock:
            for name in [n for n, e in self.entries.items() if e.file not in present]:
                del self.entries[name]
            for path in [p for p in self.errors if p not in present]:
                del self.errors[path]
        return results

    def reload_file(self, path: str) -> ReloadResult:
        """Import one file afresh; on error keep the last good graphs and remember the error.

        Files are known by absolute path, whichever way the caller (the directory listing, the
        file watcher) spelled it.
        """
        path = os.path.abspath(path)
        if not os.path.exists(path):
            with self._lock:
                gone = [n for n, e in self.entries.items() if e.file == path]
                for n in gone:
                    del self.entries[n]
                self.errors.pop(path, None)
                self._clashing.discard(path)
                waiting = sorted(self._clashing)
            for other in waiting:  # a name this file held may be free for them now
                self.reload_file(other)
            return ReloadResult(path, gone, {}, removed=True)
        try:
            graphs = list(load_module_graphs(path).values())
            for g in graphs:
                g.validate()
        except Exception as exc:  # never let a user's file take the workbench down
            # Scrubbed here, so every view of it (the list, the notice) shows no secret: a file
            # failing to load may echo one (``raise ... + os.environ["OPENAI_API_KEY"]``).
            msg = scrub(str(exc) if isinstance(exc, WorkbenchError)
                        else f"{display_path(path)}: {type(exc).__name__}: {exc}")
            with self._lock:
                self.errors[path] = msg
            return ReloadResult(path, [], {}, error=msg)
        changed: dict[str, set[str]] = {}
        with self._lock:
            # Runs find their graph by name: two files defining one name would make which file a
            # run, a replay or a fork uses depend on load order. The file already listed keeps
            # the name; this one is shown with the error until one of them is renamed.
            # (The file named after the graph keeps it whatever the order, as the CLI finds it.)
            for g in graphs:
                holder = self.entries.get(g.name)
                if holder is None or holder.file == path or not os.path.exists(holder.file):
                    continue
                if _named_after(path, g.name) and not _named_after(holder.file, g.name):
                    loser, winner = holder.file, path
                else:
                    loser, winner = path, holder.file
                msg = (f"{display_path(loser)}: defines graph {g.name!r}, which {display_path(winner)} "
                       "defines already; rename one (runs find their graph by its name)")
                self.errors[loser] = msg
                self._clashing.add(loser)
                if loser == path:
                    return ReloadResult(path, [], {}, error=msg)
                for n in [n for n, e in self.entries.items() if e.file == loser]:
                    del self.entries[n]
            self._clashing.discard(path)
            self.errors.pop(path, None)
            names = {g.name for g in graphs}
            for n in [n for n, e in self.entries.items() if e.file == path and n not in names]:
                del self.entries[n]  # renamed or removed in this file
            added = [g.name for g in graphs if g.name not in self.entries]
            for g in graphs:
                old = self.entries.get(g.name)
                after = g.node_versions()
                # Compare with the first version loaded, not the previous save: after a save
                # that failed and one that fixed it, the nodes edited before are still changed.
                baseline = old.baseline if old is not None else after
                diff = {n for n, v in after.items() if baseline.get(n) != v}
                changed[g.name] = diff
                self.entries[g.name] = GraphEntry(g, path, diff, baseline)
        return ReloadResult(path, [g.name for g in graphs], changed, added=added)

    def get(self, name: str) -> Graph | None:
        with self._lock:
            entry = self.entries.get(name)
            return entry.graph if entry else None

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self.entries)


def _named_after(path: str, name: str) -> bool:
    return os.path.splitext(os.path.basename(path))[0] == name
