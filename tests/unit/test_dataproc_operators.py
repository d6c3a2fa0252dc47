# Licensed under the Apache License, Version 2.0.
"""
The Dataproc operators through the real ``google-cloud-dataproc`` gRPC clients and the gRPC fake.

Nothing in the client is patched: each test defines a real Airflow connection in an
``AIRFLOW_CONN_DATAPROC_FAKE`` environment variable (``api_endpoint`` + ``insecure`` extras), which
the environment-variables secrets backend resolves in this process and in the spawned attempt
processes alike; the hook turns it into an insecure channel to the fake on 127.0.0.1. Crash and
signal tests run the attempt in a child process (``attempts.py``).
"""

from __future__ import annotations

import itertools
import re
import signal
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from attempts import (
    TASK_ID,
    AttemptProcess,
    AttemptSpec,
    JsonFileTaskStateStore,
    run_attempt,
    wait_for,
)
from google.cloud import dataproc_v1

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.hooks.dataproc import (
    KEY_LABEL,
    batch_to_job_state,
    derive_batch_id,
    derive_job_id,
    job_to_job_state,
    key_label,
    prefixed_batch_id,
)
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.operators.dataproc import (
    ResumableDataprocCreateBatchOperator,
    ResumableDataprocSubmitJobOperator,
)
from airflow.providers.resumable.status import RemoteStatus
from airflow.providers.resumable.testing.dataproc import (
    BATCH_ID_PATTERN,
    JOB_ID_PATTERN,
    REQUEST_ID_PATTERN,
    BatchScript,
    FakeDataprocServer,
    FakeDataprocService,
    GrpcFault,
    JobScript,
)
from airflow.providers.resumable.triggers.dataproc import (
    ResumableDataprocBatchTrigger,
    ResumableDataprocJobTrigger,
)

CHECKPOINT_OUTCOME = "checkpointed" if checkpointed_state_available() else "rescheduled"
CONN_ID = "dataproc_fake"
PROJECT = "fake-project"
REGION = "europe-west1"
SUBMIT_JOB = "airflow.providers.resumable.operators.dataproc:ResumableDataprocSubmitJobOperator"
CREATE_BATCH = "airflow.providers.resumable.operators.dataproc:ResumableDataprocCreateBatchOperator"
PYSPARK_JOB = {
    "placement": {"cluster_name": "nightly-cluster"},
    "pyspark_job": {"main_python_file_uri": "gs://bucket/etl.py"},
}
PYSPARK_BATCH = {"pyspark_batch": {"main_python_file_uri": "gs://bucket/etl.py"}}


@pytest.fixture
def dp() -> FakeDataprocService:
    """Dataproc: jobs and batches last 1 s and succeed unless a test scripts them otherwise."""
    return FakeDataprocService(
        default_job_script=JobScript(run_seconds=1.0), default_batch_script=BatchScript(run_seconds=1.0)
    )


@pytest.fixture
def dp_server(dp: FakeDataprocService, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDataprocServer]:
    with FakeDataprocServer(dp) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", running.connection_uri(PROJECT))
        yield running


@pytest.fixture
def job_spec(workdir: Path, dp_server: FakeDataprocServer) -> AttemptSpec:
    """A fast-polling ResumableDataprocSubmitJobOperator attempt of a PySpark job."""
    return AttemptSpec(
        workdir=workdir,
        operator=SUBMIT_JOB,
        operator_kwargs={
            "gcp_conn_id": CONN_ID,
            "region": REGION,
            "job": PYSPARK_JOB,
            "polling_interval_seconds": 0.05,
            "resume_after": timedelta(seconds=1),
        },
    )


@pytest.fixture
def batch_spec(workdir: Path, dp_server: FakeDataprocServer) -> AttemptSpec:
    """A fast-polling ResumableDataprocCreateBatchOperator attempt of a PySpark batch."""
    return AttemptSpec(
        workdir=workdir,
        operator=CREATE_BATCH,
        operator_kwargs={
            "gcp_conn_id": CONN_ID,
            "region": REGION,
            "batch": PYSPARK_BATCH,
            "polling_interval_seconds": 0.05,
            "resume_after": timedelta(seconds=1),
        },
    )


