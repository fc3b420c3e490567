"""Value differences as Rich text: what ``workbench diff`` prints and the workbench shows.

Built on :mod:`workbench.valuediff`. Removed text is red and struck through, added text green;
every change also carries plain markers (``[-old-]``, ``{+new+}``) in the one-line forms so the
difference survives a terminal without colour, a pipe or a log file.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from workbench.valuediff import Change, Piece, excerpt, json_changes, one_line, pretty, text_hunks, word_diff

DEL = "bold red"
INS = "bold green"
DEL_BG = "bold white on red"
INS_BG = "bold black on green"


def inline(pieces: list[Piece], *, markers: bool = True) -> Text:
    """One text with both sides: unchanged text, then each change as removed then added."""
    out = Text()
    for p in pieces:
        if p.op == "equal":
            out.append(p.a.replace("\n", "⏎ "))
            continue
        if p.a:
            out.append(f"[-{p.a}-]" if markers else p.a, style=DEL)
        if p.b:
            out.append(f"{{+{p.b}+}}" if markers else p.b, style=INS)
    return out


def side(pieces: list[Piece], which: str, *, newlines: bool = False) -> Text:
    """One side (``"a"`` or ``"b"``) of a word diff, its changed words highlighted."""
    out = Text()
    for p in pieces:
        chunk = p.a if which == "a" else p.b
        if not newlines:
            chunk = chunk.replace("\n", "⏎ ")
        if p.op == "equal":
            out.append(chunk)
        elif chunk:
            out.append(chunk, style=DEL_BG if which == "a" else INS_BG)
    return out


def short_change(a: Any, b: Any, width: int = 60) -> tuple[Text, Text]:
    """Both values on one line each, cut around their first difference (not at a shared
    prefix), the changed words highlighted."""
    if isinstance(a, str) and isinstance(b, str):
        # Line ends shown as ⏎ before the cut is measured (after, a cell overran its width).
        pieces = excerpt(word_diff(a.replace("\n", "⏎ "), b.replace("\n", "⏎ ")), width)
    else:
        pieces = excerpt(word_diff(one_line(a), one_line(b)), width)
    return side(pieces, "a"), side(pieces, "b")


def change_lines(label: str, a: Any, b: Any, indent: str = "    ", width: int = 100,
                 changes: list[Any] | None = None) -> list[Text]:
    """The difference between two values, for printing under ``label``: a long or multi-line
    text as its changed lines with context; JSON as the paths that differ (``changes``: only
    these, e.g. the paths a comparison has not listed at an earlier step); short values as
    ``label: A=… B=…`` with the changed words marked."""
    if isinstance(a, str) and isinstance(b, str):
        if "\n" in a or "\n" in b or max(len(a), len(b)) > width:
            out = [Text(f"{indent}{label}:")]
            for hunk in text_hunks(a, b):
                out.append(_hunk_line(hunk.tag, hunk.pieces, indent + "  "))
            return out
        return [Text(f"{indent}{label}: ").append_text(inline(word_diff(a, b)))]
    if isinstance(a, (dict, list)) and isinstance(b, (dict, list)):
        listed = json_changes(a, b, limit=50) if changes is None else changes[:50]
        out = []
        for c in listed:
            out += _change_line(label, c, indent, width)
        return out
    if (a is None) != (b is None):
        value, which = (a, "A") if b is None else (b, "B")
        text = pretty(value)
        if "\n" in text or len(text) > width // 2:
            # A value only one side has is shown (its first lines), not cut to a few words.
            lines = text.split("\n")
            out = [Text(f"{indent}{label}: only in {which}")]
            sign, style = ("-", DEL) if which == "A" else ("+", INS)
            out += [Text(f"{indent}  {sign} ").append(_cut(ln, width), style=style) for ln in lines[:8]]
            if len(lines) > 8:
                out.append(Text(f"{indent}  … {len(lines) - 8} more lines", style="dim"))
            return out
    line = Text(f"{indent}{label}: ")
    line.append("A=")
    line.append(_cut(one_line(a), width // 2), style=DEL)
    line.append("  B=")
    line.append(_cut(one_line(b), width // 2), style=INS)
    return [line]


def _change_line(label: str, c: Change, indent: str, width: int) -> list[Text]:
    where = f"{label}{c.path}"
    if c.kind == "added":
        return [Text(f"{indent}{where}: added ").append(_cut(one_line(c.b), width), style=INS)]
    if c.kind == "removed":
        return [Text(f"{indent}{where}: removed ").append(_cut(one_line(c.a), width), style=DEL)]
    return change_lines(where, c.a, c.b, indent, width)


def _hunk_line(tag: str, pieces: list[Piece], indent: str) -> Text:
    if tag == "…":
        return Text(f"{indent}…", style="dim")
    if tag == " ":
        return Text(f"{indent}  {pieces[0].a}", style="dim")
    if tag == "-":
        return Text(f"{indent}- ").append(pieces[0].a, style=DEL)
    if tag == "+":
        return Text(f"{indent}+ ").append(pieces[0].b, style=INS)
    return Text(f"{indent}~ ").append_text(inline(pieces))


def full_side(a: Any, b: Any, which: str) -> Text:
    """One value in full (pretty JSON, or the string with its real newlines), the parts that
    differ from the other value highlighted — for the workbench's full-diff viewer."""
    pieces = _line_aligned(pretty(a), pretty(b))
    return side(pieces, which, newlines=True)


def _line_aligned(a: str, b: str) -> list[Piece]:
    """A word diff of two long texts, computed line by line (fast on long values: words are
    only compared within lines that changed)."""
    import difflib

    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    pieces: list[Piece] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
        ta, tb = "".join(la[i1:i2]), "".join(lb[j1:j2])
        if op == "equal":
            pieces.append(Piece("equal", ta, tb))
        elif op == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                pieces += word_diff(la[i1 + k], lb[j1 + k])
        else:
            pieces.append(Piece(op, ta, tb))  # type: ignore[arg-type]
    return pieces


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
