"""Regenerate the SVG screenshots in docs/images from the demo project.

    .venv/bin/python docs/images/make_screenshots.py

Runs the support demo into a scratch trace store, opens the workbench headless (Textual's test
driver) at 150x45, and saves what it shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


async def shoot() -> None:
    from workbench import Runner, TraceStore
    from workbench.loader import load_graph
    from workbench.tui.app import WorkbenchApp

    graph = load_graph("support")
    with TraceStore("traces/workbench.duckdb") as store:
        await Runner(graph, store).arun({"message": "I was charged twice, I want a refund of $40", "customer_id": "C-1002"})
        await Runner(graph, store).arun({"message": "This is unacceptable, I want a manager", "customer_id": "C-1001"})

    app = WorkbenchApp("traces/workbench.duckdb", "graphs", watch=False)
    async with app.run_test(size=(150, 45)) as pilot:

        from textual.worker import WorkerState

        forever = {"watch", "watch-store"}  # workers that live as long as the app

        async def settle() -> None:
            for _ in range(4):
                await pilot.pause(0.2)
                for worker in list(app.workers):
                    if worker.group not in forever and worker.state == WorkerState.RUNNING:
                        await worker.wait()

        await settle()
        app.selected_graph = "support"
        app._show_graph()
        await pilot.press("2")
        await settle()
        await pilot.press("down", "enter")  # the refund run (second newest)
        await settle()
        await pilot.press("j", "j", "j")
        await settle()
        app.save_screenshot(os.path.join(HERE, "timeline.svg"))
        await pilot.press("1")
        await settle()
        app.save_screenshot(os.path.join(HERE, "workbench.svg"))
        await pilot.press("5")
        await settle()
        await pilot.press("ctrl+r")
        await settle()
        app.save_screenshot(os.path.join(HERE, "sql.svg"))


def main() -> None:
    work = tempfile.mkdtemp(prefix="workbench-shots-")
    shutil.copytree(os.path.join(REPO, "graphs"), os.path.join(work, "graphs"))
    os.makedirs(os.path.join(work, "traces"))
    os.chdir(work)
    sys.path.insert(0, REPO)
    asyncio.run(shoot())
    print(f"screenshots written to {HERE}")


if __name__ == "__main__":
    main()
