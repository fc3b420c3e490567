"""The diff engine behind ``workbench diff`` and the Compare tab: word diffs of text, structural
diffs of JSON, and the one-line and full renderings."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from workbench.diffview import change_lines, full_side, short_change
from workbench.valuediff import excerpt, json_changes, marked, text_hunks, word_diff

GREETING_A = ("Hi Grace Hopper,\n\nThanks for getting in touch.\nWe will refund the full amount today.\n\n"
              "Best,\nSupport")
GREETING_B = ("Hi Grace Hopper,\n\nThanks for getting in touch.\nWe will review your refund within two days.\n\n"
              "Best,\nSupport")


def plain(texts: list) -> str:  # type: ignore[type-arg]
    console = Console(width=200, file=io.StringIO(), color_system=None)
    for t in texts:
        console.print(t)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_word_diff_marks_only_the_changed_words() -> None:
    pieces = word_diff("the quick brown fox", "the slow brown fox")
    assert marked(pieces) == "the [-quick-]{+slow+} brown fox"
    assert "".join(p.a for p in pieces) == "the quick brown fox"
    assert "".join(p.b for p in pieces) == "the slow brown fox"


def test_word_diff_joins_neighbouring_changes() -> None:
    assert marked(word_diff("a big red car", "a small blue car")) == "a [-big red-]{+small blue+} car"
    assert marked(word_diff("same", "same")) == "same"
    assert marked(word_diff("", "new")) == "{+new+}"


def test_excerpt_shows_the_change_not_the_shared_prefix() -> None:
    pieces = excerpt(word_diff(GREETING_A, GREETING_B), width=60)
    a = "".join(p.a for p in pieces)
    b = "".join(p.b for p in pieces)
    assert a.startswith("…") and b.startswith("…")
    assert "refund the full amount today" in a and "review your refund within two days" in b
    assert "Hi Grace" not in a  # the long shared beginning is cut


def test_text_hunks_keep_changed_lines_with_context() -> None:
    lines = text_hunks(GREETING_A, GREETING_B, context=1)
    tags = [ln.tag for ln in lines]
    assert tags == ["…", " ", "~", " ", "…"]
    changed = marked(lines[2].pieces)
    assert changed == "We will {+review your +}refund [-the full amount today-]{+within two days+}."
    added = text_hunks("a\nb", "a\nb\nc")
    assert [ln.tag for ln in added] == ["…", " ", "+"] and added[2].pieces[0].b == "c"


def test_json_changes_name_the_paths_that_differ() -> None:
    a = {"reply": "Hi there", "tags": ["x", "y"], "meta": {"n": 1, "old": True}}
    b = {"reply": "Hi you", "tags": ["x", "z", "y"], "meta": {"n": 2}, "extra": None}
    got = [(c.path, c.kind, c.a, c.b) for c in json_changes(a, b)]
    assert got == [(".reply", "changed", "Hi there", "Hi you"),
                   (".tags[1]", "added", None, "z"),
                   (".meta.n", "changed", 1, 2),
                   (".meta.old", "removed", True, None),
                   (".extra", "added", None, None)]
    reply = json_changes(a, b)[0]
    assert marked(reply.pieces) == "Hi [-there-]{+you+}"
    assert json_changes({"k": [1, 2]}, {"k": [1, 2]}) == []
    # 1 and 1.0 and True are different values in a trace.
    assert [c.path for c in json_changes([1], [True])] == ["[0]"]


def test_json_changes_compare_replaced_list_items_inside() -> None:
    a = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi Ada"}]
    b = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi Bob"}]
    [change] = json_changes(a, b)
    assert change.path == "[1].content" and marked(change.pieces) == "Hi [-Ada-]{+Bob+}"
    assert json_changes({"a b": 1}, {"a b": 2})[0].path == '["a b"]'


def test_change_lines_print_the_difference() -> None:
    out = plain(change_lines("draft", GREETING_A, GREETING_B))
    assert "draft:" in out
    assert "~ We will {+review your +}refund [-the full amount today-]{+within two days+}." in out
    assert "Hi Grace Hopper" not in out  # the shared lines more than one away are left out
    out = plain(change_lines("safety_issues", ["'guarantee'", "'full refund'"], []))
    assert "safety_issues[0]: removed 'guarantee'" in out and "safety_issues[1]: removed 'full refund'" in out
    assert plain(change_lines("value", 22, 200)).strip() == "value: A=22  B=200"
    assert plain(change_lines("category", "billing", "technical")).strip() == \
        "category: [-billing-]{+technical+}"


def test_short_change_cuts_around_the_difference() -> None:
    a, b = short_change(GREETING_A, GREETING_B, width=60)
    assert "the full" in a.plain and "review your" in b.plain
    assert a.plain != b.plain
    assert any(span.style for span in a.spans)  # the changed words are highlighted


@pytest.mark.parametrize("width", [60, 28, 12, 4])
def test_short_change_never_overruns_its_width(width: int) -> None:
    """Line ends became ``⏎ `` after the cut was measured, and a change near the end kept 8
    characters whatever the room: a Compare cell overran its width by up to 6, the ellipsis cut
    off with it."""
    for a, b in [(GREETING_A, GREETING_B), ("line\n" * 20, "other\n" * 20),
                 ("Hi Grace,\n\nThanks for getting in touch.", "Hi Grace,\n\nThanks for writing.")]:
        for side_text in short_change(a, b, width=width):
            assert len(side_text.plain) <= width, (width, side_text.plain)
            assert "\n" not in side_text.plain
    a, b = short_change("line\n" * 20, "other\n" * 20, width=28)
    assert (a.plain, b.plain) == ("line⏎ line⏎ line⏎ line⏎ lin…", "other⏎ other⏎ other⏎ other⏎…")


def test_full_side_keeps_real_newlines_and_highlights_changes() -> None:
    text = full_side({"reply": "one\ntwo"}, {"reply": "one\nthree"}, "b")
    assert '"reply": "one\\nthree"' in text.plain
    highlighted = [text.plain[s.start:s.end] for s in text.spans]
    assert highlighted == ["three"]
    text = full_side(GREETING_A, GREETING_B, "a")
    assert text.plain == GREETING_A
    assert "the full amount today" in [text.plain[s.start:s.end] for s in text.spans]


def test_each_side_is_cut_on_its_own_so_a_short_side_keeps_its_end() -> None:
    """A long list against an empty one: the long side is cut, the short one shown whole (it
    once showed ``[`` because the cut of the other side ended both)."""
    from workbench.diffview import short_change

    a, b = short_change(["'guarantee'", "'full refund'"], [], width=20)
    assert b.plain == "[]"
    assert a.plain.startswith('["\'guarantee\'"') and a.plain.endswith("…")
    a, b = short_change({"k": "x" * 50}, {"k": "y"}, width=20)
    assert b.plain == '{"k": "y"}' and a.plain.endswith("…")
