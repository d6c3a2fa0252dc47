# Licensed under the Apache License, Version 2.0.
"""
Resumable drop-in replacements for the amazon provider's ``EmrAddStepsOperator`` and
``EmrServerlessStartJobOperator``.

Same constructor arguments, template fields, return values (XCom ``return_value``), extra XComs and
links as the pinned upstream operators. Every AWS call goes through the amazon provider's own hooks
(``EmrHook``, ``EmrServerlessHook``) built from ``aws_conn_id``, ``region_name``, ``verify`` and
``botocore_config``, so a connection (keys, role assumption, ``endpoint_url`` in its extras) behaves
exactly as it does for the operators being replaced.

What differs is what happens when things go wrong: the steps or job run are started exactly once
(see each operator for how), a worker shutdown leaves them running and checkpoints the task, and
the next attempt reconnects to them instead of starting more.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook, EmrServerlessHook
from airflow.providers.amazon.aws.links.emr import EmrClusterLink, EmrLogsLink, get_log_uri
from airflow.providers.amazon.aws.operators import emr as upstream
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.amazon.version_compat import NOTSET, ArgNotSet
from airflow.providers.common.compat.openlineage.utils.spark import (
    inject_parent_job_information_into_emr_serverless_properties,
    inject_transport_information_into_emr_serverless_properties,
)
from airflow.providers.common.compat.sdk import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.status import JobState, RemoteStatus

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

_OL_PARENT_DEFAULT = conf.getboolean("openlineage", "spark_inject_parent_job_info", fallback=False)
_OL_TRANSPORT_DEFAULT = conf.getboolean("openlineage", "spark_inject_transport_info", fallback=False)

_NO_BOTOCORE_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
"""Our own backoff retries every call instead: it wakes on a stop request, and it never re-sends
``AddJobFlowSteps`` without first looking for the steps a lost response may have created."""

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

# -- EMR steps ---------------------------------------------------------------------------------------

ACTIONS_ON_FAILURE = ("TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE")
_STOPS_LATER_STEPS = frozenset({"TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT"})
_STEP_KEYS = frozenset({"Name", "ActionOnFailure", "HadoopJarStep", "StepMonitoringConfiguration"})
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
"""How far before the ledger's intent time ``find_existing`` still looks at steps.

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


@dataclass(frozen=True)
class StepIds:
    """The ledger's external id of one task's steps: ``"<cluster id>:<step id>,<step id>,..."``."""

    cluster_id: str
    step_ids: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.cluster_id}:{','.join(self.step_ids)}"

    @classmethod
    def parse(cls, external_id: str) -> StepIds:
        cluster_id, _, steps = external_id.partition(":")
        if not cluster_id or not steps:
            raise AirflowFailException(f"Not an EMR steps id recorded by this operator: {external_id!r}")
        return cls(cluster_id, tuple(steps.split(",")))


# -- the shared AWS plumbing ----------------------------------------------------------------------


