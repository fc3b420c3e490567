"""A graph with an edge to a node that does not exist (for the CLI error tests)."""

from workbench import END, START, Graph

graph = Graph("invalid")


@graph.node
def first(state):
    return {}


graph.edge(START, "first")
graph.edge("first", "nowhere")
graph.edge("first", END)
