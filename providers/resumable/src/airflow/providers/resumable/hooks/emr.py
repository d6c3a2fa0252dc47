# Licensed under the Apache License, Version 2.0.
"""
What goes over the wire to EMR and EMR Serverless for the resumable operators: one file.

**What it is for.** :class:`EmrStepsHook` and :class:`EmrServerlessJobRunHook` own every AWS call
the resumable EMR operators (and later their triggers, or a sweeper cancelling a checkpointed
task's job) make: submit under the ledger's key, find by key, describe as a
:class:`~airflow.providers.resumable.status.JobState`, cancel within a time budget. The key
encoding (the step-Name tag and the ledger's ``"<cluster>:<step>,<step>"`` id), the state
translation and the classification of botocore errors are pure functions here.

**How it works.** Clients come from the amazon provider's own ``EmrHook`` / ``EmrServerlessHook``
built from ``aws_conn_id``, ``region_name``, ``verify`` and ``botocore_config``, exactly as
``AwsBaseOperator`` builds them, with botocore's own retries off: the caller's backoff retries
instead, wakes on a stop request, and never re-sends ``AddJobFlowSteps`` without first looking for
the steps a lost response may have created.

**What it does not do.** Validate steps or arguments (the operators do), nor wait.

**Known limitation.** ``AddJobFlowSteps`` has no client token: exactly-once for steps rests on the
tag in each step's Name and :meth:`EmrStepsHook.find_steps`. The asynchronous ``a_describe`` runs
the synchronous call in a thread (``asyncio.to_thread``): the amazon provider's native async hooks
need ``aiobotocore``, which this provider does not install, and one ``ListSteps`` call in a thread
holds no event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from airflow.sdk.definitions._internal.logging_mixin import LoggingMixin
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.amazon.aws.hooks.emr import EmrHook, EmrServerlessHook
    from airflow.providers.amazon.aws.links.emr import get_log_uri
    from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
    from botocore.config import Config
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
except ImportError as err:
    raise missing_extra("amazon", err) from err

from airflow.providers.resumable.hooks.errors import is_transient_http
from airflow.providers.resumable.status import JobState, RemoteStatus

_NO_BOTOCORE_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
_SERVER_ERROR_CODES = frozenset(
    {"InternalServerError", "InternalServerException", "InternalFailure", "ServiceUnavailable"}
)
_NO_SUCH_CLUSTER = ("InvalidRequestException", "ValidationException")

# -- pure: errors ----------------------------------------------------------------------------------


def error_code(error: ClientError) -> str:
    """The AWS error code of a botocore ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def is_transient(error: BaseException) -> bool:
    """Connection errors, lost responses, timeouts, throttling and 5xx; what else HTTP says is transient."""
    if isinstance(error, (BotocoreConnectionError, HTTPClientError)):
        return True  # connection refused or reset, a lost response, a timeout
    if isinstance(error, ClientError):
        code = error_code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code in _THROTTLING_CODES or code in _SERVER_ERROR_CODES or status == 429 or status >= 500
    return is_transient_http(error)


# -- pure: EMR steps, the key in each step's Name ----------------------------------------------------