def _ledger(spec: AttemptSpec) -> dict:
    return JsonFileTaskStateStore(spec.workdir / "state_store.json").get(LEDGER_KEY)


def _key(spec: AttemptSpec) -> str:
    ledger = _ledger(spec)
    return f"{ledger['nonce']}-{ledger['generation']}"


def _with(spec: AttemptSpec, **kwargs: object) -> AttemptSpec:
    return replace(spec, operator_kwargs={**spec.operator_kwargs, **kwargs})


def _fresh(spec: AttemptSpec, name: str) -> AttemptSpec:
    """The same operator in another task instance (its own ledger)."""
    other = spec.workdir / name
    other.mkdir(exist_ok=True)
    (other / "server_state").write_text("running")
    return replace(spec, workdir=other)


# -- jobs: the happy path and failures -----------------------------------------------------------


def test_submit_poll_success_returns_the_job_id_and_pushes_the_link(job_spec, dp):
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    [job] = dp.jobs()
    key = _key(job_spec)
    assert job.reference.job_id == derive_job_id(key, TASK_ID), "the job id is derived from the key"
    assert outcome["result"] == job.reference.job_id, "upstream returns the job id"
    assert outcome["xcoms"] == {
        "dataproc_job": {"job_id": job.reference.job_id, "region": REGION, "project_id": PROJECT}
    }
    submitted, request_id = dp.submitted(job.reference.job_id)
    assert request_id == key, "the ledger key is the request_id"
    assert submitted.labels[KEY_LABEL] == key_label(key)
    assert submitted.pyspark_job.main_python_file_uri == "gs://bucket/etl.py"
    assert dp.counters["jobs_created"] == 1
    assert _ledger(job_spec)["external_id"] == job.reference.job_id


def test_a_failed_job_fails_the_task_with_its_details_and_driver_output(job_spec, dp):
    dp.default_job_script = JobScript(
        run_seconds=0.3, final_state="ERROR", details="Google Cloud Dataproc Agent reports job failure."
    )
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "failed"
    [job] = dp.jobs()
    error = outcome["error"]
    assert f"Job {job.reference.job_id} did not succeed: FAILED (ERROR)" in error
    assert "Dataproc Agent reports job failure" in error
    assert f"driver output: {job.driver_output_resource_uri}" in error
    assert f"console.cloud.google.com/dataproc/jobs/{job.reference.job_id}?region={REGION}" in error


def test_a_user_set_job_id_and_request_id_are_sent_as_given(job_spec, dp):
    job = {**PYSPARK_JOB, "reference": {"job_id": "nightly_2026-11-23"}}
    outcome = run_attempt(_with(job_spec, job=job, request_id="nightly-2026-11-23-try1"))

    assert outcome["outcome"] == "success", outcome["error"]
    _submitted, request_id = dp.submitted("nightly_2026-11-23")
    assert request_id == "nightly-2026-11-23-try1"
    assert outcome["result"] == "nightly_2026-11-23"


def test_asynchronous_returns_the_job_id_without_waiting(job_spec, dp):
    dp.default_job_script = JobScript(run_seconds=None)
    outcome = run_attempt(_with(job_spec, asynchronous=True))

    assert outcome["outcome"] == "success", outcome["error"]
    [job] = dp.jobs()
    assert outcome["result"] == job.reference.job_id
    assert dp.job_state(job.reference.job_id) == "RUNNING"
    assert dp.counters["requests:GetJob"] == 0


def test_wait_timeout_fails_the_task_and_leaves_the_job_running(job_spec, dp):
    dp.default_job_script = JobScript(run_seconds=None)
    outcome = run_attempt(_with(job_spec, wait_timeout=1))

    assert outcome["outcome"] == "failed"
    [job] = dp.jobs()
    assert f"Timeout: dataproc job {job.reference.job_id} is not ready after 1s" in outcome["error"]
    assert dp.job_state(job.reference.job_id) == "RUNNING", "not cancelled, as upstream"


