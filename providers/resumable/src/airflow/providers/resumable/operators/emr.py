# Licensed under the Apache License, Version 2.0.
"""
Resumable drop-in replacements for the amazon provider's ``EmrAddStepsOperator`` and
``EmrServerlessStartJobOperator``.

Same constructor arguments, template fields, return values (XCom ``return_value``), extra XComs and
links as the pinned upstream operators. Every AWS call goes through
:mod:`airflow.providers.resumable.hooks.emr`, over the amazon provider's own hooks (``EmrHook``,
``EmrServerlessHook``) built from ``aws_conn_id``, ``region_name``, ``verify`` and
``botocore_config``, so a connection (keys, role assumption, ``endpoint_url`` in its extras) behaves
exactly as it does for the operators being replaced.

What differs is what happens when things go wrong: the steps or job run are started exactly once
(see each operator for how), a worker shutdown leaves them running and checkpoints the task, and
the next attempt reconnects to them instead of starting more.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.openlineage.utils.spark import (
    inject_parent_job_information_into_emr_serverless_properties,
    inject_transport_information_into_emr_serverless_properties,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.amazon.aws.links.emr import EmrClusterLink, EmrLogsLink
    from airflow.providers.amazon.aws.operators import emr as upstream
    from airflow.providers.amazon.version_compat import NOTSET, ArgNotSet
except ImportError as err:
    raise missing_extra("amazon", err) from err

from airflow.providers.resumable.hooks import emr as emr_hooks
from airflow.providers.resumable.hooks.emr import (
    ACTIONS_ON_FAILURE,
    MAX_CLIENT_TOKEN_LENGTH,
    MAX_STEP_NAME_LENGTH,
    EmrServerlessJobRunHook,
    EmrStepsHook,
    StepIds,
    tag_step_name,
)
from airflow.providers.resumable.operators.base import (
    DEFERRABLE_DEFAULT,
    OPENLINEAGE_PARENT_DEFAULT,
    OPENLINEAGE_TRANSPORT_DEFAULT,
    ResumableSubmitOperator,
)
from airflow.providers.resumable.polling import PollBudget
from airflow.providers.resumable.status import JobState
from airflow.providers.resumable.triggers.emr import (
    ResumableEmrServerlessJobRunTrigger,
    ResumableEmrStepsTrigger,
)

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

_STEP_KEYS = frozenset({"Name", "ActionOnFailure", "HadoopJarStep", "StepMonitoringConfiguration"})


class _ResumableAwsOperator(ResumableSubmitOperator):
    """
    What both EMR operators share: the hook's arguments, botocore errors, the waiter budget.

    :param region: accepted and ignored, as the amazon provider's ``AwsBaseOperator`` (9.39.0) does:
        its deprecated alias of ``region_name`` no longer sets the region there, and a DAG that
        passes it must reach the same region after the swap. Unlike upstream, a warning says so.
    """

    # The AWS arguments take upstream's defaults here, as upstream's ``AwsBaseOperator`` declares them.
    def __init__(
        self,
        *,
        wait_for_completion: bool,
        waiter_delay: int,
        waiter_max_attempts: int,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        deferrable: bool = DEFERRABLE_DEFAULT,
        openlineage_inject_parent_job_info: bool = OPENLINEAGE_PARENT_DEFAULT,
        # A named parameter, as upstream's: Airflow's ``.partial()`` checks names against the signatures.
        region: str | ArgNotSet | None = NOTSET,
        **kwargs: Any,
    ) -> None:
        if waiter_max_attempts < 1:
            raise AirflowException(f"waiter_max_attempts must be at least 1, got {waiter_max_attempts}")
        kwargs.setdefault("poll_interval", waiter_delay)
        super().__init__(deferrable=deferrable, **kwargs)
        if not isinstance(region, ArgNotSet):
            warnings.warn(
                f"Parameter `region` ({region!r}) is ignored, as the amazon provider's operators ignore it: "
                f"the region is region_name ({region_name!r}), else the connection's. Use `region_name`.",
                AirflowProviderDeprecationWarning,
                stacklevel=3,
            )
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        # Per attempt, as upstream's waiter: a resumed attempt polls with a fresh budget.
        self.poll_budget = PollBudget(max_polls=waiter_max_attempts)

    def _aws_args(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in emr_hooks.AWS_ARGUMENTS}

    def is_transient(self, error: BaseException) -> bool:
        return emr_hooks.is_transient(error)

    def on_poll_budget_spent(self, external_id: str, state: JobState, spent: str) -> NoReturn:
        raise AirflowException(
            f"Waiter error: max attempts reached: {self.job_noun} {external_id} is still {state} "
            f"after {self.waiter_max_attempts} polls {self.waiter_delay}s apart "
            "(waiter_max_attempts x waiter_delay)"
        )


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
    failing, so that a retry never runs beside them (see
    :func:`~airflow.providers.resumable.hooks.emr.steps_to_job_state`).

    **Limits.** Steps added by hand with a Name that imitates the tag would be adopted. Steps older
    than the intent time minus :data:`~airflow.providers.resumable.hooks.emr.STEP_LISTING_CLOCK_SKEW` are not looked at. The tag makes
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
    :param region: upstream's deprecated alias, accepted and ignored as upstream ignores it (with a
        warning): ``region_name`` sets the region.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments for the client. Its ``retries`` are
        replaced by this operator's own backoff, which wakes on a stop request and never re-sends a
        step submission blind.
    :param deferrable: poll from the triggerer once the steps are added (the submission stays in
        the worker, under the ledger). Defaults to ``[operators] default_deferrable``, as upstream.
    :param openlineage_inject_parent_job_info: inject the OpenLineage parent-job information into
        Spark steps, as upstream does. Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments (``do_xcom_push`` pushes ``job_flow_id`` and the links).
    """

    ledger_kind = "emr.add_steps"
    trigger_class = ResumableEmrStepsTrigger
    job_noun = "steps"
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
        **kwargs: Any,
    ) -> None:
        if (job_flow_id is None) == (job_flow_name is None):
            raise AirflowException("Exactly one of job_flow_id or job_flow_name must be specified.")
        super().__init__(
            wait_for_completion=wait_for_completion,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )
        self.job_flow_id = job_flow_id
        self.job_flow_name = job_flow_name
        self.cluster_states = cluster_states or []
        self.steps = steps or []
        self.execution_role_arn = execution_role_arn
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

    # -- the hook and the cluster ---------------------------------------------------------------

    @cached_property
    def hook(self) -> EmrStepsHook:
        """The EMR calls, through the amazon provider's ``EmrHook``."""
        return EmrStepsHook(**self._aws_args())

    def hook_params(self) -> dict[str, Any]:
        return self.hook.params()

    def _resolve_cluster(self) -> str:
        """The cluster's id: ``job_flow_id``, or the one cluster named ``job_flow_name`` in ``cluster_states``."""
        if self._cluster_id is None:
            if self.job_flow_id:
                self._cluster_id = str(self.job_flow_id)
            else:
                self._cluster_id = self.hook.find_cluster(str(self.job_flow_name), self.cluster_states)
                self.log.info("Found cluster name = %s id = %s", self.job_flow_name, self._cluster_id)
        return self._cluster_id

    # -- the contract ---------------------------------------------------------------------------

    def submit(self, submission: _StepsSubmission, idempotency_key: str, *, resend: bool) -> str:
        cluster_id = self._resolve_cluster()
        self.hook.check_cluster_accepts_steps(cluster_id)
        # AddJobFlowSteps has no idempotency token: a second send is a second set of steps.
        self.ensure_this_attempt_may_send()
        self.log.info("Adding steps to %s", cluster_id)
        return self.hook.add_steps(
            cluster_id, submission.steps, idempotency_key, execution_role_arn=self.execution_role_arn
        )

    def find_existing(self, idempotency_key: str, *, intent_at: datetime | None = None) -> str | None:
        """Page ``ListSteps`` newest first back to the intent time; adopt the steps tagged with the key."""
        return self.hook.find_steps(self._resolve_cluster(), idempotency_key, since=intent_at)

    def on_job_known(self, external_id: str, context: Context) -> None:
        ids = StepIds.parse(external_id)
        self._cluster_id = ids.cluster_id
        self.step_ids = list(ids.step_ids)
        self.log.info("Steps %s on cluster %s", self.step_ids, ids.cluster_id)
        if not self.do_xcom_push:
            return
        context["ti"].xcom_push(key="job_flow_id", value=ids.cluster_id)
        where = {
            "context": context,
            "operator": self,
            "region_name": self.hook.conn_region_name,
            "aws_partition": self.hook.conn_partition,
            "job_flow_id": ids.cluster_id,
        }
        EmrClusterLink.persist(**where)
        log_uri = self._call(
            lambda: self.hook.log_uri(ids.cluster_id),
            what=f"read the log URI of cluster {ids.cluster_id}",
        )
        EmrLogsLink.persist(**where, log_uri=log_uri)

    def result(self, external_id: str, state: JobState) -> list[str]:
        """The step ids, as upstream returns them (XCom ``return_value``)."""
        return list(StepIds.parse(external_id).step_ids)

    def result_without_waiting(self, external_id: str) -> list[str]:
        """The step ids, as upstream returns them without waiting."""
        return list(StepIds.parse(external_id).step_ids)


