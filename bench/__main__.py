"""``python -m bench``: run the benchmark and print its tables (see bench/run.py)."""

from bench.run import main

raise SystemExit(main())