# -- jobs: exactly once ----------------------------------------------------------------------------


def test_after_request_ids_expire_already_exists_means_the_job_is_ours(job_spec, dp):
    hold = dp.inject("SubmitJob", GrpcFault.hold_after_commit())
    first = AttemptProcess(job_spec).start()
    wait_for(lambda: dp.counters["jobs_created"] == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()
    dp.forget_request_ids()  # the re-send is no longer deduplicated by request_id...

    second = run_attempt(job_spec)

    assert second["outcome"] == "success", second["error"]
    assert dp.counters["already_exists"] == 1, "...but the derived job id is taken"
    assert dp.counters["jobs_created"] == 1
    assert second["result"] == dp.jobs()[0].reference.job_id


def test_a_fixed_request_id_reused_by_another_run_is_not_adopted(job_spec, dp):
    yesterday = run_attempt(_with(_fresh(job_spec, "yesterday"), request_id="nightly"))
    assert yesterday["outcome"] == "success", yesterday["error"]

    today = run_attempt(_with(job_spec, request_id="nightly"))

    assert today["outcome"] == "failed_no_retry"
    assert "which this task instance did not submit" in today["error"]
    assert yesterday["result"] in today["error"]
    assert dp.counters["jobs_created"] == 1


def test_a_fixed_job_id_cannot_start_a_new_generation_and_says_so(job_spec, dp):
    dp.default_job_script = JobScript(run_seconds=0.2, final_state="ERROR", details="boom")
    spec = _with(job_spec, job={**PYSPARK_JOB, "reference": {"job_id": "fixed-id"}})
    assert run_attempt(spec)["outcome"] == "failed"

    again = run_attempt(replace(spec, try_number=2))

    assert again["outcome"] == "failed_no_retry"
    assert "an earlier generation of this task instance created" in again["error"]
    assert dp.counters["already_exists"] == 1
    assert dp.counters["jobs_created"] == 1


def test_a_failed_job_is_resubmitted_under_a_new_generation_with_new_ids(job_spec, dp):
    dp.default_job_script = JobScript(run_seconds=0.2, final_state="ERROR")
    assert run_attempt(job_spec)["outcome"] == "failed"
    dp.default_job_script = JobScript(run_seconds=0.2)

    again = run_attempt(replace(job_spec, try_number=2))

    assert again["outcome"] == "success", again["error"]
    assert _ledger(job_spec)["generation"] == 1
    first, second = dp.jobs()
    assert second.reference.job_id == again["result"] != first.reference.job_id
    assert dp.submitted(second.reference.job_id)[1].endswith("-1")


# -- jobs: termination -----------------------------------------------------------------------------


def test_cancel_on_kill_false_leaves_the_job_running_on_user_intent(job_spec, dp):
    dp.default_job_script = JobScript(run_seconds=None)
    attempt = AttemptProcess(_with(job_spec, cancel_on_kill=False)).start()
    wait_for(lambda: dp.counters["gets"] >= 3, what="polling to start")
    (job_spec.workdir / "server_state").write_text("failed")
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == "failed"
    assert "was left running" in outcome["error"]
    assert dp.counters["requests:CancelJob"] == 0
    assert dp.job_state(dp.jobs()[0].reference.job_id) == "RUNNING"


# -- jobs: API faults ------------------------------------------------------------------------------


def test_a_resource_exhausted_storm_honours_retry_info_and_completes(job_spec, dp):
    dp.inject("SubmitJob", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.3), times=2)
    dp.inject("GetJob", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.3), times=5)
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert dp.counters["jobs_created"] == 1
    gets = [at for operation, at in dp.requests if operation == "GetJob"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(gets[:6])]
    # Every RESOURCE_EXHAUSTED was waited out for its RetryInfo delay, not the 1 s exponential default.
    assert all(0.28 <= gap < 0.9 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"job": {"placement": {"cluster_name": "c"}}}, "gives Dataproc nothing to run"),
        ({"job": {"pyspark_job": {"main_python_file_uri": "gs://b/x.py"}}}, "must name a cluster_name"),
        ({"job": {**PYSPARK_JOB, "reference": {"job_id": "bad id!"}}}, "job.reference.job_id must be"),
        ({"request_id": "r" * 41}, "request_id must be 1-40 characters"),
        ({"job": {**PYSPARK_JOB, "no_such_field": 1}}, "Invalid Dataproc job"),
    ],
    ids=["no-job-type", "no-cluster", "bad-job-id", "long-request-id", "unknown-field"],
)
def test_an_invalid_job_fails_before_any_call(job_spec, dp, overrides, message):
    outcome = run_attempt(_with(job_spec, **overrides))

    assert outcome["outcome"] == "failed_no_retry", outcome
    assert message in outcome["error"]
    assert dp.requests == [], "no call reached Dataproc"
    assert _ledger(job_spec) is None


