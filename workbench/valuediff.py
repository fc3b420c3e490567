"""What differs between two recorded values: a word diff for text, a structural diff for JSON.

Used by ``workbench diff`` and the workbench's Compare tab. Pure functions over JSON-able
values; nothing here knows about runs or the terminal (the callers style the pieces).

- :func:`word_diff` splits two strings into aligned pieces, each ``equal``, ``delete`` (only in
  A), ``insert`` (only in B) or ``replace`` (A's text became B's).
- :func:`json_changes` walks two JSON values and lists the paths where they differ
  (``.reply``, ``[2]``, ``.messages[3].content``), with the kind of change.
- :func:`text_hunks` keeps the changed lines of two strings with a little context, each line
  split into pieces, for printing a readable diff of a long text.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["equal", "delete", "insert", "replace"]
Kind = Literal["changed", "added", "removed"]

# Words, runs of spaces and single punctuation marks: a changed word is marked, not the line.
# (An escape such as \n inside JSON text is one word, so "\nthree" shows "three" as the change.)
_TOKEN = re.compile(r"\\[nrtbf\"\\/]|\s+|\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Piece:
    """A stretch of the two texts: the same in both, or what A had and what B has instead."""

    op: Op
    a: str
    b: str

    def to_json(self) -> dict[str, str]:
        return {"op": self.op, "a": self.a, "b": self.b}


@dataclass
class Change:
    """One difference between two JSON values, at ``path`` (``""`` = the values themselves)."""

    path: str
    kind: Kind  # changed, added (only in B), removed (only in A)
    a: Any = None
    b: Any = None
    pieces: list[Piece] = field(default_factory=list)  # for two strings: their word diff

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind, "a": self.a, "b": self.b}
        if self.pieces:
            out["text"] = [p.to_json() for p in self.pieces]
        return out


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_diff(a: str, b: str) -> list[Piece]:
    """``a`` and ``b`` as aligned pieces, word by word (whitespace and punctuation are words)."""
    ta, tb = _tokens(a), _tokens(b)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    pieces: list[Piece] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        pieces.append(Piece(op, "".join(ta[i1:i2]), "".join(tb[j1:j2])))  # type: ignore[arg-type]
    return _merge(pieces)


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join two changes and the short unchanged bit between them (a space, "a", " will ") into
    one change: "[-big red-]{+small blue+}" reads better than "[-big-]{+small+} [-red-]{+blue+}",
    and a scattered match of a common word is noise, not information."""
    out: list[Piece] = []
    for p in pieces:
        if (len(out) >= 2 and p.op != "equal" and out[-1].op == "equal" and len(out[-1].a.strip()) <= 4
                and "\n" not in out[-1].a and out[-2].op != "equal"):
            gap, prev = out.pop(), out.pop()
            a, b = prev.a + gap.a + p.a, prev.b + gap.b + p.b
            out.append(Piece("replace" if a and b else ("delete" if a else "insert"), a, b))
        else:
            out.append(p)
    return out


def json_changes(a: Any, b: Any, path: str = "", *, limit: int = 200) -> list[Change]:
    """Where two JSON values differ, as paths: keys of objects, items of lists (an inserted or
    removed item is reported as such, not as every later item changed). At most ``limit``."""
    out: list[Change] = []
    _walk(a, b, path, out, limit)
    return out


