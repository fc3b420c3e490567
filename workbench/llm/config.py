"""Which model a call uses: the call's own ``model``, else ``$WORKBENCH_MODEL``, else the
``[llm] model`` of ``workbench.toml`` in the current directory, else the offline demo model.

A ``workbench.toml`` that is not TOML, or that has a misspelt key or a value of the wrong type,
is an error (:class:`workbench.project_config.ConfigError`), never a quiet fall-back to the
demo model."""

from __future__ import annotations

import os
from typing import Any

from workbench.project_config import CONFIG_FILE, load, section

DEMO_MODEL = "workbench-demo/assistant"
"""The offline, deterministic model served through litellm's custom-provider mechanism."""


def project_config(path: str = CONFIG_FILE) -> dict[str, Any]:
    """The project's ``workbench.toml`` as a dict ({} when there is none).

    Raises:
        ConfigError: the file is unreadable, not TOML, or holds an unknown key or a bad value.
    """
    return load(path)


def resolve_model(explicit: str | None = None) -> str:
    """The model name to call (see the module docstring for the order)."""
    if explicit:
        return explicit
    env = os.environ.get("WORKBENCH_MODEL")
    if env:
        return env
    return str(section("llm").get("model") or DEMO_MODEL)


def resolve_fallbacks(explicit: list[str] | None = None) -> list[str]:
    """Fallback models: the call's own, else ``$WORKBENCH_FALLBACKS`` (comma-separated), else config."""
    if explicit is not None:
        # One model given as a string is one model (it was read as its letters: "t", "-", "4").
        return [explicit] if isinstance(explicit, str) else list(explicit)
    env = os.environ.get("WORKBENCH_FALLBACKS")
    if env:
        return [m.strip() for m in env.split(",") if m.strip()]
    return [str(m) for m in section("llm").get("fallbacks", [])]