# -- batches ---------------------------------------------------------------------------------------


def test_a_batch_is_created_polled_and_returned_as_a_dict_with_its_link(batch_spec, dp):
    outcome = run_attempt(batch_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    [batch] = dp.batches()
    key = _key(batch_spec)
    batch_id = derive_batch_id(key, TASK_ID)
    assert batch.name == f"projects/{PROJECT}/locations/{REGION}/batches/{batch_id}"
    assert outcome["result"]["name"] == batch.name
    assert outcome["result"]["state"] == dataproc_v1.Batch.State.SUCCEEDED
    assert outcome["xcoms"] == {
        "dataproc_batch": {"project_id": PROJECT, "region": REGION, "batch_id": batch_id}
    }
    created, request_id = dp.created(batch_id)
    assert request_id == key
    assert created.labels[KEY_LABEL] == key_label(key)
    assert created.labels["airflow-task-id"] == "long-job"


def test_a_failed_batch_fails_the_task_with_its_message_and_driver_output(batch_spec, dp):
    dp.default_batch_script = BatchScript(
        run_seconds=0.3, final_state="FAILED", state_message="Job failed with message [ZeroDivisionError]"
    )
    outcome = run_attempt(batch_spec)

    assert outcome["outcome"] == "failed"
    [batch] = dp.batches()
    assert "FAILED: Job failed with message [ZeroDivisionError]" in outcome["error"]
    assert f"driver output: {batch.runtime_info.output_uri}" in outcome["error"]
    assert "driver logs: https://console.cloud.google.com/dataproc/batches/" in outcome["error"]


def test_batch_crash_between_create_and_persist_leaves_exactly_one_batch(batch_spec, dp):
    hold = dp.inject("CreateBatch", GrpcFault.hold_after_commit())
    first = AttemptProcess(batch_spec).start()
    wait_for(lambda: dp.counters["batches_created"] == 1, what="the batch to be created")
    first.signal(signal.SIGKILL)
    assert first.join() is None
    hold.release.set()

    second = run_attempt(batch_spec)

    assert second["outcome"] == "success", second["error"]
    assert dp.counters["batches_created"] == 1
    assert dp.counters["deduplicated"] == 1


def test_batch_deadline_exceeded_after_commit_is_retried_into_the_same_batch(batch_spec, dp):
    dp.inject("CreateBatch", GrpcFault.error_after_commit(grpc.StatusCode.DEADLINE_EXCEEDED))
    dp.forget_request_ids()  # and even without request_id memory, the batch id makes it one batch
    outcome = run_attempt(batch_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert dp.counters["requests:CreateBatch"] == 2
    assert dp.counters["batches_created"] == 1


def test_batch_sigkill_mid_poll_then_the_next_attempt_reconnects(batch_spec, dp):
    dp.default_batch_script = BatchScript(run_seconds=None)
    first = AttemptProcess(batch_spec).start()
    wait_for(lambda: dp.counters["gets"] >= 3, what="polling to start")
    first.signal(signal.SIGKILL)
    first.join()
    [batch] = dp.batches()
    dp.finish_batch(batch.name.rsplit("/", 1)[-1])

    second = run_attempt(batch_spec)

    assert second["outcome"] == "success", second["error"]
    assert second["result"]["name"] == batch.name
    assert dp.counters["requests:CreateBatch"] == 1


def test_batch_sigterm_mid_poll_checkpoints_with_zero_cancels(batch_spec, dp):
    dp.default_batch_script = BatchScript(run_seconds=None)
    first = AttemptProcess(batch_spec).start()
    wait_for(lambda: dp.counters["gets"] >= 3, what="polling to start")
    first.signal(signal.SIGTERM)
    outcome = first.join(timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert dp.counters["requests:CancelOperation"] == 0
    batch_id = dp.batches()[0].name.rsplit("/", 1)[-1]
    assert dp.batch_state(batch_id) == "RUNNING"


def test_batch_user_intent_cancels_it_exactly_once_through_its_operation(batch_spec, dp):
    dp.default_batch_script = BatchScript(run_seconds=None)
    attempt = AttemptProcess(batch_spec).start()
    wait_for(lambda: dp.counters["gets"] >= 3, what="polling to start")
    (batch_spec.workdir / "server_state").write_text("success")  # a person marked the task success
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=15)

    assert outcome is not None
    assert "stopped by the user" in outcome["error"]
    assert dp.counters["requests:CancelOperation"] == 1
    assert dp.batch_state(dp.batches()[0].name.rsplit("/", 1)[-1]) == "CANCELLED"


def test_batch_resource_exhausted_storm_backs_off_and_completes(batch_spec, dp):
    dp.inject("CreateBatch", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.2), times=3)
    dp.inject("GetBatch", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.2), times=3)
    outcome = run_attempt(batch_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert dp.counters["requests:CreateBatch"] == 4
    assert dp.counters["batches_created"] == 1


def test_a_batch_whose_resource_was_not_ready_is_recreated_under_the_same_id(batch_spec, dp):
    dp.default_batch_script = BatchScript(
        run_seconds=0.2, final_state="FAILED", state_message="The resource 'subnet' is not ready"
    )
    spec = _with(batch_spec, num_retries_if_resource_is_not_ready=1)
    dp.inject("DeleteBatch", GrpcFault.delay(0.5))  # time to make the re-created batch succeed
    attempt = AttemptProcess(spec).start()
    wait_for(lambda: dp.counters["requests:DeleteBatch"] == 1, what="the failed batch to be deleted")
    dp.default_batch_script = BatchScript(run_seconds=0.2)
    outcome = attempt.join(timeout=30)

    assert outcome is not None
    assert outcome["outcome"] == "success", outcome["error"]
    assert dp.counters["batches_created"] == 2
    [batch] = dp.batches()
    assert batch.name.endswith(derive_batch_id(_key(spec), TASK_ID)), "same batch id"


def test_batch_id_prefix_is_derived_from_the_key_so_a_resend_gets_the_same_batch(batch_spec, dp):
    spec = _with(batch_spec, batch_id_prefix="nightly")
    hold = dp.inject("CreateBatch", GrpcFault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: dp.counters["batches_created"] == 1, what="the batch to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()
    dp.forget_request_ids()

    second = run_attempt(spec)

    assert second["outcome"] == "success", second["error"]
    assert second["result"]["name"].endswith(prefixed_batch_id("nightly", _key(spec)))
    assert dp.counters["batches_created"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_id": "b-1", "batch_id_prefix": "p"}, "mutually exclusive"),
        ({"batch_id_prefix": "p", "request_id": "r"}, "mutually exclusive"),
        ({"batch_id": "Bad_Id"}, "batch_id must be 4-63 characters"),
        ({"batch_id_prefix": "x" * 60}, "does not make a valid batch id"),
        ({"batch": {"labels": {"a": "b"}}}, "gives Dataproc nothing to run"),
    ],
    ids=["id-and-prefix", "prefix-and-request-id", "bad-id", "long-prefix", "no-workload"],
)
def test_an_invalid_batch_fails_before_any_call(batch_spec, dp, overrides, message):
    outcome = run_attempt(_with(batch_spec, **overrides))

    assert outcome["outcome"] == "failed_no_retry", outcome
    assert message in outcome["error"]
    assert dp.requests == []


# -- ids derived from the key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id",
    ["long_job", "Nightly ETL (EU)", "0-starts-with-a-digit", "___", "x" * 250, "grp.sub_task.ÄÖÜ"],
)
@pytest.mark.parametrize("generation", [0, 7, 9_999_999])
def test_derived_ids_are_valid_for_dataproc_and_unique_per_generation(task_id, generation):
    nonce = "0123456789abcdef0123456789abcdef"
    key = f"{nonce}-{generation}"
    job_id, batch_id = derive_job_id(key, task_id), derive_batch_id(key, task_id)

    assert REQUEST_ID_PATTERN.match(key), "the key itself is a valid request_id"
    assert JOB_ID_PATTERN.match(job_id)
    assert len(job_id) <= 100
    assert BATCH_ID_PATTERN.match(batch_id)
    assert 4 <= len(batch_id) <= 63
    assert job_id.endswith(key)
    assert batch_id.endswith(key)
    assert derive_batch_id(f"{nonce}-{generation + 1}", task_id) != batch_id
    assert re.fullmatch(r"[a-z][a-z0-9-]*", key_label(key))
    assert len(key_label(key)) <= 63