class _ResumableAwsOperator(ResumableSubmitOperator):
    """What both EMR operators share: the amazon provider's hook, botocore errors, the waiter budget."""

    _hook_class: type[EmrHook] | type[EmrServerlessHook]

    def __init__(
        self,
        *,
        aws_conn_id: str | None,
        region_name: str | None,
        verify: bool | str | None,
        botocore_config: dict[str, Any] | None,
        wait_for_completion: bool,
        waiter_delay: int,
        waiter_max_attempts: int,
        deferrable: bool,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poll_interval", waiter_delay)
        super().__init__(deferrable=deferrable, **kwargs)
        if waiter_max_attempts < 1:
            raise AirflowException(f"waiter_max_attempts must be at least 1, got {waiter_max_attempts}")
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self._polls_left: int | None = None

    @cached_property
    def hook(self) -> Any:
        """The amazon provider's hook, built exactly as ``AwsBaseOperator`` builds it."""
        return self._hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    @cached_property
    def client(self) -> Any:
        """The hook's boto3 client with botocore's retries off: :attr:`cloud_call_backoff` retries."""
        config = self.hook.config or Config()
        return self.hook.get_client_type(
            region_name=self.hook.region_name, config=config.merge(_NO_BOTOCORE_RETRIES)
        )

    def _client_for(self, timeout: float | None) -> Any:
        """:attr:`client`, or one whose calls give up after ``timeout`` seconds (botocore's default is 60)."""
        if timeout is None:
            return self.client
        config = (self.hook.config or Config()).merge(_NO_BOTOCORE_RETRIES)
        return self.hook.get_client_type(
            region_name=self.hook.region_name,
            config=config.merge(Config(connect_timeout=timeout, read_timeout=timeout)),
        )

    # -- errors -----------------------------------------------------------------------------

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, (BotocoreConnectionError, HTTPClientError)):
            return True  # connection refused or reset, a lost response, a timeout
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return code in _THROTTLING_CODES or code in _SERVER_ERROR_CODES or status == 429 or status >= 500
        return super().is_transient(error)

    @staticmethod
    def _error_code(error: ClientError) -> str:
        return str(error.response.get("Error", {}).get("Code", ""))

    # -- polling budget: upstream's waiter_max_attempts -------------------------------------------

    def describe(self, external_id: str) -> JobState:
        state = self._describe(external_id)
        if self._polls_left is not None and state.status.is_active:
            self._polls_left -= 1
            if self._polls_left <= 0:
                self._on_waiter_exhausted(external_id)
                raise AirflowException(
                    f"Waiter error: max attempts reached: {self.job_noun} {external_id} is still {state} "
                    f"after {self.waiter_max_attempts} polls {self.waiter_delay}s apart "
                    "(waiter_max_attempts x waiter_delay)"
                )
        return state

    def _describe(self, external_id: str) -> JobState:
        raise NotImplementedError

    def _on_waiter_exhausted(self, external_id: str) -> None:
        """What upstream does when its waiter gives up; by default, nothing."""

    def _start_waiter_budget(self) -> None:
        # Per attempt, as upstream's waiter: a resumed attempt polls with a fresh budget.
        self._polls_left = self.waiter_max_attempts

    def execute(self, context: Context) -> Any:
        value = super().execute(context)
        # Upstream returns the ids whether or not it waited; the base returns nothing when not waiting.
        return value if self.wait_for_completion else self._ids_to_return()

    def _ids_to_return(self) -> Any:
        raise NotImplementedError


# -- ResumableEmrAddStepsOperator --------------------------------------------------------------------


@dataclass(frozen=True)
class _StepsSubmission:
    steps: list[dict[str, Any]]


