# Licensed under the Apache License, Version 2.0.
"""
Resumable drop-in replacements for the Databricks provider's ``DatabricksSubmitRunOperator`` and
``DatabricksRunNowOperator``.

Same constructor arguments, template fields, XComs (``run_id``, ``run_page_url``) and extra link as
the pinned upstream operators; the run is started exactly once (the ledger's key is the request's
``idempotency_token``), is never cancelled because a worker shut down, and a later attempt reconnects
to it. Every Databricks call goes through the real ``DatabricksHook`` and ``databricks_conn_id``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.databricks.hooks.databricks import RunState
    from airflow.providers.databricks.operators import databricks as upstream
except ImportError as err:
    raise missing_extra("databricks", err) from err

from airflow.providers.resumable.hooks.databricks import ResumableDatabricksHook, check_retry_limit
from airflow.providers.resumable.operators import databricks_lineage as lineage
from airflow.providers.resumable.operators import databricks_payload as payload
from airflow.providers.resumable.operators.base import (
    DEFERRABLE_DEFAULT,
    OPENLINEAGE_PARENT_DEFAULT,
    OPENLINEAGE_TRANSPORT_DEFAULT,
    ResumableSubmitOperator,
)
from airflow.providers.resumable.operators.databricks_repair import RepairLog
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.triggers.databricks import ResumableDatabricksRunTrigger

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

XCOM_RUN_ID_KEY = upstream.XCOM_RUN_ID_KEY
XCOM_RUN_PAGE_URL_KEY = upstream.XCOM_RUN_PAGE_URL_KEY


def _named_request_keys(template_fields: Sequence[str]) -> tuple[str, ...]:
    """
    The named arguments an upstream Databricks operator merges into its request body, in its order.

    Upstream templates every one of them and, besides them, only ``json`` and the connection, so its
    template fields are the list (the parity tests hold upstream to that).

    :param template_fields: the upstream operator's template fields.
    """
    return tuple(name for name in template_fields if name not in ("json", "databricks_conn_id"))


class ResumableDatabricksJobRunLink(upstream.DatabricksJobRunLink):
    """The upstream "See Databricks Job Run" link (the ``run_page_url`` XCom), registered by this provider."""


class _DatabricksRunOperator(ResumableSubmitOperator):
    """What both Databricks operators share: the hook and its retries, describe, cancel, XComs."""

    job_noun = "run"
    trigger_class = ResumableDatabricksRunTrigger
    template_ext: Sequence[str] = (".json-tpl",)
    ui_color = "#1CB1C2"
    ui_fgcolor = "#fff"
    operator_extra_links = (ResumableDatabricksJobRunLink(),)
    _hook_caller: ClassVar[str] = ""
    _json_parameters: ClassVar[tuple[str, ...]] = ()
    """The named arguments that set the request body's top-level keys of the same names: fixed per
    class from upstream's template fields, not read from ``self.template_fields``, so that a DAG's
    subclass templating more fields sends no more keys."""

    # The arguments both upstream operators take, with upstream's defaults: declared once here
    # (the parity tests read constructor signatures across the bases, as for upstream's own).
    def __init__(
        self,
        *,
        json: Any | None = None,
        idempotency_token: str | None = None,
        performance_target: str | None = None,
        databricks_conn_id: str = "databricks_default",
        polling_period_seconds: int = 30,
        databricks_retry_limit: int = 3,
        databricks_retry_delay: int = 1,
        databricks_retry_args: dict[Any, Any] | None = None,
        do_xcom_push: bool = True,
        wait_for_termination: bool = True,
        deferrable: bool = DEFERRABLE_DEFAULT,
        openlineage_inject_parent_job_info: bool = OPENLINEAGE_PARENT_DEFAULT,
        durable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poll_interval", polling_period_seconds)
        super().__init__(
            durable=True if durable is None else durable,
            deferrable=deferrable,
            do_xcom_push=do_xcom_push,
            **kwargs,
        )
        check_retry_limit(databricks_retry_limit)
        self.json = json
        self.databricks_conn_id = databricks_conn_id
        self.polling_period_seconds = polling_period_seconds
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        self.databricks_retry_args = databricks_retry_args
        self.wait_for_termination = wait_for_termination
        self.wait_for_completion = wait_for_termination
        self.idempotency_token = idempotency_token
        self.performance_target = performance_target
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.run_id: int | None = None
        """The Databricks run this attempt follows, as upstream keeps it."""

    # -- the hook ---------------------------------------------------------------------------

    @cached_property
    def hook(self) -> ResumableDatabricksHook:
        """The Jobs API, through the Databricks provider's hook and this operator's retry."""
        return ResumableDatabricksHook(
            self.databricks_conn_id,
            retry_limit=self.databricks_retry_limit,
            retry_delay=self.databricks_retry_delay,
            retry_args=self._hook_retry_args(),
            caller=self._hook_caller,
        )

    def hook_params(self) -> dict[str, Any]:
        return self.hook.params()

    def _hook_retry_args(self) -> dict[Any, Any]:
        """The hook's own HTTP retry: ``databricks_retry_args`` verbatim, else one that honours
        ``Retry-After`` and gives up at once when the task is asked to stop (see the hook)."""
        if self.databricks_retry_args:
            return dict(self.databricks_retry_args)
        return ResumableDatabricksHook.interruptible_retry_args(
            limit=self.databricks_retry_limit,
            delay=self.databricks_retry_delay,
            max_wait=self.cloud_call_backoff.max_wait,
            should_stop=lambda: self._stop.requested,
            sleep=self._stop.wait,
        )

    # -- the contract -------------------------------------------------------------------------

    def is_transient(self, error: BaseException) -> bool:
        return ResumableDatabricksHook.is_transient(error)

    def retry_after(self, error: BaseException) -> float | None:
        return ResumableDatabricksHook.retry_after(error)

    def on_job_known(self, external_id: str, context: Context) -> None:
        run_id = self.run_id = int(external_id)
        # A reconnect has just described the run: its page URL is at hand. A fresh submit asks once.
        url = self._call(
            lambda: self.hook.run_page_url(external_id), what=f"get the page URL of run {run_id}"
        )
        if self.do_xcom_push:
            context["ti"].xcom_push(key=XCOM_RUN_ID_KEY, value=run_id)
            context["ti"].xcom_push(key=XCOM_RUN_PAGE_URL_KEY, value=url)
        self.log.info("View run status, Spark UI, and logs at %s", url)

    def _named_json_parameters(self) -> dict[str, Any]:
        """The named arguments by request key, as upstream merges them into ``json`` (``None``: not set)."""
        return {name: getattr(self, name) for name in self._json_parameters}

    # Upstream returns nothing (waited for or not): the run's id and page travel as XComs.


class ResumableDatabricksSubmitRunOperator(_DatabricksRunOperator):
    """
    Submit a one-time Databricks run (``jobs/runs/submit``) exactly once, and survive the worker dying.

    A drop-in replacement for the Databricks provider's ``DatabricksSubmitRunOperator``: every
    argument is accepted with the same meaning, the same fields are templated, the same XComs
    (``run_id``, ``run_page_url``) are pushed and the same "See Databricks Job Run" link is shown.
    What changes is what happens when things go wrong:

    - The run is submitted with ``idempotency_token`` set to this task instance's ledger key,
      written to the task state store *before* the request. A worker that dies after Databricks
      created the run but before the run id was saved is followed by an attempt that re-sends the
      same token and gets the same run back; a lost response re-sent by the hook's HTTP retry is
      deduplicated the same way. One task instance, one run.
    - A worker shutdown (SIGTERM while the server still says the task is running) leaves the run
      running and checkpoints; the next attempt reconnects to it without consuming a retry. Only a
      person's decision (task marked failed/success or cleared) or ``execution_timeout`` cancels it.

    **Idempotency trade-off.** If you pass ``idempotency_token`` yourself it wins over the ledger's
    key, exactly as upstream sends it. Databricks then returns the run created under that token for
    as long as it remembers it, *including after that run failed*: a retry after a real failure gets
    the failed run back instead of a new one. Template the token per try (e.g.
    ``"nightly-{{ ds_nodash }}-{{ ti.try_number }}"``) if retries should start fresh runs.

    :param json: the ``jobs/runs/submit`` request body; named arguments below override its top-level
        keys. May render to a mapping, a JSON string or a Python dict literal. (templated)
    :param tasks: the run's tasks (``RunSubmitTaskSettings``, at most 100). (templated)
    :param spark_jar_task: a single-task run's JAR task. (templated)
    :param notebook_task: a single-task run's notebook task. (templated)
    :param spark_python_task: a single-task run's Python file task. (templated)
    :param spark_submit_task: a single-task run's spark-submit task. (templated)
    :param pipeline_task: a single-task run's Delta Live Tables pipeline task; ``pipeline_name`` is
        resolved to ``pipeline_id`` when the run is submitted. (templated)
    :param dbt_task: a single-task run's dbt task; needs ``git_source``. (templated)
    :param new_cluster: a cluster created for this run; exclusive with ``existing_cluster_id``.
        (templated)
    :param existing_cluster_id: an existing cluster to run on; exclusive with ``new_cluster``.
        (templated)
    :param libraries: libraries to install on the cluster. (templated)
    :param environments: serverless task environments the tasks reference by ``environment_key``.
        (templated)
    :param run_name: the run's name; defaults to the ``task_id``. (templated)
    :param timeout_seconds: the run's timeout on Databricks; ``0``/unset means none. (templated)
    :param databricks_conn_id: the Databricks connection, resolved by the real ``DatabricksHook``.
        (templated)
    :param polling_period_seconds: seconds between status polls (our ``poll_interval``, unless that
        is passed too).
    :param databricks_retry_limit: how many times the hook tries one HTTP request (at least 1).
    :param databricks_retry_delay: the hook's minimum wait between those tries, doubling each time;
        a ``Retry-After`` from Databricks is honoured instead when present.
    :param databricks_retry_args: ``tenacity.Retrying`` arguments for the hook's retry, used verbatim
        (then ``Retry-After`` and stop requests are whatever those arguments make of them).
    :param do_xcom_push: push ``run_id`` and ``run_page_url`` to XCom.
    :param idempotency_token: a token to send instead of the ledger's key (see the trade-off above);
        at most 64 characters. (templated)
    :param access_control_list: the run's access control list. (templated)
    :param wait_for_termination: wait for the run to end (default). ``False`` ends the task once the
        run is submitted and its XComs are pushed; it is still submitted exactly once.
    :param git_source: a remote git repository the tasks are taken from. (templated)
    :param performance_target: ``PERFORMANCE_OPTIMIZED`` or ``STANDARD`` for serverless compute.
        (templated)
    :param deferrable: poll from the triggerer once the run is submitted (the submission stays in the
        worker, under the ledger). Defaults to ``[operators] default_deferrable``, as upstream.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent job information into the
        tasks' parameters and ``spark_conf``, as upstream does. Defaults to
        ``[openlineage] spark_inject_parent_job_info``.
    :param openlineage_inject_transport_info: inject OpenLineage transport configuration into the
        ``new_cluster`` ``spark_conf``, as upstream does. Defaults to
        ``[openlineage] spark_inject_transport_info``.
    :param durable: keep the ledger in the task state store so retries reconnect (``None``, the
        default, means ``True``, as upstream). ``False`` is the stock behaviour: no reconnection, and
        the run is cancelled whenever the task is killed.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator`
        arguments (``on_prior_failure``, ``resume_after``, ``poll_interval``, ``max_poll_interval``)
        and ``BaseOperator`` arguments.
    """

    ledger_kind = "databricks.runs_submit"
    upstream_state_key = upstream.DatabricksSubmitRunOperator.external_id_key
    _hook_caller = "ResumableDatabricksSubmitRunOperator"
    template_fields: Sequence[str] = upstream.DatabricksSubmitRunOperator.template_fields
    _json_parameters = _named_request_keys(template_fields)

    def __init__(
        self,
        *,
        tasks: list[object] | None = None,
        spark_jar_task: dict[str, Any] | None = None,
        notebook_task: dict[str, Any] | None = None,
        spark_python_task: dict[str, Any] | None = None,
        spark_submit_task: dict[str, Any] | None = None,
        pipeline_task: dict[str, Any] | None = None,
        dbt_task: dict[str, Any] | None = None,
        new_cluster: dict[str, object] | None = None,
        existing_cluster_id: str | None = None,
        libraries: list[dict[str, Any]] | None = None,
        environments: list[dict[str, Any]] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        access_control_list: list[dict[str, str]] | None = None,
        git_source: dict[str, Any] | None = None,
        openlineage_inject_transport_info: bool = OPENLINEAGE_TRANSPORT_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tasks = tasks
        self.spark_jar_task = spark_jar_task
        self.notebook_task = notebook_task
        self.spark_python_task = spark_python_task
        self.spark_submit_task = spark_submit_task
        self.pipeline_task = pipeline_task
        self.dbt_task = dbt_task
        self.new_cluster = new_cluster
        self.existing_cluster_id = existing_cluster_id
        self.libraries = libraries
        self.environments = environments
        self.run_name = run_name
        self.timeout_seconds = timeout_seconds
        self.access_control_list = access_control_list
        self.git_source = git_source
        self.openlineage_inject_transport_info = openlineage_inject_transport_info

    def build_submission(self, context: Context) -> dict[str, Any]:
        """Merge ``json`` with the named arguments as upstream does, validate, inject params. No HTTP."""
        try:
            json = copy.deepcopy(
                upstream._merge_json_with_named_parameters(self.json, self._named_json_parameters())
            )
            json.setdefault("run_name", self.task_id)
            upstream.DatabricksSubmitRunOperator._validate_merged_json(json)
        except AirflowException as err:
            raise AirflowFailException(
                f"Invalid Databricks payload for task {self.task_id!r}: {err}"
            ) from err
        payload.check_tasks_and_clusters(json, self.task_id)
        payload.check_token(json)
        payload.normalised(json, self.task_id)  # type errors surface before anything is injected or sent
        if forwardable := upstream._get_forwardable_dag_params(self.params):
            targets = json["tasks"] if isinstance(json.get("tasks"), list) else [json]
            for task in targets:
                if isinstance(task, dict):
                    upstream._inject_airflow_params_into_task(task, forwardable)
        if self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info:
            json = lineage.into_submit_run(
                json,
                context,
                inject_parent_job_info=self.openlineage_inject_parent_job_info,
                inject_transport_info=self.openlineage_inject_transport_info,
                log=self.log,
            )
        return payload.normalised(json, self.task_id)

    def submit(self, submission: dict[str, Any], idempotency_key: str, *, resend: bool) -> str:
        return self.hook.submit_run(submission, idempotency_key)

    def job_belongs_here(self, external_id: str, submission: Any) -> str | None:
        # Upstream names the run as this operator does (``run_name``, else the task id).
        name = (self.hook.last_run or {}).get("run_name")
        if name != submission.get("run_name"):
            return f"it is named {name!r}, and this task's runs are named {submission.get('run_name')!r}"
        return None


class ResumableDatabricksRunNowOperator(_DatabricksRunOperator):
    """
    Run an existing Databricks job (``jobs/run-now``) exactly once, and survive the worker dying.

    A drop-in replacement for the Databricks provider's ``DatabricksRunNowOperator``: same
    arguments with the same meaning, same template fields, XComs (``run_id``, ``run_page_url``) and
    "See Databricks Job Run" link. The job is found by ``job_id``, or by ``job_name`` through
    ``jobs/list`` as upstream does (exactly one job may carry the name). The run is triggered with
    ``idempotency_token`` set to the ledger key written before the request, so a crash or a lost
    response never triggers a second run; a worker shutdown leaves the run running and the next
    attempt reconnects to it. See
    :class:`ResumableDatabricksSubmitRunOperator` for the full story.

    **Idempotency trade-off.** A user-supplied ``idempotency_token`` wins over the ledger's key; a
    retry after a real failure then gets the failed run back unless the token changes per try (e.g.
    templated with ``ti.try_number``).

    :param job_id: the job to run; exclusive with ``job_name``. (templated)
    :param job_name: the job's name, looked up with ``jobs/list`` when the run is triggered; exactly
        one job may carry it. (templated)
    :param job_parameters: job-level parameters for this run; cannot be combined with the
        task-specific ``*_params`` below. (templated)
    :param json: the ``jobs/run-now`` request body; named arguments override its top-level keys.
        (templated)
    :param dbt_commands: dbt commands for a dbt task. (templated)
    :param notebook_params: parameters for notebook tasks. (templated)
    :param python_params: parameters for Python file tasks. (templated)
    :param jar_params: parameters for JAR tasks. (templated)
    :param spark_submit_params: parameters for spark-submit tasks. (templated)
    :param python_named_params: named parameters for Python wheel tasks. (templated)
    :param idempotency_token: a token to send instead of the ledger's key (see the trade-off above);
        at most 64 characters. (templated)
    :param performance_target: ``PERFORMANCE_OPTIMIZED`` or ``STANDARD`` for serverless compute.
        (templated)
    :param databricks_conn_id: the Databricks connection, resolved by the real ``DatabricksHook``.
        (templated)
    :param polling_period_seconds: seconds between status polls.
    :param databricks_retry_limit: how many times the hook tries one HTTP request (at least 1).
    :param databricks_retry_delay: the hook's minimum wait between those tries; ``Retry-After`` wins.
    :param databricks_retry_args: ``tenacity.Retrying`` arguments for the hook's retry, used verbatim.
    :param do_xcom_push: push ``run_id`` and ``run_page_url`` to XCom.
    :param wait_for_termination: wait for the run to end (default); ``False`` ends the task once the
        run is triggered.
    :param deferrable: poll from the triggerer once the run is started, as for SubmitRun. Defaults
        to ``[operators] default_deferrable``.
    :param openlineage_inject_parent_job_info: inject the OpenLineage parent-run context into
        ``job_parameters``, as upstream does. Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param repair_run: once per attempt, when the run this attempt follows ends unsuccessfully,
        repair it (re-run its failed tasks, same run id) and keep polling, as upstream does.
    :param databricks_repair_reason_new_settings: ``{reason: new_settings}``: repair only when the
        run's state message contains a reason, first applying its settings with ``jobs/update``.
    :param cancel_previous_runs: cancel the job's active runs before triggering this one. Done only
        on the first send of an idempotency key, never when re-sending it, so it cannot cancel the
        run this task instance itself triggered.
    :param forward_dag_params: forward the DAG's params as ``job_parameters`` when none are set.
    :param durable: keep the ledger so retries reconnect (``None`` means ``True``, as upstream).
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    ledger_kind = "databricks.run_now"
    upstream_state_key = upstream.DatabricksRunNowOperator.external_id_key
    _hook_caller = "ResumableDatabricksRunNowOperator"
    template_fields: Sequence[str] = upstream.DatabricksRunNowOperator.template_fields
    _json_parameters = _named_request_keys(template_fields)

    def __init__(
        self,
        *,
        job_id: str | None = None,
        job_name: str | None = None,
        job_parameters: dict[str, str] | None = None,
        dbt_commands: list[str] | None = None,
        notebook_params: dict[str, str] | None = None,
        python_params: list[str] | None = None,
        jar_params: list[str] | None = None,
        spark_submit_params: list[str] | None = None,
        python_named_params: dict[str, str] | None = None,
        repair_run: bool = False,
        databricks_repair_reason_new_settings: dict[str, Any] | None = None,
        cancel_previous_runs: bool = False,
        forward_dag_params: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.job_name = job_name
        self.job_parameters = job_parameters
        self.dbt_commands = dbt_commands
        self.notebook_params = notebook_params
        self.python_params = python_params
        self.python_named_params = python_named_params
        self.jar_params = jar_params
        self.spark_submit_params = spark_submit_params
        self.repair_run = repair_run
        self.databricks_repair_reason_new_settings = databricks_repair_reason_new_settings or {}
        self.cancel_previous_runs = cancel_previous_runs
        self.forward_dag_params = forward_dag_params
        self._merged_json: dict[str, Any] = {}

    def build_submission(self, context: Context) -> dict[str, Any]:
        """Merge, validate and inject params as upstream does; ``job_name`` is resolved at submit. No HTTP."""
        try:
            json = upstream._merge_json_with_named_parameters(self.json, self._named_json_parameters())
            upstream.DatabricksRunNowOperator._validate_merged_json(json)
        except AirflowException as err:
            raise AirflowFailException(
                f"Invalid Databricks payload for task {self.task_id!r}: {err}"
            ) from err
        if json.get("job_id") in (None, "") and not json.get("job_name"):
            raise AirflowFailException(
                f"Task {self.task_id!r} needs job_id or job_name to know which job to run"
            )
        payload.check_token(json)
        json = payload.normalised(json, self.task_id)
        slots = upstream._RUN_NOW_PARAM_SLOTS_CONFLICTING_WITH_JOB_PARAMETERS
        if (
            self.forward_dag_params
            and not json.get("job_parameters")
            and not any(k in json for k in slots)
            and (forwardable := upstream._get_forwardable_dag_params(self.params))
        ):
            json["job_parameters"] = forwardable
        if self.openlineage_inject_parent_job_info:
            if any(k in json for k in slots):
                self.log.info(
                    "Not injecting OpenLineage parent info: a legacy *_params slot excludes job_parameters"
                )
            else:
                json = lineage.into_run_now(json, context, log=self.log)
        self._merged_json = json
        return json

    def submit(self, submission: dict[str, Any], idempotency_key: str, *, resend: bool) -> str:
        payload = self._merged_json = self.hook.resolve_job(submission)
        # Never on a re-send: it would cancel the run the first send of this key may have triggered.
        cancel_previous = self.cancel_previous_runs and not resend
        if cancel_previous:
            self.log.info("cancel_previous_runs: cancelling the active runs of job %s", payload["job_id"])
        return self.hook.run_now(payload, idempotency_key, cancel_previous_runs=cancel_previous)

    def job_belongs_here(self, external_id: str, submission: Any) -> str | None:
        ran = (self.hook.last_run or {}).get("job_id")
        wanted = self.hook.resolve_job(submission).get("job_id")
        if str(ran) != str(wanted):
            return f"it is a run of job {ran}, and this task runs job {wanted}"
        return None

    def recover(self, external_id: str, state: JobState, context: Context) -> bool:
        """
        Repair the run once per try (``repair_run``), as upstream does after a run ends unsuccessfully;
        the repair is recorded in the task state store first (:mod:`.databricks_repair`), so a deferred
        or resumed attempt never repairs the same run twice in one try.
        """
        run = self.hook.last_run or {}
        if not self.repair_run or state.status is RemoteStatus.NOT_FOUND or "state" not in run:
            return False
        run_state = RunState(**run["state"])
        if self.databricks_repair_reason_new_settings and not upstream.is_repair_reason_match_exist(
            self, run_state
        ):
            return False
        run_id, api = int(external_id), self.hook.api
        repairs = RepairLog(context.get("task_state_store") if self.durable else None)
        with self.hook.explained_errors():
            latest = api.get_latest_repair_id(run_id)
            record = repairs.begin(run_id, getattr(context.get("ti"), "try_number", None), latest)
            if record is None:
                self.log.warning("Run %s ended %s after this try repaired it: not again", run_id, state)
                return False
            # A resumed attempt rebuilds the payload its repair re-sends (upstream does the same).
            merged = self._merged_json or self.build_submission(context)
            job_id = int(run.get("job_id") or merged["job_id"])
            upstream.update_job_for_repair(self, api, job_id, run_state)
            repair: dict[str, Any] = {"run_id": run_id, "rerun_all_failed_tasks": True}
            if record.latest_repair_id_before is not None:
                repair["latest_repair_id"] = record.latest_repair_id_before
            if "job_parameters" in merged:
                repair["job_parameters"] = merged["job_parameters"]
            repair_id = api.repair_run(repair)
            repairs.done(record, repair_id)
        self.repair_run = False  # once per attempt too, for the durable=False path
        self.log.warning(
            "Run %s ended %s; repaired it (repair %s, repair_run=True)", run_id, state, repair_id
        )
        return True