def test_prefixed_batch_ids_are_stable_per_key_and_differ_across_keys():
    first, second = "a" * 32 + "-0", "a" * 32 + "-1"

    assert prefixed_batch_id("nightly", first) == prefixed_batch_id("nightly", first)
    assert prefixed_batch_id("nightly", first) != prefixed_batch_id("nightly", second)
    assert re.fullmatch(r"nightly-[0-9a-f]{8}", prefixed_batch_id("nightly", first))


# -- describe --------------------------------------------------------------------------------------

S = dataproc_v1.JobStatus.State


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (S.PENDING, RemoteStatus.PENDING),
        (S.SETUP_DONE, RemoteStatus.PENDING),
        (S.RUNNING, RemoteStatus.RUNNING),
        (S.ATTEMPT_FAILURE, RemoteStatus.RUNNING),
        (S.CANCEL_PENDING, RemoteStatus.RUNNING),
        (S.CANCEL_STARTED, RemoteStatus.RUNNING),
        (S.DONE, RemoteStatus.SUCCEEDED),
        (S.ERROR, RemoteStatus.FAILED),
        (S.CANCELLED, RemoteStatus.CANCELLED),
        (S.STATE_UNSPECIFIED, RemoteStatus.RUNNING),
    ],
)
def test_job_states_map_to_the_normalised_status(state, expected):
    job = dataproc_v1.Job(
        status={"state": state, "details": "Driver exited with code 1"},
        driver_output_resource_uri="gs://staging/driveroutput",
    )
    mapped = job_to_job_state(job, link="https://console/job")

    assert mapped.status is expected
    assert "https://console/job" in mapped.message
    shows_failure = expected.is_terminal or state == S.ATTEMPT_FAILURE
    assert ("Driver exited with code 1" in mapped.message) is shows_failure
    assert ("driver output: gs://staging/driveroutput" in mapped.message) is shows_failure