ACTIONS_ON_FAILURE = ("TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE")
_STOPS_LATER_STEPS = frozenset({"TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT"})
_ACTIVE_STEP_STATES = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})
_FAILED_STEP_STATES = frozenset({"FAILED", "INTERRUPTED"})
_GONE_CLUSTER_STATES = frozenset({"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"})
MAX_STEP_NAME_LENGTH = 256
"""EMR refuses a step Name longer than this; the key tag counts."""
LIST_STEPS_MAX_IDS = 10
"""``ListSteps`` filters by at most ten ``StepIds`` per call."""
SIGV4_MAX_CLOCK_SKEW = timedelta(minutes=15)
"""AWS refuses a request whose SigV4 signature time is further than this from its own clock
(``SignatureDoesNotMatch``/``RequestTimeTooSkewed``), and botocore does not correct a signer's clock."""
STEP_LISTING_CLOCK_SKEW = SIGV4_MAX_CLOCK_SKEW + timedelta(minutes=5)
"""How far before the ledger's intent time ``find_steps`` still looks at steps.

The intent time comes from the clock of the worker that wrote it; EMR stamps a step's creation time
with its own. A worker whose ``AddJobFlowSteps`` was accepted signed it within
:data:`SIGV4_MAX_CLOCK_SKEW` of AWS's clock, and wrote the intent just before, so its steps cannot be
older than the intent time less that much. The extra 5 minutes cover the request's own latency and
retries. A worker further off cannot have added steps at all."""
_TAG = re.compile(r" \(resumable (?P<key>[0-9a-f]{32}-\d+) (?P<index>\d+)/(?P<count>\d+)\)$")


def tag_step_name(name: str, key: str, index: int, count: int) -> str:
    """The Name a step is added under: the user's name, then ``(resumable <key> <i>/<n>)``."""
    return f"{name} (resumable {key} {index}/{count})"


@dataclass(frozen=True)
class StepTag:
    """What :func:`tag_step_name` wrote into a step's Name: the key, and the step's place in its request."""

    key: str
    index: int
    count: int

    @classmethod
    def of(cls, name: str) -> StepTag | None:
        """The tag in a step Name, or ``None`` for a step these operators did not add."""
        match = _TAG.search(name)
        return cls(match["key"], int(match["index"]), int(match["count"])) if match else None


@dataclass(frozen=True)
class StepIds:
    """The ledger's external id of one task's steps: ``"<cluster id>:<step id>,<step id>,..."``."""

    cluster_id: str
    step_ids: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.cluster_id}:{','.join(self.step_ids)}"

    @classmethod
    def parse(cls, external_id: str) -> StepIds:
        """Read an external id back; a malformed one fails the task (it is not this operator's)."""
        cluster_id, _, steps = external_id.partition(":")
        if not cluster_id or not steps:
            raise AirflowFailException(f"Not an EMR steps id recorded by this operator: {external_id!r}")
        return cls(cluster_id, tuple(steps.split(",")))


def emr_submissions(cluster_id: str, steps: Iterable[Mapping[str, Any]], nonce: str) -> list[str]:
    """
    The ``AddJobFlowSteps`` submissions of ledger ``nonce`` among ``steps``, as ledger external ids.

    EMR keeps no request id, so submissions are told apart by the tag written into each step's
    Name: the n-th step tagged with a key and an index belongs to the n-th submission under that
    key (a duplicate submission repeats every index).

    :param cluster_id: the cluster the steps are on.
    :param steps: ``ListSteps`` entries, oldest first (the fake) or newest first (EMR): the steps of
        one submission are put back in their tagged order either way, so an id matches the ledger's.
    :param nonce: the ledger's nonce.
    """
    submissions: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    seen: dict[tuple[str, int], int] = defaultdict(int)
    for step in steps:
        tag = StepTag.of(str(step.get("Name", "")))
        if tag is None or not tag.key.startswith(nonce):
            continue
        occurrence = seen[(tag.key, tag.index)]
        seen[(tag.key, tag.index)] += 1
        submissions[(tag.key, occurrence)][tag.index] = str(step["Id"])
    return [
        str(StepIds(cluster_id, tuple(ids[index] for index in sorted(ids)))) for ids in submissions.values()
    ]


def steps_newest_first(
    client: Any, cluster_id: str, *, since: datetime | None
) -> Iterator[Mapping[str, Any]]:
    """
    Page ``ListSteps`` (newest first, as EMR lists them) and stop at the first step older than ``since``.

    :param client: a boto3 EMR client.
    :param cluster_id: the cluster.
    :param since: the oldest creation time of interest, less :data:`STEP_LISTING_CLOCK_SKEW` (the
        clock ``since`` was read from may run ahead of EMR's); ``None`` lists every step.
    """
    oldest = since - STEP_LISTING_CLOCK_SKEW if since is not None else None
    for page in client.get_paginator("list_steps").paginate(ClusterId=cluster_id):
        for step in page["Steps"]:
            created = (step["Status"].get("Timeline") or {}).get("CreationDateTime")
            if oldest is not None and isinstance(created, datetime) and _aware(created) < oldest:
                return  # newest first: everything after this is older still
            yield step


