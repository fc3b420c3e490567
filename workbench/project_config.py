"""The project's ``workbench.toml``: read, checked, and shared by every part that reads it.

A mistake in the file is an error, never a silent default: a file that is not TOML, a key no
part of workbench reads (``locaton``), or a value of the wrong type (``location = 5``) stops the
command with one line naming the file and the key. Quietly ignoring them meant a production
deployment fell back to the offline demo model and a local store without a word.

The sections and keys (docs/authoring.md "LLM configuration", docs/fleet.md)::

    [llm]
    model = "openai/gpt-4o-mini"
    fallbacks = ["anthropic/claude-3-5-haiku-20241022"]

    [store]
    location = "traces/workbench.duckdb"   # or ducklake:postgres:...
    data_path = "/srv/workbench-lake"
    spool = "/var/lib/workbench/spool"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from typing import Any

from workbench.errors import InputError
from workbench.redact import scrub

CONFIG_FILE = "workbench.toml"


class ConfigError(InputError):
    """``workbench.toml`` cannot be read, is not TOML, or holds an unknown key or a value of
    the wrong type (the CLI exits 2)."""


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(_text(v) for v in value)


_STRING = (_text, "a non-empty string")
# section -> key -> (check, what the value must be)
KNOWN: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "llm": {"model": _STRING, "fallbacks": (_texts, "a list of model names (strings)")},
    "store": {"location": _STRING, "data_path": _STRING, "spool": _STRING},
}


def _sections() -> str:
    return ", ".join(f"[{name}]" for name in KNOWN)


def _keys(section: str) -> str:
    return ", ".join(KNOWN[section])


def _check(config: dict[str, Any], path: str) -> None:
    """Raise ConfigError on the first unknown section or key, or value of the wrong type."""
    for name, section in config.items():
        if name not in KNOWN:
            what = f"section [{name}]" if isinstance(section, dict) else f"key {name!r} at the top level"
            raise ConfigError(f"{path}: unknown {what} (known sections: {_sections()})")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: {name} must be a section: [{name}] on a line of its own, its keys below it")
        for key, value in section.items():
            if key not in KNOWN[name]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{name}] (known keys: {_keys(name)})")
            check, expected = KNOWN[name][key]
            if not check(value):
                raise ConfigError(f"{path}: [{name}] {key} must be {expected}, got {scrub(repr(value))} "
                                  f"(known keys of [{name}]: {_keys(name)})")


def load(path: str = CONFIG_FILE) -> dict[str, Any]:
    """The checked contents of ``path`` ({} when there is no such file).

    Raises:
        ConfigError: the file cannot be read, is not TOML (the message has the line), or holds
            an unknown section or key or a value of the wrong type.
    """
    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    _check(config, path)
    return config


def section(name: str, path: str = CONFIG_FILE) -> dict[str, Any]:
    """One checked section of ``path`` ({} when the file or the section is absent)."""
    return dict(load(path).get(name, {}))


def db_origin() -> str:
    """Where the default trace store's path comes from, as a user would fix it: ``WORKBENCH_DB``,
    ``[store] location in workbench.toml``, or '' (the built-in default)."""
    if os.environ.get("WORKBENCH_DB"):
        return "WORKBENCH_DB"
    if section("store").get("location"):
        return f"[store] location in {CONFIG_FILE}"
    return ""