def _walk(a: Any, b: Any, path: str, out: list[Change], limit: int) -> None:
    if len(out) >= limit or _same(a, b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in dict.fromkeys([*a, *b]):
            sub = f"{path}.{key}" if _plain_key(str(key)) else f"{path}[{json.dumps(str(key))}]"
            if key not in b:
                out.append(Change(sub, "removed", a[key], None))
            elif key not in a:
                out.append(Change(sub, "added", None, b[key]))
            else:
                _walk(a[key], b[key], sub, out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        _walk_list(a, b, path, out, limit)
        return
    change = Change(path, "changed", a, b)
    if isinstance(a, str) and isinstance(b, str):
        change.pieces = word_diff(a, b)
    out.append(change)


def _walk_list(a: list[Any], b: list[Any], path: str, out: list[Change], limit: int) -> None:
    keys_a = [_key(v) for v in a]
    keys_b = [_key(v) for v in b]
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        # Items replaced one for one are compared inside (a message whose text changed);
        # the rest were inserted or removed.
        paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(paired):
            _walk(a[i1 + k], b[j1 + k], f"{path}[{j1 + k}]", out, limit)
        for i in range(i1 + paired, i2):
            out.append(Change(f"{path}[{i}]", "removed", a[i], None))
        for j in range(j1 + paired, j2):
            out.append(Change(f"{path}[{j}]", "added", None, b[j]))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _same(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python; in a trace they are different values (also inside lists).
    if type(a) is not type(b):
        return False
    return _key(a) == _key(b) if isinstance(a, (dict, list)) else bool(a == b)


def _plain_key(key: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key))


# ---------------------------------------------------------------------- long texts


@dataclass
class Line:
    """A line of a text diff: ``" "`` kept (context), ``"-"`` only in A, ``"+"`` only in B,
    ``"~"`` changed in place (its pieces say how); ``"…"`` stands for skipped lines."""

    tag: str
    pieces: list[Piece]


def text_hunks(a: str, b: str, context: int = 1) -> list[Line]:
    """The lines of ``a`` and ``b`` that differ, with ``context`` unchanged lines around each
    change. A line changed in place is one ``~`` line with its words marked; lines only on one
    side are ``-`` or ``+``."""
    la, lb = a.split("\n"), b.split("\n")
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    lines: list[Line] = []
    end = 0
    for group in matcher.get_grouped_opcodes(context):
        if group[0][1] > end:
            lines.append(Line("…", []))  # unchanged lines left out
        end = group[-1][2]
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                lines += [Line(" ", [Piece("equal", t, t)]) for t in la[i1:i2]]
                continue
            paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
            for k in range(paired):
                lines.append(Line("~", word_diff(la[i1 + k], lb[j1 + k])))
            lines += [Line("-", [Piece("delete", t, "")]) for t in la[i1 + paired:i2]]
            lines += [Line("+", [Piece("insert", "", t)]) for t in lb[j1 + paired:j2]]
    if lines and end < len(la):
        lines.append(Line("…", []))
    return lines


def marked(pieces: list[Piece]) -> str:
    """Pieces as plain text with the changes marked: ``[-removed-]`` and ``{+added+}``."""
    out = []
    for p in pieces:
        if p.op == "equal":
            out.append(p.a)
        else:
            if p.a:
                out.append(f"[-{p.a}-]")
            if p.b:
                out.append(f"{{+{p.b}+}}")
    return "".join(out)


def excerpt(pieces: list[Piece], width: int = 80, context: int = 16) -> list[Piece]:
    """The pieces around the first change, trimmed so the change shows within about ``width``
    characters (leading and trailing unchanged text shortened with ``…``). Each side is cut on
    its own: a side that still has room goes on after the other is cut (``[]`` against a long
    list shows ``[]``, not ``[``)."""
    first = next((i for i, p in enumerate(pieces) if p.op != "equal"), None)
    if first is None:
        return pieces
    out: list[Piece] = []
    before = "".join(p.a for p in pieces[:first])
    context = min(context, max(width // 2 - 1, 0))  # the change gets at least half of a narrow width
    if len(before) > context:
        before = "…" + before[-context:] if context else ""
    if before:
        out.append(Piece("equal", before, before))
    used = {"a": len(before), "b": len(before)}
    done = {"a": False, "b": False}
    for p in pieces[first:]:
        parts: dict[str, str] = {}
        for which in ("a", "b"):
            text = "" if done[which] else (p.a if which == "a" else p.b)
            if used[which] + len(text) > width:
                room = width - used[which]  # never more: a table cell cut the overflow without an ellipsis
                text = _cut(text, room) if room > 0 else ""
                done[which] = True
            used[which] += len(text)
            parts[which] = text
        out.append(Piece(p.op, parts["a"], parts["b"]))
        if done["a"] and done["b"]:
            break
    return out


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def one_line(value: Any) -> str:
    """A value on one line: strings as they are (newlines as ⏎), anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("\n", "⏎ ")


def pretty(value: Any) -> str:
    """A value in full for reading: a string as it is, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