def steps_to_job_state(steps: Sequence[Mapping[str, Any]]) -> JobState:
    """
    Aggregate the steps one task added into one status, honouring each step's ``ActionOnFailure``.

    - A failed (or interrupted) step whose ``ActionOnFailure`` stops the steps after it
      (``CANCEL_AND_WAIT``, ``TERMINATE_CLUSTER``, ``TERMINATE_JOB_FLOW``) fails the whole at once:
      EMR cancels the rest, so there is nothing left to wait for.
    - Otherwise, while any step is pending or running the whole is running (pending if none has
      started): a step failed with ``CONTINUE`` lets the later ones run, and the task waits for them
      so a retry never runs beside them.
    - Once every step has ended: any failed -> ``FAILED``; else any cancelled -> ``CANCELLED``; else
      all completed -> ``SUCCEEDED``.

    The message names each failed or cancelled step with its reason, message and log file.

    :param steps: ``StepSummary`` objects (``ListSteps``) or ``Step`` objects (``DescribeStep``), in
        the order they were added.
    """
    states = [str(step["Status"]["State"]) for step in steps]
    failed = [step for step in steps if step["Status"]["State"] in _FAILED_STEP_STATES]
    cancelled = [step for step in steps if step["Status"]["State"] == "CANCELLED"]
    stopping = any(step.get("ActionOnFailure", "TERMINATE_CLUSTER") in _STOPS_LATER_STEPS for step in failed)
    raw = ",".join(states)
    if not stopping and any(state in _ACTIVE_STEP_STATES for state in states):
        started = any(state in ("RUNNING", "CANCEL_PENDING") for state in states)
        return JobState(RemoteStatus.RUNNING if started else RemoteStatus.PENDING, raw)
    if failed:
        status = RemoteStatus.FAILED
    elif cancelled:
        status = RemoteStatus.CANCELLED
    else:
        status = RemoteStatus.SUCCEEDED
    message = "; ".join(_explain_step(step) for step in (*failed, *cancelled))
    return JobState(status, raw, message)


def _explain_step(step: Mapping[str, Any]) -> str:
    status = step["Status"]
    text = f"step {step.get('Id')} ({step.get('Name')}) {status['State']}"
    if step.get("ActionOnFailure"):
        text += f" [ActionOnFailure={step['ActionOnFailure']}]"
    details = status.get("FailureDetails") or {}
    parts = [
        f"reason: {details['Reason']}" if details.get("Reason") else "",
        f"message: {details['Message']}" if details.get("Message") else "",
        f"log file: {details['LogFile']}" if details.get("LogFile") else "",
    ]
    change = (status.get("StateChangeReason") or {}).get("Message")
    if change and not details:
        parts.append(str(change))
    explained = ", ".join(p for p in parts if p)
    return f"{text}: {explained}" if explained else text


# -- pure: EMR Serverless job runs ---------------------------------------------------------------------

_JOB_RUN_PENDING = frozenset({"SUBMITTED", "PENDING", "SCHEDULED", "QUEUED"})
_JOB_RUN_RUNNING = frozenset({"RUNNING", "CANCELLING"})
MAX_CLIENT_TOKEN_LENGTH = 64
"""EMR Serverless refuses a ``clientToken`` longer than this."""


