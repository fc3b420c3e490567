"""A task's recorded duration leaves out time spent waiting for workbench's own one-time set-up
(the model library's import): :func:`covered` measures how much of a task's time that was."""

from __future__ import annotations

from collections.abc import Iterable


def covered(spans: Iterable[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of ``[lo, hi]`` inside at least one of ``spans`` (``(start, end)`` pairs).

    Overlapping spans count once: parallel tasks of a subgraph wait for the same import at the
    same time, and their caller waited for it once, not once per task.
    """
    total, reach = 0.0, lo
    for start, end in sorted(spans):
        start, end = max(start, reach), min(end, hi)
        if end > start:
            total += end - start
            reach = end
    return total
