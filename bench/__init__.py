"""Benchmarks: workbench's per-step overhead and storage beside LangGraph, in one run.

Run from the repository root with ``python -m bench`` (needs the ``bench`` extra:
``pip install -e '.[bench]'``). See docs/performance.md for what is measured and how to read it.
This is a measurement tool, not a test: nothing here asserts on timings.
"""