class ResumableEmrAddStepsOperator(_ResumableAwsOperator):
    """
    Add steps to a running EMR cluster exactly once, and survive the worker dying.

    A drop-in replacement for the amazon provider's ``EmrAddStepsOperator``: the same arguments with
    the same meaning, the same template fields, the step ids as the return value, the
    ``job_flow_id`` XCom and the "EMR Cluster" / "EMR Cluster Logs" links. What changes is what
    happens when things go wrong:

    - **Exactly once, without server-side idempotency.** ``AddJobFlowSteps`` has no client token, so
      each step's ``Name`` carries this task instance's ledger key:
      ``"<your name> (resumable <key> <i>/<n>)"``. The key is written to the ledger *before* the
      request. Whenever a request may be a repeat (an earlier attempt died mid-request, or a response
      was lost and is being retried), the operator first pages ``ListSteps`` newest first, stopping
      at steps older than the ledger's intent time, and adopts the steps carrying the key instead of
      adding them again. botocore's own retries are off so that a lost response is never re-sent
      blind.
    - **Worker shutdown** leaves the steps running; the task checkpoints and the next attempt
      reconnects to the same step ids. **User intent** (the task marked failed or success while
      running) cancels them with one ``CancelSteps`` call, as the stock operator's kill would.
    - **Bad input fails before anything is added:** malformed steps (at parse of the rendered
      value), an unknown or terminated cluster, a ``job_flow_name`` matching no cluster or several.

    **Status of several steps.** Any failed or cancelled step makes the task fail, with the
    step's failure reason, message and log file; all completed is success. A step failed with
    ``ActionOnFailure=CONTINUE`` lets the steps after it run, and the task waits for them before
    failing, so that a retry never runs beside them (see :func:`steps_to_job_state`).

    **Limits.** Steps added by hand with a Name that imitates the tag would be adopted. Steps older
    than the intent time minus :data:`STEP_LISTING_CLOCK_SKEW` are not looked at. The tag makes
    names up to 62 characters longer (EMR allows 256 in all).

    :param job_flow_id: the cluster to add the steps to; exclusive with ``job_flow_name``. (templated)
    :param job_flow_name: the cluster's name, looked up among clusters in ``cluster_states`` when the
        steps are added; exactly one must match. (templated)
    :param cluster_states: the states a cluster found by ``job_flow_name`` may be in. (templated)
    :param steps: boto3-style steps, or a string of them (a ``.json`` file is rendered into one), as
        upstream: parsed with ``ast.literal_eval``, or as JSON. (templated)
    :param wait_for_completion: wait for every step to end (default ``False``, as upstream); with
        ``False`` the task ends once the steps are added.
    :param waiter_delay: seconds between status polls (``poll_interval`` unless that is given).
    :param waiter_max_attempts: the polls one attempt makes before giving up with upstream's
        "Waiter error: max attempts reached"; the steps are left running, as upstream leaves them.
    :param execution_role_arn: the runtime role for the steps (``ExecutionRoleArn``). (templated)
    :param aws_conn_id: the AWS connection, resolved by the amazon provider's hook (``None``: boto3's
        default credentials). An ``endpoint_url`` in its extras points every call elsewhere.
    :param region_name: the AWS region; the connection's or boto3's default if not given.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments for the client. Its ``retries`` are
        replaced by this operator's own backoff, which wakes on a stop request and never re-sends a
        step submission blind.
    :param deferrable: not supported: ``True`` raises when the DAG is parsed, whatever
        ``[operators] default_deferrable`` says.
    :param openlineage_inject_parent_job_info: inject the OpenLineage parent-job information into
        Spark steps, as upstream does. Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments (``do_xcom_push`` pushes ``job_flow_id`` and the links).
    """

    ledger_kind = "emr.add_steps"
    job_noun = "steps"
    _hook_class = EmrHook
    template_fields: Sequence[str] = upstream.EmrAddStepsOperator.template_fields
    template_ext: Sequence[str] = upstream.EmrAddStepsOperator.template_ext
    template_fields_renderers = upstream.EmrAddStepsOperator.template_fields_renderers
    ui_color = upstream.EmrAddStepsOperator.ui_color
    operator_extra_links = (EmrClusterLink(), EmrLogsLink())

    def __init__(
        self,
        *,
        job_flow_id: str | None = None,
        job_flow_name: str | None = None,
        cluster_states: list[str] | None = None,
        steps: list[dict[str, Any]] | str | None = None,
        wait_for_completion: bool = False,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 60,
        execution_role_arn: str | None = None,
        deferrable: bool = False,
        openlineage_inject_parent_job_info: bool = _OL_PARENT_DEFAULT,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if (job_flow_id is None) == (job_flow_name is None):
            raise AirflowException("Exactly one of job_flow_id or job_flow_name must be specified.")
        super().__init__(
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
            wait_for_completion=wait_for_completion,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            deferrable=deferrable,
            **kwargs,
        )
        self.job_flow_id = job_flow_id
        self.job_flow_name = job_flow_name
        self.cluster_states = cluster_states or []
        self.steps = steps or []
        self.execution_role_arn = execution_role_arn
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.step_ids: list[str] = []
        """The steps this attempt follows, in the order they were added."""
        self._cluster_id: str | None = None

    # -- input -------------------------------------------------------------------------------

    def build_submission(self, context: Context) -> _StepsSubmission:
        """Parse and validate the rendered steps; inject OpenLineage as upstream does. No AWS call."""
        steps = self._parsed_steps()
        if self.openlineage_inject_parent_job_info:
            steps = upstream.EmrAddStepsOperator._inject_openlineage_parent_job_information(
                self,  # type: ignore[arg-type]  # it only uses self.log
                steps,
                context,
            )
        return _StepsSubmission(steps)

    def _parsed_steps(self) -> list[dict[str, Any]]:
        steps: Any = self.steps
        if isinstance(steps, str):
            try:
                steps = ast.literal_eval(steps)
            except (ValueError, SyntaxError):
                try:
                    steps = json.loads(steps)
                except json.JSONDecodeError as err:
                    raise self._bad_steps(
                        f"steps is a string but neither a Python literal nor JSON: {err}"
                    ) from err
        if not isinstance(steps, list) or not steps:
            raise self._bad_steps(f"steps must be a non-empty list of step dicts, got {steps!r:.200}")
        for i, step in enumerate(steps):
            self._check_step(i, step, len(steps))
        return [dict(step) for step in steps]

    def _check_step(self, i: int, step: Any, count: int) -> None:
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            raise self._bad_steps(f"{where} must be a dict, got {type(step).__name__}")
        unknown = sorted(set(step) - _STEP_KEYS)
        if unknown:
            raise self._bad_steps(f"{where} has unknown keys {unknown}; a step takes {sorted(_STEP_KEYS)}")
        name = step.get("Name")
        if not isinstance(name, str) or not name:
            raise self._bad_steps(f"{where} needs a non-empty string Name")
        longest = len(tag_step_name(name, "0" * 32 + "-9999999", count, count))
        if longest > MAX_STEP_NAME_LENGTH:
            raise self._bad_steps(
                f"{where} Name is too long: with the idempotency tag it would be {longest} characters "
                f"(EMR allows {MAX_STEP_NAME_LENGTH})"
            )
        action = step.get("ActionOnFailure", "TERMINATE_CLUSTER")
        if action not in ACTIONS_ON_FAILURE:
            raise self._bad_steps(
                f"{where} ActionOnFailure={action!r} is not one of {list(ACTIONS_ON_FAILURE)}"
            )
        jar_step = step.get("HadoopJarStep")
        if not isinstance(jar_step, dict) or not isinstance(jar_step.get("Jar"), str) or not jar_step["Jar"]:
            raise self._bad_steps(f"{where} needs a HadoopJarStep with a non-empty string Jar")
        args = jar_step.get("Args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise self._bad_steps(f"{where} HadoopJarStep.Args must be a list of strings")

    def _bad_steps(self, problem: str) -> AirflowFailException:
        return AirflowFailException(f"Invalid EMR steps for task {self.task_id!r}: {problem}")

    # -- the cluster ----------------------------------------------------------------------------

    def _resolve_cluster(self) -> str:
        """The cluster's id: ``job_flow_id``, or the one cluster named ``job_flow_name`` in ``cluster_states``."""
        if self._cluster_id is not None:
            return self._cluster_id
        if self.job_flow_id:
            self._cluster_id = str(self.job_flow_id)
            return self._cluster_id
        pages = self.client.get_paginator("list_clusters").paginate(ClusterStates=self.cluster_states)
        matches = [c["Id"] for page in pages for c in page["Clusters"] if c["Name"] == self.job_flow_name]
        states = f" in states {self.cluster_states}" if self.cluster_states else ""
        if not matches:
            raise AirflowFailException(
                f"No cluster found for name: {self.job_flow_name}{states}; no steps added"
            )
        if len(matches) > 1:
            raise AirflowFailException(
                f"More than one cluster found for name {self.job_flow_name}{states}: {sorted(matches)}; "
                "no steps added. Pass job_flow_id, or narrow cluster_states."
            )
        self._cluster_id = str(matches[0])
        self.log.info("Found cluster name = %s id = %s", self.job_flow_name, self._cluster_id)
        return self._cluster_id

    def _check_cluster_accepts_steps(self, cluster_id: str) -> None:
        try:
            cluster = self.client.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except ClientError as err:
            if self._error_code(err) in ("InvalidRequestException", "ValidationException"):
                raise AirflowFailException(f"EMR has no cluster {cluster_id}; no steps added: {err}") from err
            raise
        state = cluster["Status"]["State"]
        if state in _GONE_CLUSTER_STATES:
            reason = (cluster["Status"].get("StateChangeReason") or {}).get("Message", "")
            raise AirflowFailException(
                f"EMR cluster {cluster_id} is {state} and takes no more steps; no steps added"
                + (f" ({reason})" if reason else "")
            )

    # -- the contract ---------------------------------------------------------------------------

    def submit(self, submission: _StepsSubmission, idempotency_key: str) -> str:
        cluster_id = self._resolve_cluster()
        self._check_cluster_accepts_steps(cluster_id)
        count = len(submission.steps)
        tagged = [
            {**step, "Name": tag_step_name(step["Name"], idempotency_key, i, count)}
            for i, step in enumerate(submission.steps, start=1)
        ]
        extra = {"ExecutionRoleArn": self.execution_role_arn} if self.execution_role_arn else {}
        self.log.info("Adding steps to %s", cluster_id)
        response = self.client.add_job_flow_steps(JobFlowId=cluster_id, Steps=tagged, **extra)
        return str(StepIds(cluster_id, tuple(response["StepIds"])))

    def find_existing(self, idempotency_key: str, *, intent_at: datetime | None = None) -> str | None:
        """Page ``ListSteps`` newest first back to the intent time; adopt the steps tagged with the key."""
        cluster_id = self._resolve_cluster()
        found: dict[int, str] = {}
        expected: int | None = None
        for step in steps_newest_first(self.client, cluster_id, since=intent_at):
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

    def _describe(self, external_id: str) -> JobState:
        ids = StepIds.parse(external_id)
        try:
            listed = {step["Id"]: step for step in self._list_steps(ids)}
        except ClientError as err:
            if self._error_code(err) in ("InvalidRequestException", "ValidationException"):
                return JobState(
                    RemoteStatus.NOT_FOUND, "NOT_FOUND", f"EMR has no cluster {ids.cluster_id}: {err}"
                )
            raise
        missing = [step_id for step_id in ids.step_ids if step_id not in listed]
        if missing:
            return JobState(
                RemoteStatus.NOT_FOUND,
                "NOT_FOUND",
                f"EMR no longer lists steps {missing} on {ids.cluster_id}",
            )
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
            response = self._client_for(timeout).cancel_steps(
                ClusterId=ids.cluster_id, StepIds=list(ids.step_ids), StepCancellationOption="SEND_INTERRUPT"
            )
        except ClientError as err:
            if self._error_code(err) not in ("InvalidRequestException", "ValidationException"):
                raise
            self.log.info("Cluster %s no longer takes requests; nothing to cancel: %s", ids.cluster_id, err)
            return
        for info in response.get("CancelStepsInfoList", []):
            self.log.info(
                "CancelSteps %s: %s %s", info.get("StepId"), info.get("Status"), info.get("Reason", "")
            )

    def on_job_known(self, external_id: str, context: Context) -> None:
        ids = StepIds.parse(external_id)
        self._cluster_id = ids.cluster_id
        self.step_ids = list(ids.step_ids)
        self._start_waiter_budget()
        self.log.info("Steps %s on cluster %s", self.step_ids, ids.cluster_id)
        if not self.do_xcom_push:
            return
        context["ti"].xcom_push(key="job_flow_id", value=ids.cluster_id)
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        EmrClusterLink.persist(
            context=context,
            operator=self,
            region_name=region,
            aws_partition=partition,
            job_flow_id=ids.cluster_id,
        )
        log_uri = self._call(
            lambda: get_log_uri(emr_client=self.client, job_flow_id=ids.cluster_id),
            what=f"read the log URI of cluster {ids.cluster_id}",
        )
        EmrLogsLink.persist(
            context=context,
            operator=self,
            region_name=region,
            aws_partition=partition,
            job_flow_id=ids.cluster_id,
            log_uri=log_uri,
        )

    def result(self, external_id: str, state: JobState) -> list[str]:
        """The step ids, as upstream returns them (XCom ``return_value``)."""
        return list(StepIds.parse(external_id).step_ids)

    def _ids_to_return(self) -> list[str]:
        return list(self.step_ids)


# -- ResumableEmrServerlessStartJobOperator ------------------------------------------------------------

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


@dataclass(frozen=True)
class _JobRunSubmission:
    args: dict[str, Any]
    name: str | None


class ResumableEmrServerlessStartJobOperator(_ResumableAwsOperator):
    """
    Start an EMR Serverless job run exactly once, and survive the worker dying.

    A drop-in replacement for the amazon provider's ``EmrServerlessStartJobOperator``: the same
    arguments with the same meaning, the same template fields, the job run id as the return value and
    the same links. The application is started first if it is not ``CREATED`` or ``STARTED``, as
    upstream does.

    **Exactly once.** ``StartJobRun`` is sent with ``clientToken`` = this task instance's ledger key,
    written to the ledger before the request; EMR Serverless returns the job run already created
    under a token instead of starting another, so a crash between the request and the ledger update,
    or a lost response that is retried, yields one job run. A worker shutdown leaves the job run going
    and checkpoints; the next attempt reconnects. User intent cancels it (one ``CancelJobRun``).

    **Idempotency trade-off.** A ``client_request_token`` you pass wins over the ledger's key (at most
    64 characters); a retry after a real failure then gets the failed job run back unless the token
    changes per try (e.g. templated with ``ti.try_number``).

    :param application_id: the EMR Serverless application. (templated)
    :param execution_role_arn: the job's runtime role. (templated)
    :param job_driver: the job driver (``sparkSubmit`` or ``hive``). (templated)
    :param configuration_overrides: configuration overrides for this job run. (templated)
    :param client_request_token: a ``clientToken`` to send instead of the ledger's key (see above).
    :param config: further ``StartJobRun`` arguments, passed through (its ``name`` is used when
        ``name`` is not given, as upstream). (templated)
    :param wait_for_completion: wait for the job run to end (default ``True``).
    :param name: the job run's name; defaults to ``emr_serverless_job_airflow_<ledger key>`` (upstream
        picks a random name; ours stays the same across re-sends of one key). (templated)
    :param waiter_max_attempts: the polls one attempt makes before giving up, as upstream; the job
        run is then cancelled, as upstream cancels it. Default 25.
    :param waiter_delay: seconds between polls (``poll_interval`` unless that is given). Default 60.
    :param deferrable: not supported: ``True`` raises when the DAG is parsed.
    :param enable_application_ui_links: persist the Spark/Tez UI and driver log links, as upstream.
    :param cancel_on_kill: upstream applies it to deferrable mode only; accepted for compatibility.
        Here the job run is cancelled on user intent and ``execution_timeout``, never on a worker
        shutdown.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent-job information into
        ``spark-defaults``, as upstream. Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param openlineage_inject_transport_info: inject OpenLineage transport information, as upstream.
        Defaults to ``[openlineage] spark_inject_transport_info``.
    :param aws_conn_id: the AWS connection, resolved by the amazon provider's hook.
    :param region_name: the AWS region.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments; its ``retries`` are replaced by this
        operator's own backoff.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    ledger_kind = "emr_serverless.start_job_run"
    job_noun = "job run"
    _hook_class = EmrServerlessHook
    template_fields: Sequence[str] = upstream.EmrServerlessStartJobOperator.template_fields
    template_fields_renderers = upstream.EmrServerlessStartJobOperator.template_fields_renderers
    operator_extra_links = upstream.EmrServerlessStartJobOperator.operator_extra_links
    is_monitoring_in_job_override = upstream.EmrServerlessStartJobOperator.is_monitoring_in_job_override

    def __init__(
        self,
        *,
        application_id: str,
        execution_role_arn: str,
        job_driver: dict[str, Any],
        configuration_overrides: dict[str, Any] | None = None,
        client_request_token: str = "",
        config: dict[str, Any] | None = None,
        wait_for_completion: bool = True,
        name: str | None = None,
        waiter_max_attempts: int | ArgNotSet = NOTSET,
        waiter_delay: int | ArgNotSet = NOTSET,
        deferrable: bool = False,
        enable_application_ui_links: bool = False,
        cancel_on_kill: bool = True,
        openlineage_inject_parent_job_info: bool = _OL_PARENT_DEFAULT,
        openlineage_inject_transport_info: bool = _OL_TRANSPORT_DEFAULT,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
            wait_for_completion=wait_for_completion,
            waiter_delay=60 if isinstance(waiter_delay, ArgNotSet) else waiter_delay,
            waiter_max_attempts=25 if isinstance(waiter_max_attempts, ArgNotSet) else waiter_max_attempts,
            deferrable=deferrable,
            **kwargs,
        )
        self.application_id = application_id
        self.execution_role_arn = execution_role_arn
        self.job_driver = job_driver
        self.configuration_overrides = configuration_overrides
        self.client_request_token = client_request_token
        self.config = config or {}
        self.name = name
        self.enable_application_ui_links = enable_application_ui_links
        self.cancel_on_kill = cancel_on_kill
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.openlineage_inject_transport_info = openlineage_inject_transport_info
        self.job_id: str | None = None
        """The job run this attempt follows, as upstream keeps it."""

    def build_submission(self, context: Context) -> _JobRunSubmission:
        """Validate the arguments and build ``StartJobRun``'s (OpenLineage injected as upstream). No AWS call."""
        problems = []
        if not isinstance(self.application_id, str) or not self.application_id:
            problems.append("application_id must be a non-empty string")
        if not isinstance(self.execution_role_arn, str) or not self.execution_role_arn.startswith("arn:"):
            problems.append(f"execution_role_arn must be an IAM role ARN, got {self.execution_role_arn!r}")
        if not isinstance(self.job_driver, dict) or not self.job_driver:
            problems.append(
                f"job_driver must be a non-empty dict (sparkSubmit or hive), got {self.job_driver!r}"
            )
        if not isinstance(self.config, dict):
            problems.append(f"config must be a dict, got {type(self.config).__name__}")
        if len(self.client_request_token or "") > MAX_CLIENT_TOKEN_LENGTH:
            problems.append(f"client_request_token must be at most {MAX_CLIENT_TOKEN_LENGTH} characters")
        if problems:
            raise AirflowFailException(
                f"Invalid EMR Serverless job for task {self.task_id!r}: " + "; ".join(problems)
            )
        config = dict(self.config)
        name = self.name or config.pop("name", None)
        overrides = self.configuration_overrides
        if self.openlineage_inject_parent_job_info:
            overrides = inject_parent_job_information_into_emr_serverless_properties(overrides, context)
        if self.openlineage_inject_transport_info:
            overrides = inject_transport_information_into_emr_serverless_properties(overrides, context)
        args: dict[str, Any] = {
            "applicationId": self.application_id,
            "executionRoleArn": self.execution_role_arn,
            "jobDriver": self.job_driver,
            **config,
        }
        if overrides is not None:
            args["configurationOverrides"] = overrides
        return _JobRunSubmission(args, name)

    def _ensure_application_started(self) -> None:
        state = self.client.get_application(applicationId=self.application_id)["application"]["state"]
        if state in EmrServerlessHook.APPLICATION_SUCCESS_STATES:
            return
        self.log.info("Application state is %s; starting application %s", state, self.application_id)
        self.client.start_application(applicationId=self.application_id)
        wait(
            waiter=self.hook.get_waiter("serverless_app_started"),
            waiter_max_attempts=self.waiter_max_attempts,
            waiter_delay=self.waiter_delay,
            args={"applicationId": self.application_id},
            failure_message="Serverless Application failed to start",
            status_message="Serverless Application status is",
            status_args=["application.state", "application.stateDetails"],
        )

    def submit(self, submission: _JobRunSubmission, idempotency_key: str) -> str:
        self._ensure_application_started()
        token = self.client_request_token or idempotency_key
        name = submission.name or f"emr_serverless_job_airflow_{idempotency_key}"
        self.log.info("Starting job on Application: %s (clientToken %s)", self.application_id, token)
        response = self.client.start_job_run(clientToken=token, name=name, **submission.args)
        return str(response["jobRunId"])

    def _describe(self, external_id: str) -> JobState:
        try:
            job_run = self.client.get_job_run(applicationId=self.application_id, jobRunId=external_id)[
                "jobRun"
            ]
        except ClientError as err:
            if self._error_code(err) == "ResourceNotFoundException":
                return JobState(
                    RemoteStatus.NOT_FOUND, "NOT_FOUND", f"EMR Serverless has no job run {external_id}"
                )
            raise
        return job_run_to_job_state(job_run)

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        try:
            self._client_for(timeout).cancel_job_run(applicationId=self.application_id, jobRunId=external_id)
        except ClientError as err:
            if self._error_code(err) not in ("ResourceNotFoundException", "ValidationException"):
                raise
            self.log.info("Job run %s cannot be cancelled (%s); nothing to do", external_id, err)

    def _on_waiter_exhausted(self, external_id: str) -> None:
        self.log.info("Cancelling EMR Serverless job %s due to max waiter attempts reached", external_id)
        self._cancel_bounded(external_id, reason="waiter_max_attempts reached")

    def on_job_known(self, external_id: str, context: Context) -> None:
        self.job_id = external_id
        self._start_waiter_budget()
        self.log.info("EMR serverless job started: %s", external_id)
        upstream.EmrServerlessStartJobOperator.persist_links(self, context)  # type: ignore[arg-type]

    def result(self, external_id: str, state: JobState) -> str:
        """The job run id, as upstream returns it (XCom ``return_value``)."""
        return external_id

    def _ids_to_return(self) -> str | None:
        return self.job_id


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
