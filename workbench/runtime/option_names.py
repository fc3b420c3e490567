"""How a one-line error names an option of a fork or a resume: as the CLI's flag (``--at``)
when the CLI (or the workbench, whose dialogs say what the flags do) made the call, as the
Python API's keyword argument (``at_step``) otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_AS_FLAGS: ContextVar[bool] = ContextVar("workbench_option_names_as_flags", default=False)

_KEYWORDS = {"--at": "at_step", "--set": "set_state", "--llm-response": "llm_responses", "--close": "close",
             "--input": "value", "--answers": "answers", "--interrupt": "interrupt"}


def opt(flag: str, metavar: str = "") -> str:
    """``flag`` (``"--at"``) as the caller knows it: itself (followed by ``metavar``, when
    given), or its keyword argument."""
    if not _AS_FLAGS.get():
        return _KEYWORDS[flag]
    return f"{flag} {metavar}" if metavar else flag


@contextmanager
def as_flags() -> Iterator[None]:
    """Within this block (and the runs it starts), errors name the CLI's flags."""
    token = _AS_FLAGS.set(True)
    try:
        yield
    finally:
        _AS_FLAGS.reset(token)