def job_run_to_job_state(job_run: Mapping[str, Any]) -> JobState:
    """
    Translate a ``GetJobRun`` ``jobRun`` into the normalised status.

    ``SUBMITTED``/``PENDING``/``SCHEDULED``/``QUEUED`` are pending, ``RUNNING``/``CANCELLING``
    running, ``SUCCESS`` succeeded, ``FAILED`` failed, ``CANCELLED`` cancelled. An unknown state is
    treated as running and said so. The message carries ``stateDetails``.

    :param job_run: the ``jobRun`` object of ``GetJobRun``.
    """
    state = str(job_run.get("state") or "")
    details = str(job_run.get("stateDetails") or "")
    if state in _JOB_RUN_PENDING:
        return JobState(RemoteStatus.PENDING, state)
    if state in _JOB_RUN_RUNNING:
        return JobState(RemoteStatus.RUNNING, state)
    terminal = {
        "SUCCESS": RemoteStatus.SUCCEEDED,
        "FAILED": RemoteStatus.FAILED,
        "CANCELLED": RemoteStatus.CANCELLED,
    }
    if state in terminal:
        return JobState(terminal[state], state, details)
    return JobState(RemoteStatus.RUNNING, f"{state} (unknown job run state, treated as running)")


# -- the hooks ------------------------------------------------------------------------------------------


AWS_ARGUMENTS = ("aws_conn_id", "region_name", "verify", "botocore_config")
"""What ``AwsBaseOperator`` and these hooks take to reach AWS, by name."""


class _AwsClientHook(LoggingMixin):
    """The amazon provider's hook and a boto3 client with botocore's retries off."""

    _hook_class: type[EmrHook] | type[EmrServerlessHook]

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def params(self) -> dict[str, Any]:
        """The arguments that rebuild this hook elsewhere (JSON-serialisable)."""
        return {name: getattr(self, name) for name in AWS_ARGUMENTS}

    @cached_property
    def aws(self) -> Any:
        """The amazon provider's hook, built exactly as ``AwsBaseOperator`` builds it."""
        return self._hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    @property
    def conn_region_name(self) -> str:
        """The connection's region (what upstream's links are built with)."""
        return str(self.aws.conn_region_name)

    @property
    def conn_partition(self) -> str:
        """The connection's AWS partition (what upstream's links are built with)."""
        return str(self.aws.conn_partition)

    @cached_property
    def client(self) -> Any:
        """The hook's boto3 client with botocore's retries off: the caller's backoff retries."""
        config = self.aws.config or Config()
        return self.aws.get_client_type(
            region_name=self.aws.region_name, config=config.merge(_NO_BOTOCORE_RETRIES)
        )

    def client_for(self, timeout: float | None) -> Any:
        """:attr:`client`, or one whose calls give up after ``timeout`` seconds (botocore's default is 60)."""
        if timeout is None:
            return self.client
        config = (self.aws.config or Config()).merge(_NO_BOTOCORE_RETRIES)
        return self.aws.get_client_type(
            region_name=self.aws.region_name,
            config=config.merge(Config(connect_timeout=timeout, read_timeout=timeout)),
        )

    is_transient = staticmethod(is_transient)

    @staticmethod
    def retry_after(error: BaseException) -> float | None:
        """AWS sends no ``Retry-After``: always ``None`` (the backoff's own wait applies)."""
        return None

    def describe(self, external_id: str) -> JobState:
        raise NotImplementedError

    async def a_describe(self, external_id: str) -> JobState:
        """:meth:`describe` in a worker thread (no ``aiobotocore`` here; see the module's limitation)."""
        return await asyncio.to_thread(self.describe, external_id)