# -- ResumableEmrServerlessStartJobOperator ------------------------------------------------------------


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
    :param deferrable: poll from the triggerer once the job run is started. Defaults to
        ``[operators] default_deferrable``, as upstream.
    :param enable_application_ui_links: persist the Spark/Tez UI and driver log links, as upstream.
    :param cancel_on_kill: upstream applies it to deferrable mode only; accepted for compatibility.
        Here the job run is cancelled on user intent and ``execution_timeout``, never on a worker
        or triggerer shutdown, deferred or not.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent-job information into
        ``spark-defaults``, as upstream. Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param openlineage_inject_transport_info: inject OpenLineage transport information, as upstream.
        Defaults to ``[openlineage] spark_inject_transport_info``.
    :param aws_conn_id: the AWS connection, resolved by the amazon provider's hook.
    :param region_name: the AWS region.
    :param region: upstream's deprecated alias, accepted and ignored as upstream ignores it (with a
        warning): ``region_name`` sets the region.
    :param verify: whether to verify SSL certificates, or a CA bundle path.
    :param botocore_config: botocore ``Config`` arguments; its ``retries`` are replaced by this
        operator's own backoff.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    ledger_kind = "emr_serverless.start_job_run"
    trigger_class = ResumableEmrServerlessJobRunTrigger
    job_noun = "job run"
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
        enable_application_ui_links: bool = False,
        cancel_on_kill: bool = True,
        openlineage_inject_transport_info: bool = OPENLINEAGE_TRANSPORT_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            wait_for_completion=wait_for_completion,
            waiter_delay=60 if isinstance(waiter_delay, ArgNotSet) else waiter_delay,
            waiter_max_attempts=25 if isinstance(waiter_max_attempts, ArgNotSet) else waiter_max_attempts,
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

    @cached_property
    def hook(self) -> EmrServerlessJobRunHook:
        """The EMR Serverless calls, through the amazon provider's ``EmrServerlessHook``."""
        return EmrServerlessJobRunHook(application_id=self.application_id, **self._aws_args())

    def hook_params(self) -> dict[str, Any]:
        return self.hook.params()

    def submit(self, submission: _JobRunSubmission, idempotency_key: str, *, resend: bool) -> str:
        self.hook.ensure_application_started(
            waiter_max_attempts=self.waiter_max_attempts, waiter_delay=self.waiter_delay
        )
        token = self.client_request_token or idempotency_key
        name = submission.name or f"emr_serverless_job_airflow_{idempotency_key}"
        self.log.info("Starting job on Application: %s (clientToken %s)", self.application_id, token)
        return self.hook.start_job_run(submission.args, name=name, client_token=token)

    def on_poll_budget_spent(self, external_id: str, state: JobState, spent: str) -> NoReturn:
        # As upstream: the job run is cancelled when its waiter gives up.
        self.log.info("Cancelling EMR Serverless job %s due to max waiter attempts reached", external_id)
        self._cancel_bounded(external_id, reason="waiter_max_attempts reached")
        super().on_poll_budget_spent(external_id, state, spent)

    def on_job_known(self, external_id: str, context: Context) -> None:
        self.job_id = external_id
        self.log.info("EMR serverless job started: %s", external_id)
        upstream.EmrServerlessStartJobOperator.persist_links(self, context)  # type: ignore[arg-type]

    def result(self, external_id: str, state: JobState) -> str:
        """The job run id, as upstream returns it (XCom ``return_value``)."""
        return external_id

    def result_without_waiting(self, external_id: str) -> str:
        """The job run id, as upstream returns it without waiting."""
        return external_id
