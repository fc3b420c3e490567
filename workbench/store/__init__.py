"""The DuckDB trace store (see docs/sql.md for the schema users query)."""

from workbench.store.store import TraceStore, default_db_path

__all__ = ["TraceStore", "default_db_path"]