class EmrStepsHook(_AwsClientHook):
    """
    Steps on an EMR cluster, added once under a key written into their Names.

    :param aws_conn_id: the AWS connection (``None``: boto3's default credentials).
    :param region_name: the AWS region.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments; its ``retries`` are replaced (see above).
    """

    _hook_class = EmrHook

    def find_cluster(self, name: str, states: Sequence[str]) -> str:
        """The one cluster named ``name`` in ``states``; none or several fail the task."""
        pages = self.client.get_paginator("list_clusters").paginate(ClusterStates=list(states))
        matches = [c["Id"] for page in pages for c in page["Clusters"] if c["Name"] == name]
        in_states = f" in states {list(states)}" if states else ""
        if not matches:
            raise AirflowFailException(f"No cluster found for name: {name}{in_states}; no steps added")
        if len(matches) > 1:
            raise AirflowFailException(
                f"More than one cluster found for name {name}{in_states}: {sorted(matches)}; "
                "no steps added. Pass job_flow_id, or narrow cluster_states."
            )
        return str(matches[0])

    def check_cluster_accepts_steps(self, cluster_id: str) -> None:
        """Fail the task if the cluster is unknown or terminating: no steps could run there."""
        try:
            cluster = self.client.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except ClientError as err:
            if error_code(err) in _NO_SUCH_CLUSTER:
                raise AirflowFailException(f"EMR has no cluster {cluster_id}; no steps added: {err}") from err
            raise
        state = cluster["Status"]["State"]
        if state in _GONE_CLUSTER_STATES:
            reason = (cluster["Status"].get("StateChangeReason") or {}).get("Message", "")
            raise AirflowFailException(
                f"EMR cluster {cluster_id} is {state} and takes no more steps; no steps added"
                + (f" ({reason})" if reason else "")
            )

    def add_steps(
        self,
        cluster_id: str,
        steps: Sequence[Mapping[str, Any]],
        idempotency_key: str,
        *,
        execution_role_arn: str | None = None,
    ) -> str:
        """``AddJobFlowSteps`` with each Name tagged with the key; returns the ledger's external id."""
        count = len(steps)
        tagged = [
            {**step, "Name": tag_step_name(step["Name"], idempotency_key, i, count)}
            for i, step in enumerate(steps, start=1)
        ]
        extra = {"ExecutionRoleArn": execution_role_arn} if execution_role_arn else {}
        response = self.client.add_job_flow_steps(JobFlowId=cluster_id, Steps=tagged, **extra)
        return str(StepIds(cluster_id, tuple(response["StepIds"])))

    def find_steps(self, cluster_id: str, idempotency_key: str, *, since: datetime | None) -> str | None:
        """
        The steps an earlier ``AddJobFlowSteps`` under the key added, as an external id, or ``None``.

        Pages ``ListSteps`` newest first back to ``since`` (the ledger's intent time).

        :raises AirflowException: only some of the tagged steps were listed (never adopt a part).
        """
        found: dict[int, str] = {}
        expected: int | None = None
        for step in steps_newest_first(self.client, cluster_id, since=since):
            tag = StepTag.of(str(step.get("Name", "")))
            if tag and tag.key == idempotency_key:
                found[tag.index] = str(step["Id"])
                expected = tag.count
        if not found:
            return None
        if len(found) != expected:
            # AddJobFlowSteps adds all of a request's steps or none; a partial set means they were not all listed.
            raise AirflowException(
                f"Found {len(found)} of {expected} steps tagged with key {idempotency_key} on {cluster_id}; "
                "refusing to add them again or to adopt a partial set"
            )
        return str(StepIds(cluster_id, tuple(found[i] for i in sorted(found))))

    def describe(self, external_id: str) -> JobState:
        """The steps' aggregate status (see :func:`steps_to_job_state`); ``NOT_FOUND`` once unlisted."""
        ids = StepIds.parse(external_id)
        try:
            listed = {step["Id"]: step for step in self._list_steps(ids)}
        except ClientError as err:
            if error_code(err) in _NO_SUCH_CLUSTER:
                return JobState.not_found(f"EMR has no cluster {ids.cluster_id}: {err}")
            raise
        missing = [step_id for step_id in ids.step_ids if step_id not in listed]
        if missing:
            return JobState.not_found(f"EMR no longer lists steps {missing} on {ids.cluster_id}")
        return steps_to_job_state([listed[step_id] for step_id in ids.step_ids])

    def _list_steps(self, ids: StepIds) -> Iterable[Mapping[str, Any]]:
        for start in range(0, len(ids.step_ids), LIST_STEPS_MAX_IDS):
            chunk = list(ids.step_ids[start : start + LIST_STEPS_MAX_IDS])
            for page in self.client.get_paginator("list_steps").paginate(
                ClusterId=ids.cluster_id, StepIds=chunk
            ):
                yield from page["Steps"]

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        """One ``CancelSteps`` call for all the steps; steps that have ended are reported, not raised."""
        ids = StepIds.parse(external_id)
        try:
            response = self.client_for(timeout).cancel_steps(
                ClusterId=ids.cluster_id, StepIds=list(ids.step_ids), StepCancellationOption="SEND_INTERRUPT"
            )
        except ClientError as err:
            if error_code(err) not in _NO_SUCH_CLUSTER:
                raise
            self.log.info("Cluster %s no longer takes requests; nothing to cancel: %s", ids.cluster_id, err)
            return
        for info in response.get("CancelStepsInfoList", []):
            self.log.info(
                "CancelSteps %s: %s %s", info.get("StepId"), info.get("Status"), info.get("Reason", "")
            )

    def log_uri(self, cluster_id: str) -> str | None:
        """The cluster's log URI, for the "EMR Cluster Logs" link."""
        return get_log_uri(emr_client=self.client, job_flow_id=cluster_id)


