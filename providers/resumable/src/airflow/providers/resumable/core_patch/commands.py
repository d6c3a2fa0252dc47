# Licensed under the Apache License, Version 2.0.
"""
``airflow-resumable patch status|apply|revert``: what each prints and which exit code it returns.

``status`` exits 0 applied, 1 not applied, 2 partially applied, 3 refused or conflicting, 4 another
version of the patch applied (``apply`` replaces it); ``apply`` and ``revert`` exit 0 or 3.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from airflow.providers.resumable.core_patch.installation import (
    PatchError,
    PatchState,
    TargetStatus,
    apply_patch,
    default_target,
    inspect_target,
    revert_patch,
)

EXIT_OK = 0
EXIT_NOT_APPLIED = 1
EXIT_PARTIALLY_APPLIED = 2
EXIT_REFUSED = 3
EXIT_OTHER_PATCH = 4

_STATUS_EXIT = {
    PatchState.APPLIED: EXIT_OK,
    PatchState.NOT_APPLIED: EXIT_NOT_APPLIED,
    PatchState.PARTIALLY_APPLIED: EXIT_PARTIALLY_APPLIED,
    PatchState.CONFLICT: EXIT_REFUSED,
    PatchState.OTHER_PATCH: EXIT_OTHER_PATCH,
}


def describe(status: TargetStatus) -> str:
    """
    A person-readable account of a target's patch state, with what to do next.

    Names the applied patch (file, hash, the provider version that applied it) whenever one is.

    :param status: the inspected target.
    """
    versions = ", ".join(f"{dist} {version}" for dist, version in status.versions.items())
    head = f"{status.root}: {versions}: CHECKPOINTED patch {status.state.value}"
    state = status.state
    applied = status.applied
    if state is PatchState.APPLIED and applied is not None:
        return f"{head} ({len(status.files)} files): {applied.identity()}."
    if state is PatchState.NOT_APPLIED:
        return f"{head}. Run 'airflow-resumable patch apply' to apply {status.patch.identity()}."
    if state is PatchState.OTHER_PATCH and applied is not None:
        return (
            f"{head}: {applied.identity()}. This provider bundles {status.patch.identity()}; run "
            "'airflow-resumable patch apply' to replace it (all files or none), or 'revert' to remove it."
        )
    if state is PatchState.PARTIALLY_APPLIED:
        pending = "\n  ".join(str(f.path) for f in status.in_state(PatchState.NOT_APPLIED))
        return (
            f"{head}: an apply or revert was interrupted. Not yet patched:\n  {pending}\n"
            "Run 'airflow-resumable patch apply' to finish applying, or 'revert' to undo it."
        )
    conflicts = "\n  ".join(str(f.path) for f in status.in_state(PatchState.CONFLICT))
    return (
        f"{head}: these files are neither the release files nor the patched ones:\n  {conflicts}\n"
        "Nothing will be written. Reinstall apache-airflow-core / apache-airflow-task-sdk, then apply."
    )


def run_patch_command(action: str, target: Path | None, out: TextIO | None = None) -> int:
    """
    Run one ``patch`` sub-command and return its exit code.

    :param action: ``status``, ``apply`` or ``revert``.
    :param target: the directory holding the ``airflow`` package; the running interpreter's if None.
    :param out: where to print; standard output by default (errors go to standard error).
    """
    out = out or sys.stdout
    root = target if target is not None else default_target()
    try:
        before = inspect_target(root)
        if action == "status":
            print(describe(before), file=out)
            return _STATUS_EXIT[before.state]
        if action == "apply":
            written = apply_patch(root)
            replaced = before.applied if before.state is PatchState.OTHER_PATCH else None
            verb = (
                f"Replaced {replaced.identity()} with {before.patch.identity()}:"
                if replaced is not None
                else f"Applied {before.patch.identity()} to"
            )
        elif action == "revert":
            written = revert_patch(root)
            verb = f"Reverted {before.applied.identity() if before.applied else 'the CHECKPOINTED patch'} in"
        else:
            raise ValueError(f"unknown patch action {action!r}")
    except PatchError as err:
        print(f"airflow-resumable patch {action}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    if action == "apply" and written == [before.record_path]:
        # The files were patched already (by an applier that kept no record, or an apply interrupted
        # just before its record): nothing changes for Airflow, so no restart is needed.
        print(
            f"Recorded {before.patch.identity()} in {before.record_path}; the files were patched.", file=out
        )
    elif written:
        print(f"{verb} {len(written)} files in {root}. Restart every Airflow component.", file=out)
    else:
        print(f"Nothing to do: {describe(inspect_target(root))}", file=out)
    return EXIT_OK
