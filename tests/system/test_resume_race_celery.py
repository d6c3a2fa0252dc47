# Licensed under the Apache License, Version 2.0.
"""
``test_resume_race.py``'s late executor event on the production flavour (Celery, Postgres, Redis).

The CeleryExecutor polls each workload's result; the checkpointed attempt's "succeeded" reaches the
scheduler when its Celery task ends, after the slow listener, while the resumed task instance waits
in ``scheduled`` for a slot of its closed pool.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.stack import AirflowStack
from tests.system.test_resume_race import (
    check_a_late_executor_event_does_not_fail_the_resumed_attempt,
    deployed,
    needs_the_core_patch,
)

pytestmark = [pytest.mark.system, needs_the_core_patch]


@pytest.fixture(scope="module")
def celery_race_stack(celery_stack: CeleryAirflowStack) -> Iterator[AirflowStack]:
    yield from deployed(celery_stack)


def test_on_celery_a_late_executor_event_of_the_checkpointed_attempt_does_not_fail_the_resumed_one(
    celery_race_stack: AirflowStack,
) -> None:
    check_a_late_executor_event_does_not_fail_the_resumed_attempt(celery_race_stack)
