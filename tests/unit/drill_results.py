# Licensed under the Apache License, Version 2.0.
"""A passing drill result, for tests of what reports and tabulates results (no drill runs)."""

from __future__ import annotations

from airflow.providers.resumable.drill.plan import Disruption
from airflow.providers.resumable.drill.runner import DisruptionResult


def ok_result(disruption: Disruption, *, seconds: float) -> DisruptionResult:
    """
    What the drill reports for ``disruption`` when it went as its kind expects: one job, no cancel.

    :param disruption: the disruption.
    :param seconds: how long it took.
    """
    expected = disruption.kind.expected
    return DisruptionResult(
        disruption=disruption,
        run_id=f"manual__{disruption.number}",
        final_state=expected.dag_run_state,
        jobs=(f"job-{disruption.number}",),
        job_in_ledger=f"job-{disruption.number}",
        cancellations=0,
        try_number=expected.try_number,
        checkpoints=1,
        seconds=seconds,
    )