B = dataproc_v1.Batch.State


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (B.PENDING, RemoteStatus.PENDING),
        (B.RUNNING, RemoteStatus.RUNNING),
        (B.CANCELLING, RemoteStatus.RUNNING),
        (B.SUCCEEDED, RemoteStatus.SUCCEEDED),
        (B.FAILED, RemoteStatus.FAILED),
        (B.CANCELLED, RemoteStatus.CANCELLED),
        (B.STATE_UNSPECIFIED, RemoteStatus.FAILED),
    ],
)
def test_batch_states_map_to_the_normalised_status(state, expected):
    batch = dataproc_v1.Batch(state=state, state_message="oops", runtime_info={"output_uri": "gs://out"})
    mapped = batch_to_job_state(batch, link="https://console/batch")

    assert mapped.status is expected
    assert ("oops" in mapped.message) is expected.is_terminal
    assert "driver logs: https://console/batch" in mapped.message


def test_a_job_that_dataproc_no_longer_knows_is_not_found(dp, dp_server):
    operator = ResumableDataprocSubmitJobOperator(
        task_id="t", gcp_conn_id=CONN_ID, region=REGION, job=PYSPARK_JOB
    )
    state = operator.describe("no-such-job")

    assert state.status is RemoteStatus.NOT_FOUND
    assert "no job no-such-job" in state.message


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "kwargs"),
    [
        (ResumableDataprocSubmitJobOperator, {"job": PYSPARK_JOB}),
        (ResumableDataprocCreateBatchOperator, {"batch": PYSPARK_BATCH}),
    ],
)
def test_deferrable_true_defers_to_the_dataproc_triggers(operator, kwargs):
    task = operator(task_id="t", region=REGION, deferrable=True, **kwargs)

    assert task.deferrable is True
    expected = ResumableDataprocJobTrigger if "job" in kwargs else ResumableDataprocBatchTrigger
    assert task.trigger_class is expected


