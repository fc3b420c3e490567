"""Which model a call uses: the call's own ``model``, else ``$WORKBENCH_MODEL``, else the
``[llm] model`` of ``workbench.toml`` in the current directory, else the offline demo model."""

from __future__ import annotations

import os
import tomllib
from typing import Any

DEMO_MODEL = "workbench-demo/assistant"
"""The offline, deterministic model served through litellm's custom-provider mechanism."""


def project_config(path: str = "workbench.toml") -> dict[str, Any]:
    """The project's ``workbench.toml`` as a dict ({} when there is none or it is unreadable)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def resolve_model(explicit: str | None = None) -> str:
    """The model name to call (see the module docstring for the order)."""
    if explicit:
        return explicit
    env = os.environ.get("WORKBENCH_MODEL")
    if env:
        return env
    llm = project_config().get("llm", {})
    model = llm.get("model") if isinstance(llm, dict) else None
    return str(model) if model else DEMO_MODEL


def resolve_fallbacks(explicit: list[str] | None = None) -> list[str]:
    """Fallback models: the call's own, else ``$WORKBENCH_FALLBACKS`` (comma-separated), else config."""
    if explicit is not None:
        return list(explicit)
    env = os.environ.get("WORKBENCH_FALLBACKS")
    if env:
        return [m.strip() for m in env.split(",") if m.strip()]
    llm = project_config().get("llm", {})
    fb = llm.get("fallbacks") if isinstance(llm, dict) else None
    return [str(m) for m in fb] if isinstance(fb, list) else []