class EmrServerlessJobRunHook(_AwsClientHook):
    """
    Job runs of one EMR Serverless application, started once under a ``clientToken``.

    :param application_id: the application.
    :param aws_conn_id: the AWS connection.
    :param region_name: the AWS region.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments; its ``retries`` are replaced.
    """

    _hook_class = EmrServerlessHook

    def __init__(self, *, application_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.application_id = application_id

    def params(self) -> dict[str, Any]:
        return {**super().params(), "application_id": self.application_id}

    def ensure_application_started(self, *, waiter_max_attempts: int, waiter_delay: int) -> None:
        """Start the application unless it is ``CREATED`` or ``STARTED``, and wait for it, as upstream."""
        state = self.client.get_application(applicationId=self.application_id)["application"]["state"]
        if state in EmrServerlessHook.APPLICATION_SUCCESS_STATES:
            return
        self.log.info("Application state is %s; starting application %s", state, self.application_id)
        self.client.start_application(applicationId=self.application_id)
        wait(
            waiter=self.aws.get_waiter("serverless_app_started"),
            waiter_max_attempts=waiter_max_attempts,
            waiter_delay=waiter_delay,
            args={"applicationId": self.application_id},
            failure_message="Serverless Application failed to start",
            status_message="Serverless Application status is",
            status_args=["application.state", "application.stateDetails"],
        )

    def start_job_run(self, args: Mapping[str, Any], *, name: str, client_token: str) -> str:
        """``StartJobRun`` under ``client_token`` (EMR Serverless deduplicates it); the job run id."""
        response = self.client.start_job_run(clientToken=client_token, name=name, **args)
        return str(response["jobRunId"])

    def describe(self, external_id: str) -> JobState:
        """The job run's normalised status; ``NOT_FOUND`` if the application has no such run."""
        try:
            job_run = self.client.get_job_run(applicationId=self.application_id, jobRunId=external_id)[
                "jobRun"
            ]
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return JobState.not_found(f"EMR Serverless has no job run {external_id}")
            raise
        return job_run_to_job_state(job_run)

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        """``CancelJobRun``; a job run that has ended or is gone is nothing to cancel."""
        try:
            self.client_for(timeout).cancel_job_run(applicationId=self.application_id, jobRunId=external_id)
        except ClientError as err:
            if error_code(err) not in ("ResourceNotFoundException", "ValidationException"):
                raise
            self.log.info("Job run %s cannot be cancelled (%s); nothing to do", external_id, err)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
