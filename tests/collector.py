"""Keeping the garbage collector off what a test process holds for good."""

from __future__ import annotations

import gc
import sys

_modules_when_frozen = 0


def freeze_what_is_loaded() -> None:
    """After a batch of new imports, collect once and move what is left (modules, classes,
    caches of workbench, Textual, DuckDB, litellm...: alive until the process ends anyway) out
    of the collector's way for good, as ``workbench ui`` does after its first frame
    (tui/lifecycle.py). A full collection passes over every object in the process; with those
    libraries loaded, most of its work was on these. Counted in modules, not done per call:
    graph files load as modules, a few at a time."""
    global _modules_when_frozen
    if len(sys.modules) > _modules_when_frozen + 50:
        gc.collect()
        gc.freeze()
        _modules_when_frozen = len(sys.modules)
