# Licensed under the Apache License, Version 2.0.
"""
The CHECKPOINTED core patch for apache-airflow 3.3.0, 3.3.1 and 3.3.2, and its applier.

What it is for: giving Airflow an explicit ``checkpointed`` task state (AIP-96), so a task can say
"pause me here, resume me later" without failing or consuming a retry. The operators of this
provider use it when it is present and fall back to ``up_for_reschedule`` when it is not
(:mod:`airflow.providers.resumable.checkpoint`).

How it works: ``airflow-<version>-checkpointed.patch`` is one unified diff per Airflow release in
upstream repository layout (so it doubles as an upstream proposal; 3.3.0's and 3.3.1's are 3.3.2's
ported); beside it ``airflow-<version>-checkpointed-ui.json`` gives the state a colour, an icon and
filter entries in the release's compiled web UI by exact replacements (:mod:`.replacements`), since a
diff of the bundle's minified lines would be megabytes; :mod:`.unified_diff` parses and applies the
diff exactly, in pure Python; :mod:`.installation`
picks the diff for the installed release, maps it onto a site-packages and moves the files between
the release, the patched state and another version of the patch (recorded in the target by every
apply), all or nothing.

What it does not do: rebuild the web UI from source, migrate the database (none is needed), or patch any
Airflow release without a bundled diff (the operators fall back to ``up_for_reschedule`` there).
Every Airflow component (scheduler, API server, workers, dag processor, triggerer) must run the
patched code: a half-patched deployment marks checkpointed tasks failed.
"""

from __future__ import annotations

from airflow.providers.resumable.core_patch.installation import (
    RELEASES,
    CorePatch,
    PatchError,
    PatchState,
    TargetStatus,
    apply_patch,
    bundled_patch,
    default_target,
    inspect_target,
    revert_patch,
)

__all__ = [
    "RELEASES",
    "CorePatch",
    "PatchError",
    "PatchState",
    "TargetStatus",
    "apply_patch",
    "bundled_patch",
    "default_target",
    "inspect_target",
    "revert_patch",
]