def test_polling_interval_seconds_paces_the_polls_and_must_be_positive():
    op = ResumableDataprocSubmitJobOperator(
        task_id="t", region=REGION, job=PYSPARK_JOB, polling_interval_seconds=7
    )
    assert op.poll_interval == 7

    with pytest.raises(ValueError, match="polling_interval_seconds"):
        ResumableDataprocSubmitJobOperator(
            task_id="t", region=REGION, job=PYSPARK_JOB, polling_interval_seconds=0
        )


@pytest.mark.parametrize(
    ("operator", "kwargs"),
    [
        (ResumableDataprocSubmitJobOperator, {"job": PYSPARK_JOB}),
        (ResumableDataprocCreateBatchOperator, {"batch": PYSPARK_BATCH}),
    ],
)
def test_the_hook_reaches_the_connection_region_and_project_the_operator_was_given(operator, kwargs):
    task = operator(
        task_id="t",
        region=REGION,
        project_id="other-project",
        gcp_conn_id="gcp_other",
        impersonation_chain=["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"],
        timeout=12.5,
        metadata=[("x-goog-user-project", "billing")],
        **kwargs,
    )

    assert task.hook_params() == {
        "gcp_conn_id": "gcp_other",
        "impersonation_chain": ["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"],
        "region": REGION,
        "project_id": "other-project",
        "timeout": 12.5,
        "metadata": [["x-goog-user-project", "billing"]],
    }


# -- OpenLineage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "switch", ["openlineage_inject_parent_job_info", "openlineage_inject_transport_info"]
)
def test_openlineage_injection_without_the_google_provider_submits_the_job_and_batch_as_given(
    job_spec, batch_spec, dp, switch, capfd
):
    """Upstream injects through the Google provider, which this venv does not have: say so, go on."""
    job_outcome = run_attempt(_with(job_spec, **{switch: True}))
    batch_outcome = run_attempt(_with(_fresh(batch_spec, "batch"), **{switch: True}))

    assert job_outcome["outcome"] == batch_outcome["outcome"] == "success"
    [job], [batch] = dp.jobs(), dp.batches()
    assert (
        job.pyspark_job.main_python_file_uri
        == batch.pyspark_batch.main_python_file_uri
        == "gs://bucket/etl.py"
    )
    assert not dict(job.pyspark_job.properties)
    assert not dict(batch.runtime_config.properties)
    output = capfd.readouterr()
    warned = re.findall(
        r"OpenLineage injection was asked for, but it needs apache-airflow-providers-google, which is not "
        r"installed: the (\w+) is submitted without it",
        output.out + output.err,
    )
    assert warned == ["job", "batch"]
