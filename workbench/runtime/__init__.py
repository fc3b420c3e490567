"""The runtime: runs a graph in supersteps and records every transition before the next one.

* :mod:`~workbench.runtime.runner` — the :class:`Runner` (the loop, resume, fork, endings)
* :mod:`~workbench.runtime.planner` — which tasks run next (edges, routers, ``Send``, joins)
* :mod:`~workbench.runtime.calls` — calling a node (threads, timeouts)
* :mod:`~workbench.runtime.continuing` — where a resumed step stands, what a fork is served
* :mod:`~workbench.runtime.subgraph` — graphs used as nodes
* :mod:`~workbench.runtime.types` — tasks, outcomes, results

What a run records goes through :mod:`workbench.recording`; the runtime never builds a row.
"""

from workbench.runtime.runner import Runner, run_graph
from workbench.runtime.types import NO_VALUE, RunResult, TaskSpec, new_run_id

__all__ = ["NO_VALUE", "RunResult", "Runner", "TaskSpec", "new_run_id", "run_graph"]
