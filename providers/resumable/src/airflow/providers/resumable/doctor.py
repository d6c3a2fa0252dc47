# Licensed under the Apache License, Version 2.0.
"""
``airflow-resumable doctor``: is this Airflow ready for resumable operators, and if not, what to do.

What it is for: one command to run on any Airflow component (worker, scheduler, API server) that
says which Airflow it is, whether the CHECKPOINTED core patch is applied, whether the task state
store (where the ledger lives) is usable, and whether the operators will raise
``AirflowTaskCheckpointed`` or fall back to ``up_for_reschedule``.

How it works: each check is a small function returning a :class:`Check`; none writes anything. The
patch check reads the files on disk; the checkpoint-mode check asks this interpreter, exactly as the
operators do (:func:`airflow.providers.resumable.checkpoint.checkpointed_state_available`), so it
reflects what is imported, not what is on disk (they differ until the process restarts).

Known limitation: the task state store is served by the API server; from a worker without database
access the table check reports "unknown" rather than failing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from airflow.providers.resumable.core_patch.installation import (
    RELEASES,
    PatchError,
    PatchState,
    default_target,
    inspect_target,
    read_versions,
    supported,
)


@dataclass(frozen=True)
class Check:
    """
    The outcome of one check.

    :param name: what was checked.
    :param ok: True passed, False failed, None could not be decided here.
    :param detail: what was found.
    :param remedy: what to do when it did not pass ("" when it passed).
    """

    name: str
    ok: bool | None
    detail: str
    remedy: str = ""

    def render(self) -> str:
        """The check as printed: a verdict, the finding, and the remedy on its own line."""
        verdict = {True: "ok     ", False: "FAIL   ", None: "unknown"}[self.ok]
        text = f"[{verdict}] {self.name}: {self.detail}"
        return f"{text}\n          -> {self.remedy}" if self.remedy else text


def check_airflow_version(root: Path) -> Check:
    """
    Whether ``root`` holds an Airflow release this provider bundles the core patch for.

    :param root: the directory holding the ``airflow`` package.
    """
    name = "Airflow version"
    try:
        found = read_versions(root)
    except PatchError as err:
        return Check(name, False, str(err), "Install apache-airflow>=3.3.0,<3.4 or pass --target.")
    detail = ", ".join(f"{dist} {version}" for dist, version in found.items()) + f" in {root}"
    if RELEASES.get(found["apache-airflow-core"]) == found["apache-airflow-task-sdk"]:
        return Check(name, True, f"{detail}; the core patch is bundled for it")
    return Check(
        name,
        False,
        f"{detail}; no core patch for it, so the operators run on the fallback path: a checkpoint is "
        "up_for_reschedule (AirflowRescheduleException), resumed without consuming a retry",
        f"{supported()} Install one of those to get the checkpointed state.",
    )


def check_patch(root: Path) -> Check:
    """
    Whether the CHECKPOINTED core patch is applied to the files in ``root``, and which one.

    :param root: the directory holding the ``airflow`` package.
    """
    name = "CHECKPOINTED core patch"
    try:
        found = read_versions(root)
        if RELEASES.get(found["apache-airflow-core"]) != found["apache-airflow-task-sdk"]:
            return Check(name, False, "none bundled for this Airflow release", "See 'Airflow version' above.")
        status = inspect_target(root)
    except PatchError as err:
        return Check(name, False, str(err), "See 'Airflow version' above.")
    state = status.state
    applied = status.applied
    if state is PatchState.APPLIED and applied is not None:
        return Check(name, True, f"applied ({len(status.files)} files): {applied.identity()}")
    if state is PatchState.OTHER_PATCH and applied is not None:
        return Check(
            name,
            False,
            f"another version applied: {applied.identity()}; this provider bundles {status.patch.identity()}",
            "Run 'airflow-resumable patch apply' to replace it (all files or none) on every Airflow "
            "component, then restart them.",
        )
    remedies = {
        PatchState.NOT_APPLIED: "Run 'airflow-resumable patch apply' on every Airflow component "
        "(same image for scheduler, API server, workers, dag processor, triggerer), then restart them.",
        PatchState.PARTIALLY_APPLIED: "An apply or revert was interrupted: run 'airflow-resumable patch "
        "apply' (or 'revert') again.",
        PatchState.CONFLICT: "Some patched files were changed by something else; run "
        "'airflow-resumable patch status' for the list, reinstall apache-airflow, then apply.",
    }
    return Check(name, False, state.value, remedies[state])


def check_task_state_store() -> Check:
    """Whether the AIP-103 task state store (where the ledger lives) is usable from here."""
    name = "Task state store"
    try:
        from airflow.sdk.execution_time.context import TaskStateStoreAccessor  # noqa: F401
        from airflow.state import resolve_state_backend

        backend = resolve_state_backend()
    except Exception as err:
        return Check(
            name,
            False,
            f"not usable: {type(err).__name__}: {err}",
            "Check [state_store] backend in the Airflow configuration; the operators keep their ledger "
            "there and refuse to submit without it.",
        )
    detail = f"backend {backend.__module__}.{backend.__qualname__}"
    try:
        from sqlalchemy import inspect

        from airflow import settings

        if settings.engine is None:
            raise RuntimeError("no metadata database configured in this process")
        has_table = inspect(settings.engine).has_table("task_state_store")
    except Exception as err:
        return Check(
            name,
            None,
            f"{detail}; could not check the metadata database from here ({type(err).__name__})",
            "Expected on a worker, which reaches the store through the API server. Run doctor on the "
            "API server or scheduler to check the table.",
        )
    if not has_table:
        return Check(
            name,
            False,
            f"{detail}; the metadata database has no task_state_store table",
            "Run 'airflow db migrate'.",
        )
    return Check(name, True, f"{detail}; table task_state_store present")


def check_checkpoint_mode(root: Path) -> Check:
    """
    Whether the operators in this interpreter will report ``checkpointed`` or fall back.

    :param root: the target inspected by the other checks, to say when it is not this interpreter's.
    """
    from airflow.providers.resumable.checkpoint import checkpointed_state_available

    name = "Operators' checkpoint mode"
    elsewhere = "" if Path(root).resolve() == default_target().resolve() else " (of this interpreter)"
    if checkpointed_state_available():
        return Check(name, True, f"'checkpointed' (AirflowTaskCheckpointed){elsewhere}")
    try:
        found = read_versions(root)
        patch_exists = RELEASES.get(found["apache-airflow-core"]) == found["apache-airflow-task-sdk"]
    except PatchError:
        patch_exists = False
    return Check(
        name,
        False,
        f"fallback 'up_for_reschedule' (AirflowRescheduleException){elsewhere}: the patch is not "
        "loaded in this interpreter; tasks still resume without consuming a retry",
        "Apply the patch and restart the process; a running process keeps the code it imported."
        if patch_exists
        else "None needed to run: the fallback is what this Airflow release supports. " + supported(),
    )


def run_checks(root: Path) -> list[Check]:
    """
    Every check, in the order they are printed.

    :param root: the directory holding the ``airflow`` package.
    """
    checks: list[Callable[[], Check]] = [
        lambda: check_airflow_version(root),
        lambda: check_patch(root),
        check_task_state_store,
        lambda: check_checkpoint_mode(root),
    ]
    return [check() for check in checks]


def run_doctor(target: Path | None, out: TextIO | None = None) -> int:
    """
    Print every check; return 0 when none failed, 1 otherwise.

    :param target: the directory holding the ``airflow`` package; the running interpreter's if None.
    :param out: where to print; standard output by default.
    """
    out = out or sys.stdout
    results = run_checks(target if target is not None else default_target())
    for result in results:
        print(result.render(), file=out)
    return 1 if any(r.ok is False for r in results) else 0
