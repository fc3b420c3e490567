"""A graph file with a syntax error (for the CLI error tests)."""

from workbench import END, START, Graph

graph = Graph("broken")

def oops(state)
    return {}
