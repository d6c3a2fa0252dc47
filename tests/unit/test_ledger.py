# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from attempts import JsonFileTaskStateStore

from airflow.providers.resumable.ledger import (
    LEDGER_SCHEMA_VERSION,
    LedgerCorrupted,
    LedgerForeign,
    LedgerOwner,
    LedgerPhase,
    LedgerVersionUnsupported,
    SubmissionLedger,
)
from airflow.providers.resumable.ledger_store import LEDGER_KEY, LedgerStore

OWNER = LedgerOwner(dag_id="etl", run_id="scheduled__2026-11-23", task_id="load", map_index=-1)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _ledger(**changes) -> SubmissionLedger:
    ledger = SubmissionLedger.begin(owner=OWNER, kind="databricks.runs_submit", max_tries=2, now=NOW)
    return ledger if not changes else replace(ledger, **changes)


def test_begin_writes_intent_for_generation_zero_with_a_fresh_nonce():
    first, second = _ledger(), _ledger()
    assert first.phase is LedgerPhase.SUBMITTING
    assert first.generation == 0
    assert first.external_id is None
    assert first.nonce != second.nonce, "every ledger gets its own random nonce"
    assert str(first.key) == f"{first.nonce}-0"


def test_key_fits_the_strictest_cloud_limit_even_at_the_last_generation():
    # Dataproc request_id: at most 40 characters of [A-Za-z0-9_-].
    ledger = _ledger(generation=9_999_999)
    assert len(str(ledger.key)) <= 40
    assert set(str(ledger.key)) <= set("0123456789abcdef-")


def test_mark_submitted_then_next_generation_keeps_the_nonce_and_forgets_the_old_job():
    submitted = _ledger().mark_submitted("run-17", now=NOW)
    assert submitted.phase is LedgerPhase.SUBMITTED
    assert submitted.external_id == "run-17"
    fresh = submitted.next_generation(max_tries=5, now=NOW)
    assert (fresh.nonce, fresh.generation, fresh.phase) == (submitted.nonce, 1, LedgerPhase.SUBMITTING)
    assert fresh.external_id is None
    assert fresh.submitted_at is None
    assert fresh.max_tries == 5
    assert str(fresh.key) != str(submitted.key)


def test_a_try_keeps_its_clock_across_new_generations_and_a_new_try_starts_its_own():
    later = NOW.replace(hour=13)
    begun = SubmissionLedger.begin(
        owner=OWNER, kind="databricks.runs_submit", max_tries=2, now=NOW, try_number=1
    )
    assert (begun.try_number, begun.try_started_at) == (1, NOW)
    submitted = begun.mark_submitted("run-17", now=NOW)
    assert submitted.next_generation(max_tries=2, now=later, try_number=1).try_started_at == NOW
    assert submitted.taken_up_by_try(1, now=later) is submitted
    retried = submitted.taken_up_by_try(2, now=later)
    assert (retried.try_number, retried.try_started_at) == (2, later)
    assert submitted.next_generation(max_tries=3, now=later, try_number=2).try_started_at == later


def test_a_ledger_without_a_try_clock_still_parses_and_takes_one_up():
    old = {k: v for k, v in _ledger().to_json().items() if k not in ("try_number", "try_started_at")}
    ledger = SubmissionLedger.from_json(old)
    assert (ledger.try_number, ledger.try_started_at) == (None, None)
    assert ledger.taken_up_by_try(3, now=NOW).try_started_at == NOW


def test_a_key_adopted_after_a_clear_records_the_clear():
    interrupted = _ledger()  # written with max_tries=2, then the task was cleared (max_tries=3)
    adopted = interrupted.mark_submitted("run-17", now=NOW, max_tries=3)
    assert adopted.max_tries == 3
    assert not adopted.was_cleared(3), "a later resume of the same try must not see a stale clear"
    assert interrupted.mark_submitted("run-17", now=NOW).max_tries == 2


def test_was_cleared_compares_max_tries():
    ledger = _ledger()
    assert not ledger.was_cleared(2)
    assert ledger.was_cleared(3)


