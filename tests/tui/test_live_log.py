"""The Live log and a streamed model answer: the answer grows on one line as its tokens arrive
(wrapped as any long line is), a newline in it or the next event starts a new line, and each
token costs the same however long the answer already is."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from workbench.context import Event
from workbench.tui.messages import RunEventReceived
from workbench.tui.widgets.live_log import LiveLog

from .conftest import Project, final_state, log_lines, make_project, opened, poll
from .test_pilot import run_via_form, wait_run

pytestmark = pytest.mark.anyio

RUN = "r-stream"
ANSWER = " ".join(f"word{i}" for i in range(100))


def pieces(text: str) -> list[str]:
    """``text`` cut as a model streams it: pieces of 1 to 9 characters, most ending mid-word."""
    out, at, size = [], 0, 1
    while at < len(text):
        out.append(text[at:at + size])
        at, size = at + size, size % 9 + 1
    return out


def post(app: Any, kind: str, node: str | None = "answer", **data: Any) -> None:
    """An event as the run's worker hands it to the app (app.execute's listener)."""
    app.post_message(RunEventReceived(Event(kind, RUN, 1, node, data)))


def stream(app: Any, parts: list[str], node: str = "answer") -> None:
    for part in parts:
        post(app, "token", node, data=part)


def wrapped(app: Any, text: str) -> list[str]:
    """``text`` as one line wrapped to the Live log's width (rich's own wrapping)."""
    log = app.query_one("#live-log", LiveLog)
    width = max(log.scrollable_content_region.width, log.min_width)
    console = Console(width=width, file=io.StringIO())
    return [row.plain.rstrip() for row in Text(text).wrap(console, width)]


def rows(app: Any) -> list[str]:
    return [line.rstrip() for line in log_lines(app)]


async def until(pilot: Any, check: Callable[[list[str]], Any], what: str) -> None:
    """Wait (bounded) until the Live log's rows pass ``check``; a failure shows them."""
    try:
        await poll(pilot, lambda: check(rows(pilot.app)), what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe Live log: {rows(pilot.app)}") from None


async def test_a_streamed_answer_grows_on_one_line_while_it_arrives(project: Project) -> None:
    """It was cut into a line every 41 tokens (mid-word, lines starting with a space), and shown
    only once 41 tokens had come."""
    async with opened(project) as (app, pilot):
        post(app, "step_started", None, nodes=["answer"])
        parts = pieces(ANSWER)
        half = len(parts) // 2
        stream(app, parts[:half])
        so_far = "".join(parts[:half])
        # Before the answer ends, what came so far is shown: one line, wrapped.
        await until(pilot, lambda shown: shown[1:] == wrapped(app, so_far), "the first half")
        assert len(rows(app)) > 2  # (the answer is long enough to wrap)

        stream(app, parts[half:])
        post(app, "task_finished", status="completed", duration_ms=5.0)
        await until(pilot, lambda shown: shown and shown[-1].startswith("  answer completed"), "the step")
        shown = rows(app)
        assert shown[0] == "step 1: answer"
        assert shown[1:-1] == wrapped(app, ANSWER)
        assert not any(row.startswith(" ") for row in shown[1:-1])


async def test_a_slow_stream_shows_each_token_as_it_comes(project: Project) -> None:
    """A model answering a token every two seconds showed nothing for over a minute."""
    async with opened(project) as (app, pilot):
        post(app, "step_started", None, nodes=["answer"])
        await until(pilot, lambda shown: shown == ["step 1: answer"], "the step")
        post(app, "token", data="The")
        await until(pilot, lambda shown: shown == ["step 1: answer", "The"], "the first token")
        post(app, "token", data=" answer")
        await until(pilot, lambda shown: shown == ["step 1: answer", "The answer"], "the second token, same line")


async def test_newlines_in_the_answer_and_other_nodes_start_lines(project: Project) -> None:
    async with opened(project) as (app, pilot):
        stream(app, ["## Ti", "tle\n", "\nFirst para", "graph ends", " here.\n- it", "em"])
        stream(app, ["other ", "node"], node="critic")  # (parallel branches) a line of its own
        post(app, "step_committed")  # shows nothing: the line stays open
        stream(app, [" says"], node="critic")
        post(app, "task_finished", node="critic", status="completed", duration_ms=1.0)
        await until(pilot, lambda shown: shown and shown[-1].startswith("  critic completed"), "the step")
        assert rows(app) == ["## Title", "", "First paragraph ends here.", "- item", "other node says",
                             "  critic completed in 1.0 ms"]


async def test_a_long_answer_draws_only_its_last_row_again_per_token(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each flush drew the answer's last row and what arrived, never the answer so far."""
    monkeypatch.setattr("workbench.tui.widgets.live_log.FLUSH_EVERY_S", 0.0)  # every token drawn
    drawn: list[int] = []
    real_write = LiveLog.write

    def write(self: LiveLog, content: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(len(content.plain) if isinstance(content, Text) else 0)
        return real_write(self, content, *args, **kwargs)

    monkeypatch.setattr(LiveLog, "write", write)
    answer = " ".join(f"word{i}" for i in range(1500))
    async with opened(project) as (app, pilot):
        log = app.query_one("#live-log", LiveLog)
        stream(app, [f"word{i} " if i < 1499 else f"word{i}" for i in range(1500)])
        await until(pilot, lambda shown: shown and shown[-1].endswith("word1499"), "the whole answer")
        assert rows(app) == wrapped(app, answer)
        assert len(drawn) >= 1500  # (each token was drawn as it came)
        width = max(log.scrollable_content_region.width, log.min_width)
        assert max(drawn) <= width + len("word1499 "), max(drawn)


@pytest.fixture
def stream_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    proj = make_project(tmp_path / "proj", ["stream"])
    monkeypatch.chdir(proj.root)
    return proj


async def test_a_model_answer_streamed_by_a_run_is_one_line(stream_project: Project) -> None:
    """End to end: a node's ctx.llm(..., stream=True) call to the demo model, token by token."""
    words = " ".join(f"w{i}" for i in range(100))
    async with opened(stream_project) as (app, pilot):
        await run_via_form(pilot, "stream", message=words)
        run = await wait_run(pilot, "completed")
        assert final_state(app, run["run_id"])["answer"] == words
        shown = rows(app)
        first = next(i for i, row in enumerate(shown) if row.startswith("w0 "))
        end = next(i for i, row in enumerate(shown) if row.startswith("  answer completed"))
        assert shown[first:end] == wrapped(app, words)
