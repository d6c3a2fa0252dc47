# Licensed under the Apache License, Version 2.0.
"""
Screenshots of a checkpointed task instance in the real web UI, for docs/core_patch.rst.

What it is for: showing what the core patch's UI part changes (its own colour, icon and filter
entry for ``checkpointed``), from a real browser on a real stack, and retaking them when the patch
changes. Run by hand, not by ``make test``::

    make patch-venv
    .venv/bin/python -m pip install playwright   # the Python client only; no browser download
    apt-get install -y chromium                  # the browser it drives
    .venv/bin/python docs/screenshots/take_screenshots.py

How it works: starts an :class:`~airflow.providers.resumable.testing.stack.AirflowStack` (scheduler,
API server, dag processor on 127.0.0.1) from this interpreter's patched Airflow, deploys
``screenshot_dag.py`` and triggers it; once ``long_job`` is ``checkpointed`` (it checkpoints itself
for an hour) and ``other_job`` is ``running``, a headless Chromium logs in as the simple auth
manager's admin and saves PNGs into ``docs/_static/``: the grid, the run's task instance list, the
task instance list's state filter opened, and the dashboard. The stack is stopped by PID at the end.

What it does not do: check the pictures; look at them. It refuses to run on an unpatched Airflow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from airflow.providers.resumable.core_patch import PatchState, default_target, inspect_target
from airflow.providers.resumable.testing.stack import AirflowStack, StackSettings

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "_static"
DAG_ID = "ui_checkpointed"
# Root in a container: Chromium's sandbox needs user namespaces it does not get there. The rest keeps
# it from calling home (updates, sync, component downloads) and from touching a real profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _log_in(page: Page, stack: AirflowStack) -> None:
    user, password = stack.login
    page.goto(f"{stack.base_url}/", wait_until="networkidle")  # redirects to the login form
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    page.wait_for_load_state("networkidle")


def _open(page: Page, url: str, text: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.get_by_text(text).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1_500)  # let the grid and the charts finish laying out


def _save(page: Page, name: str, **options: Any) -> None:
    path = STATIC / name
    page.screenshot(path=str(path), **options)
    print(f"saved {path}")


def take(page: Page, stack: AirflowStack, run_id: str) -> None:
    """Every screenshot, on a logged-in page at device scale 2 (the grid's cells are 14 px)."""
    run = f"{stack.base_url}/dags/{DAG_ID}/runs/{run_id}"
    _open(page, run, "Checkpointed")
    # The grid and its task names: the left panel, below the breadcrumbs, above the empty space.
    _save(page, "checkpointed-grid.png", clip={"x": 64, "y": 130, "width": 276, "height": 210})
    _save(page, "checkpointed-task-instances.png")
    _open(page, f"{run}/tasks/long_job", "Checkpointed")
    _save(page, "checkpointed-task-instance.png")
    _open(page, f"{stack.base_url}/task_instances", "long_job")
    page.get_by_role("button", name="Filter").first.click()
    page.get_by_role("menuitem", name="State").first.click()
    page.get_by_role("combobox").last.click()
    page.get_by_role("option", name="Checkpointed").wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    _save(page, "checkpointed-task-instances-filter.png", clip={"x": 64, "y": 0, "width": 900, "height": 500})
    # The dashboard's task instance counts are below the fold of an 800 px window, in a panel that
    # scrolls by itself (a full-page screenshot does not reach them): a taller window does.
    page.set_viewport_size({"width": 1400, "height": 1500})
    _open(page, f"{stack.base_url}/", "Task Instances")
    _save(page, "checkpointed-dashboard.png", clip={"x": 64, "y": 400, "width": 1000, "height": 760})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    args = parser.parse_args(argv)

    status = inspect_target(default_target())
    if status.state is not PatchState.APPLIED:
        print(f"The core patch is not applied here ({status.state.value}); run 'make patch-venv'.")
        return 1
    with tempfile.TemporaryDirectory(prefix="ui-screenshots-") as home:
        stack = AirflowStack(Path(home) / "airflow", StackSettings())
        stack.start()
        try:
            stack.add_dag_file(HERE / "screenshot_dag.py")
            stack.wait_for_dag(DAG_ID)
            run_id = stack.trigger_dag(DAG_ID)
            stack.wait_for_ti_state(DAG_ID, run_id, "long_job", "checkpointed", timeout=120)
            stack.wait_for_ti_state(DAG_ID, run_id, "other_job", "running", timeout=120)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 800}, device_scale_factor=2)
                _log_in(page, stack)
                take(page, stack, run_id)
                browser.close()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