def test_json_round_trip_is_lossless():
    ledger = _ledger().mark_submitted("run-17", now=NOW)
    assert SubmissionLedger.from_json(ledger.to_json()) == ledger
    clocked = ledger.taken_up_by_try(2, now=NOW)
    assert SubmissionLedger.from_json(clocked.to_json()) == clocked
    assert ledger.to_json()["v"] == LEDGER_SCHEMA_VERSION


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: "a string", "expected a JSON object"),
        (lambda d: {**d, "v": "1"}, "schema version 'v'"),
        (lambda d: {k: v for k, v in d.items() if k != "nonce"}, "'nonce'"),
        (lambda d: {**d, "nonce": "not-hex"}, "32 lowercase hex"),
        (lambda d: {**d, "generation": True}, "'generation'"),
        (lambda d: {**d, "generation": -1}, "out of range"),
        (lambda d: {**d, "phase": "launched"}, "launched"),
        (lambda d: {**d, "phase": "submitted", "external_id": None}, "no 'external_id'"),
        (lambda d: {**d, "intent_at": "yesterday"}, "yesterday"),
        (lambda d: {**d, "owner": ["etl"]}, "'owner'"),
        (lambda d: {**d, "try_number": "2"}, "'try_number'"),
        (lambda d: {**d, "try_started_at": "at dawn"}, "at dawn"),
    ],
)
def test_malformed_ledgers_are_refused_with_what_is_wrong(mutate, fragment):
    with pytest.raises(LedgerCorrupted, match=re.escape(fragment)):
        SubmissionLedger.from_json(mutate(_ledger().to_json()))


def test_a_newer_schema_version_is_refused_not_guessed():
    with pytest.raises(LedgerVersionUnsupported, match=f"v{LEDGER_SCHEMA_VERSION + 1}"):
        SubmissionLedger.from_json({**_ledger().to_json(), "v": LEDGER_SCHEMA_VERSION + 1})


def test_store_round_trip_through_a_task_state_store(tmp_path):
    store = LedgerStore(
        JsonFileTaskStateStore(tmp_path / "s.json"), owner=OWNER, kind="databricks.runs_submit"
    )
    assert store.load() is None
    ledger = _ledger().mark_submitted("run-17", now=NOW)
    store.save(ledger)
    assert store.load() == ledger


def test_store_refuses_a_ledger_of_another_task_instance_and_says_how_to_reset(tmp_path):
    raw = JsonFileTaskStateStore(tmp_path / "s.json")
    other = LedgerOwner(dag_id="etl", run_id="scheduled__2026-11-22", task_id="load")
    raw.set(
        LEDGER_KEY,
        SubmissionLedger.begin(owner=other, kind="databricks.runs_submit", max_tries=0, now=NOW).to_json(),
    )
    store = LedgerStore(raw, owner=OWNER, kind="databricks.runs_submit")
    with pytest.raises(LedgerForeign) as err:
        store.load()
    message = str(err.value)
    assert "scheduled__2026-11-22" in message
    assert "scheduled__2026-11-23" in message
    assert "Nothing was submitted or cancelled" in message
    assert f"/state-store/{LEDGER_KEY}" in message


def test_store_refuses_a_ledger_written_by_another_operator_family(tmp_path):
    raw = JsonFileTaskStateStore(tmp_path / "s.json")
    raw.set(LEDGER_KEY, _ledger().mark_submitted("s-ABC", now=NOW).to_json())
    store = LedgerStore(raw, owner=OWNER, kind="emr.add_steps")
    with pytest.raises(LedgerForeign, match=r"'databricks\.runs_submit' operator.*'emr\.add_steps'"):
        store.load()


def test_store_wraps_corruption_with_the_task_instance_and_the_remedy(tmp_path):
    raw = JsonFileTaskStateStore(tmp_path / "s.json")
    raw.set(LEDGER_KEY, {"v": 1, "nonce": 7})
    store = LedgerStore(raw, owner=OWNER, kind="databricks.runs_submit")
    with pytest.raises(LedgerCorrupted, match=r"task_id='load'.*malformed.*'nonce'.*delete the key"):
        store.load()


def test_hook_params_round_trip_and_survive_a_new_generation():
    params = {"databricks_conn_id": "dbx_prod", "retry_limit": 3}
    ledger = SubmissionLedger.begin(
        owner=OWNER, kind="databricks.runs_submit", max_tries=2, now=NOW, hook_params=params
    )

    stored = ledger.mark_submitted("run-1", now=NOW).to_json()
    assert stored["hook_params"] == params
    again = SubmissionLedger.from_json(stored)
    assert again.hook_params == params
    assert again.next_generation(max_tries=3, now=NOW).hook_params == params


def test_a_ledger_without_hook_params_stores_none_of_them_and_reads_back_as_none():
    stored = _ledger().to_json()

    assert "hook_params" not in stored  # what an older release wrote, and reads, is unchanged
    assert SubmissionLedger.from_json(stored).hook_params is None


def test_hook_params_that_are_not_an_object_are_corruption():
    with pytest.raises(LedgerCorrupted, match="hook_params"):
        SubmissionLedger.from_json({**_ledger().to_json(), "hook_params": "dbx_prod"})
