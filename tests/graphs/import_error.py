"""A graph file that raises while being imported (for the CLI error tests)."""

from workbench import Graph

graph = Graph("import_error")
SETTINGS = {"model": "demo"}
MODEL = SETTINGS["missing_key"]
