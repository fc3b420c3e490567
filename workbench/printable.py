"""Recorded text shown on a terminal: its control characters made visible, never obeyed.

A run's data comes from models, users, tools and imported files; a terminal would act on an
escape sequence inside it (clear the screen, retitle the window, fake a line of output). Every
display of recorded text — the CLI's console, the workbench's screen — passes it through
:func:`printable`, which replaces each control character with a visible stand-in of the same
length in characters (so styled spans keep their places): the Unicode control pictures
(``␛`` for ESC, ``␇`` for BEL, ``␍`` for a carriage return...), and ``�`` for the C1 controls
and the bidirectional overrides that reorder what is shown. Newlines and tabs are kept.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _stand_in(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ... ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character a terminal would act on (see the module docstring)."""
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab replaced by a visible one."""
    return _CONTROL.sub(_stand_in, text) if _CONTROL.search(text) else text


# What json.dumps(..., ensure_ascii=False) leaves raw that a terminal may act on or that reorders
# what is shown: DEL, the C1 controls, the line/paragraph separators and the bidi controls.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_safe(text: str) -> str:
    """JSON text with those characters written as ``\\uXXXX`` escapes: the same JSON value,
    nothing for a terminal to obey (they can only occur inside the text's strings)."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _JSON_RAW.search(text) else text
