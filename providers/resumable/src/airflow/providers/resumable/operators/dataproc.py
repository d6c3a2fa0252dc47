# Licensed under the Apache License, Version 2.0.
"""
Resumable drop-in replacements for the Google provider's ``DataprocSubmitJobOperator`` and
``DataprocCreateBatchOperator``.

Same constructor arguments, template fields, return value (the job id; the batch as a dict) and
extra links ("Dataproc Job", "Dataproc Batch") as the Google provider 22.8.0 operators; the job or
batch is created exactly once, is never cancelled because a worker shut down, and a later attempt
reconnects to it. Every call goes through the real ``google-cloud-dataproc`` gRPC clients, built
from ``gcp_conn_id`` by :class:`~airflow.providers.resumable.hooks.dataproc.ResumableDataprocHook`
(the Google provider is not needed; see that module for the connection options supported).

**Idempotency.** Dataproc offers two handles, and both are used:

- ``request_id``: the ledger's key (``<32 hex>-<generation>``, at most 40 characters of
  ``[a-z0-9-]``). Dataproc answers a repeated ``request_id`` with the job (operation) it created
  for the first request.
- A client-chosen id: ``reference.job_id`` / ``batch_id`` derived from the key (and the task id, for
  humans). Dataproc forgets request ids after a while; an id it has seen answers ``ALREADY_EXISTS``,
  which then means "that job is ours: get it".

Every job or batch also carries the label ``airflow-resumable-key: k-<key>``. Whatever Dataproc
hands back (a deduplicated request, or the job behind ``ALREADY_EXISTS``) is adopted only if it
carries this task instance's current key; anything else fails the task with what was found. This is
what keeps a fixed, user-supplied ``request_id``/``job_id``/``batch_id`` from silently adopting
another run's job, or the failed job of an earlier generation.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from google.api_core.gapic_v1.method import DEFAULT, _MethodDefault
    from google.cloud import dataproc_v1
except ImportError as err:
    raise missing_extra("google", err) from err

from airflow.providers.resumable.hooks import dataproc as dataproc_hooks
from airflow.providers.resumable.hooks.dataproc import (
    BATCH_ID_PATTERN,
    BATCH_ID_PREFIX_SUFFIX_LENGTH,
    BATCH_TYPES,
    DEFAULT_CONN_ID,
    HOOK_ARGUMENTS,
    JOB_ID_PATTERN,
    JOB_TYPES,
    MAX_BATCH_ID_LENGTH,
    MAX_JOB_ID_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_PATTERN,
    DataprocBatchHook,
    DataprocJobHook,
    add_airflow_labels,
    derive_batch_id,
    prefixed_batch_id,
)
from airflow.providers.resumable.links.dataproc import ResumableDataprocBatchLink, ResumableDataprocJobLink
from airflow.providers.resumable.operators.base import (
    DEFERRABLE_DEFAULT,
    OPENLINEAGE_PARENT_DEFAULT,
    OPENLINEAGE_TRANSPORT_DEFAULT,
    ResumableSubmitOperator,
)
from airflow.providers.resumable.polling import PollBudget
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.triggers import dataproc as dataproc_triggers

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context
    from google.api_core.retry import Retry

_Message = TypeVar("_Message", "dataproc_v1.Job", "dataproc_v1.Batch")
"""A proto-plus message OpenLineage properties can be injected into."""


class _DataprocOperator(ResumableSubmitOperator):
    """What both Dataproc operators share: clients, errors, ownership checks, OpenLineage, timeouts."""

    ui_color = "#0273d4"

    # The arguments both upstream operators take, with upstream's defaults: declared once here
    # (the parity tests read constructor signatures across the bases, as for upstream's own).
    def __init__(
        self,
        *,
        region: str,
        project_id: str | None = None,
        request_id: str | None = None,
        retry: Retry | _MethodDefault = DEFAULT,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        asynchronous: bool = False,
        deferrable: bool = DEFERRABLE_DEFAULT,
        polling_interval_seconds: int,
        openlineage_inject_parent_job_info: bool = OPENLINEAGE_PARENT_DEFAULT,
        openlineage_inject_transport_info: bool = OPENLINEAGE_TRANSPORT_DEFAULT,
        **kwargs: Any,
    ) -> None:
        if polling_interval_seconds <= 0:
            raise ValueError("Invalid value for polling_interval_seconds. Expected value greater than 0")
        kwargs.setdefault("poll_interval", polling_interval_seconds)
        super().__init__(deferrable=deferrable, **kwargs)
        self.region = region
        self.project_id = project_id
        self.request_id = request_id
        self.retry = retry
        self.timeout = timeout
        self.metadata = metadata
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.asynchronous = asynchronous
        self.wait_for_completion = not asynchronous
        self.polling_interval_seconds = polling_interval_seconds
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.openlineage_inject_transport_info = openlineage_inject_transport_info

    _hook_class: ClassVar[type[DataprocJobHook] | type[DataprocBatchHook]]

    @cached_property
    def hook(self) -> Any:
        """The connection's credentials and project, and the calls of this operator's API."""
        return self._hook_class(**{name: getattr(self, name) for name in HOOK_ARGUMENTS})

    def hook_params(self) -> dict[str, Any]:
        return dict(self.hook.params())

    def _resolve_common(self) -> str:
        """Check region, request_id and project before anything is sent; return the project."""
        if not self.region:
            raise AirflowFailException(f"Task {self.task_id!r} needs a region")
        if self.request_id is not None and not REQUEST_ID_PATTERN.match(str(self.request_id)):
            raise AirflowFailException(
                f"request_id must be 1-{MAX_REQUEST_ID_LENGTH} characters of [A-Za-z0-9_-], got {self.request_id!r}"
            )
        try:
            return str(self.hook.project)
        except AirflowFailException as err:
            raise AirflowFailException(f"Task {self.task_id!r}: {err}") from None

    @property
    def project(self) -> str:
        """The project every call goes to."""
        return self._resolve_common()

    def is_transient(self, error: BaseException) -> bool:
        """UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, ABORTED, an exhausted library retry."""
        return dataproc_hooks.is_transient(error)

    def retry_after(self, error: BaseException) -> float | None:
        """The ``google.rpc.RetryInfo`` delay Google APIs attach to RESOURCE_EXHAUSTED and UNAVAILABLE."""
        return dataproc_hooks.retry_after(error)

    # -- OpenLineage ----------------------------------------------------------------------------

    def _with_openlineage(self, message: _Message, context: Context, function: str, what: str) -> _Message:
        """
        ``message`` (a Job or a Batch) with upstream's OpenLineage properties injected, when asked for
        and the Google provider is installed; otherwise ``message`` itself (saying why when asked for).
        """
        if not (self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info):
            return message
        message_type = type(message)
        injected = self._openlineage(message_type.to_dict(message), context, function, what)
        return message_type(injected)

    def _openlineage(self, payload: dict[str, Any], context: Context, function: str, what: str) -> Any:
        """Upstream's injection on a dict, when the Google provider is installed; otherwise say so and go on."""
        try:
            from airflow.providers.google.cloud.openlineage import utils as ol_utils
        except ImportError:
            self.log.warning(
                "OpenLineage injection was asked for, but it needs apache-airflow-providers-google, which "
                "is not installed: the %s is submitted without it",
                what,
            )
            return payload
        try:
            return getattr(ol_utils, function)(
                payload,
                context=context,
                inject_parent_job_info=self.openlineage_inject_parent_job_info,
                inject_transport_info=self.openlineage_inject_transport_info,
            )
        except Exception as err:
            self.log.warning(
                "Could not inject OpenLineage information; the %s is left as it was", what, exc_info=err
            )
            return payload


class ResumableDataprocSubmitJobOperator(_DataprocOperator):
    """
    Submit a Dataproc job to a cluster exactly once, and survive the worker dying.

    A drop-in replacement for the Google provider's ``DataprocSubmitJobOperator``: every argument
    is accepted with the same meaning, the same fields are templated, the job id is returned (the
    ``return_value`` XCom) and the same "Dataproc Job" link is shown. What changes is what happens
    when things go wrong:

    - The job is submitted with ``request_id`` set to this task instance's ledger key and, unless
      ``job`` sets ``reference.job_id``, a job id derived from that key, both written to the task
      state store *before* the call. A worker that dies after Dataproc created the job but before
      its id was saved is followed by an attempt that re-sends the same request: Dataproc returns
      the same job (or ``ALREADY_EXISTS`` for the job id, and the job is fetched). A
      ``DEADLINE_EXCEEDED`` on a submit that did reach Dataproc is retried the same way. One task
      instance, one job.
    - A worker shutdown (SIGTERM while the server still says the task is running) leaves the job
      running and checkpoints; the next attempt reconnects to it without consuming a retry. Only a
      person's decision (task marked failed/success or cleared) or ``execution_timeout`` cancels
      it, and only with ``cancel_on_kill=True`` (the default), as upstream.

    **Idempotency trade-off.** A ``request_id`` or ``reference.job_id`` you set wins over the
    derived one and is sent as given. After a real failure, the next generation then cannot get a
    new job: Dataproc hands the old one back (same ``request_id``) or answers ``ALREADY_EXISTS``
    (same job id). The task then fails saying so, instead of reporting the old job's outcome.
    Template them per try (``"nightly-{{ ds_nodash }}-{{ ti.try_number }}"``) if retries should run
    new jobs. A job Dataproc hands back that another task instance created (a fixed ``request_id``
    reused across runs) is refused, never adopted; see the module docstring.

    :param job: the job, a dict of the ``google.cloud.dataproc_v1.Job`` form (or a ``Job``); its
        ``reference.job_id`` wins over the derived id. (templated)
    :param region: the Dataproc region. (templated)
    :param project_id: the project; defaults to the connection's. (templated)
    :param request_id: sent instead of the ledger key (see the trade-off above); at most 40
        characters of ``[A-Za-z0-9_-]``. (templated)
    :param retry: a ``google.api_core.retry.Retry`` for every client call. Left at its default, the
        library's own retry is off and this operator's backoff retries transient errors instead.
    :param timeout: seconds for one client call (default 60 s per call).
    :param metadata: additional gRPC metadata sent with every call.
    :param gcp_conn_id: the Google Cloud connection (see
        :mod:`airflow.providers.resumable.hooks.dataproc` for the extras supported). (templated)
    :param impersonation_chain: a service account to impersonate, or a chain of them, as upstream.
        (templated)
    :param asynchronous: return once the job is submitted (or reconnected), without waiting; it is
        still submitted exactly once.
    :param deferrable: poll from the triggerer once the job is submitted (the submission stays in
        the worker, under the ledger). Defaults to ``[operators] default_deferrable``, as upstream.
    :param polling_interval_seconds: seconds between status polls (must be > 0). Upstream uses it
        only when deferred; here it paces the worker's own polling (``poll_interval``).
    :param cancel_on_kill: cancel the job when the task is stopped by a person or hits
        ``execution_timeout`` (default). A worker shutdown never cancels, whatever this says.
    :param wait_timeout: fail the task if the job is still going this many seconds after this
        attempt started waiting for it (the job is not cancelled, as upstream). Counted per attempt.
    :param start_from_trigger: accepted for parity and ignored: the job is always submitted from the
        worker, under the ledger, so that it is submitted exactly once.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent job information into the
        job's Spark properties, as upstream (needs ``apache-airflow-providers-google`` installed;
        skipped with a warning otherwise). Defaults to ``[openlineage] spark_inject_parent_job_info``.
    :param openlineage_inject_transport_info: inject OpenLineage transport information, likewise.
        Defaults to ``[openlineage] spark_inject_transport_info``.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator`
        arguments (``durable``, ``on_prior_failure``, ``resume_after``, ``poll_interval``,
        ``max_poll_interval``) and ``BaseOperator`` arguments.
    """

    ledger_kind = "dataproc.submit_job"
    trigger_class = dataproc_triggers.ResumableDataprocJobTrigger
    _hook_class = DataprocJobHook
    job_noun = "job"
    template_fields: Sequence[str] = (
        "project_id",
        "region",
        "job",
        "gcp_conn_id",
        "impersonation_chain",
        "request_id",
    )
    template_fields_renderers = {"job": "json"}
    operator_extra_links = (ResumableDataprocJobLink(),)

    def __init__(
        self,
        *,
        job: dict[str, Any],
        polling_interval_seconds: int = 10,
        cancel_on_kill: bool = True,
        wait_timeout: int | None = None,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(polling_interval_seconds=polling_interval_seconds, **kwargs)
        self.job = job
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_stop = cancel_on_kill
        self.wait_timeout = wait_timeout
        self.start_from_trigger = start_from_trigger
        self.job_id: str | None = None
        """The Dataproc job this attempt follows, as upstream keeps it."""
        if wait_timeout and not self.asynchronous:
            # Counted per attempt from the start of its wait, as upstream counts it.
            self.poll_budget = PollBudget(max_seconds=float(wait_timeout))

    def build_submission(self, context: Context) -> dataproc_v1.Job:
        """Validate ``job`` and the ids and resolve the project. No Dataproc call."""
        self._resolve_common()
        try:
            job = dataproc_v1.Job(copy.deepcopy(self.job))
        except (TypeError, ValueError, KeyError) as err:
            raise AirflowFailException(f"Invalid Dataproc job for task {self.task_id!r}: {err}") from err
        job = self._with_openlineage(job, context, "inject_openlineage_properties_into_dataproc_job", "job")
        if not any(dataproc_v1.Job.pb(job).HasField(kind) for kind in JOB_TYPES):
            raise AirflowFailException(
                f"Task {self.task_id!r} gives Dataproc nothing to run: set one of {', '.join(JOB_TYPES)} in job"
            )
        if not job.placement.cluster_name and not job.placement.cluster_labels:
            raise AirflowFailException(f"Task {self.task_id!r}: job.placement must name a cluster_name")
        job_id = job.reference.job_id
        if job_id and not JOB_ID_PATTERN.match(job_id):
            raise AirflowFailException(
                f"job.reference.job_id must be 1-{MAX_JOB_ID_LENGTH} characters of [A-Za-z0-9_-], got {job_id!r}"
            )
        return job

    def submit(self, submission: dataproc_v1.Job, idempotency_key: str, *, resend: bool) -> str:
        return str(
            self.hook.submit(submission, idempotency_key, task_id=self.task_id, request_id=self.request_id)
        )

    def on_poll_budget_spent(self, external_id: str, state: JobState, spent: str) -> NoReturn:
        # As upstream: the job is left running.
        raise AirflowException(f"Timeout: dataproc job {external_id} is not ready after {self.wait_timeout}s")

    def on_job_known(self, external_id: str, context: Context) -> None:
        self.job_id = external_id
        # Pushed whatever do_xcom_push says, as upstream's link does.
        context["ti"].xcom_push(
            key=ResumableDataprocJobLink.key,
            value={"job_id": external_id, "region": self.region, "project_id": self.project},
        )
        self.log.info("Dataproc job %s: %s", external_id, self.hook.link(external_id))

    def result(self, external_id: str, state: JobState) -> str:
        """The job id, as upstream returns it."""
        return external_id

    def result_without_waiting(self, external_id: str) -> str:
        """The job id, as upstream returns it when ``asynchronous``."""
        return external_id


class ResumableDataprocCreateBatchOperator(_DataprocOperator):
    """
    Create a Dataproc Serverless batch exactly once, and survive the worker dying.

    A drop-in replacement for the Google provider's ``DataprocCreateBatchOperator``: same
    arguments and meaning, same template fields, the batch returned as a dict (``Batch.to_dict``),
    the same "Dataproc Batch" link and the same ``airflow-dag-id``/``airflow-task-id`` labels.

    - The batch is created with ``request_id`` = the ledger key and, unless you give ``batch_id``
      (or ``batch_id_prefix``), ``batch_id`` = ``<task slug>-<key>``, both written to the task state
      store before the call. A re-send after a crash or a lost answer gets the same operation back
      (or ``ALREADY_EXISTS`` for the batch id, and the batch is fetched): one batch.
    - A worker shutdown leaves the batch running and checkpoints; the next attempt reconnects. A
      person's stop or ``execution_timeout`` cancels it, through the cancel of its creation
      operation (the only batch cancel the API offers).

    **Idempotency trade-off.** A ``batch_id`` or ``request_id`` you set is sent as given; after a
    real failure the next generation cannot create a new batch under it, and the task fails saying
    so. ``batch_id_prefix`` is retry-safe here too: its ``<prefix>-<8 hex>`` suffix is derived from
    the key (upstream draws it at random on every attempt, so a crashed attempt's batch is orphaned).

    :param region: the Dataproc region. (templated)
    :param project_id: the project; defaults to the connection's. (templated)
    :param batch: the batch, a dict of the ``google.cloud.dataproc_v1.Batch`` form (or a ``Batch``).
        (templated)
    :param batch_id: the batch id (4-63 of ``[a-z0-9-]``, starting with a letter); defaults to one
        derived from the ledger key. (templated)
    :param batch_id_prefix: derive the id as ``<prefix>-<8 hex>`` (hex from the key); exclusive with
        ``batch_id`` and ``request_id``, as upstream. (templated)
    :param request_id: sent instead of the ledger key (see the trade-off); at most 40 characters.
    :param num_retries_if_resource_is_not_ready: when the batch fails because "the resource is not
        ready", delete it and create it again under the same id, up to this many times, as upstream.
    :param retry: a ``google.api_core.retry.Retry`` for every client call (default: this operator's
        backoff instead of the library's retry).
    :param timeout: seconds for one client call (default 60 s per call).
    :param metadata: additional gRPC metadata sent with every call.
    :param gcp_conn_id: the Google Cloud connection. (templated)
    :param impersonation_chain: a service account to impersonate, or a chain of them. (templated)
    :param result_retry: accepted for parity; upstream's synchronous path does not use it either.
    :param asynchronous: return the batch (as a dict) once it is created, without waiting.
    :param deferrable: poll from the triggerer once the batch is created. Defaults to
        ``[operators] default_deferrable``, as upstream.
    :param polling_interval_seconds: seconds between status polls (must be > 0); upstream uses it
        only when deferred.
    :param openlineage_inject_parent_job_info: as upstream, when the Google provider is installed
        (skipped with a warning otherwise).
    :param openlineage_inject_transport_info: as upstream, likewise.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    ledger_kind = "dataproc.create_batch"
    trigger_class = dataproc_triggers.ResumableDataprocBatchTrigger
    _hook_class = DataprocBatchHook
    job_noun = "batch"
    template_fields: Sequence[str] = (
        "project_id",
        "batch",
        "batch_id",
        "batch_id_prefix",
        "region",
        "gcp_conn_id",
        "impersonation_chain",
    )
    operator_extra_links = (ResumableDataprocBatchLink(),)

    def __init__(
        self,
        *,
        batch: dict[str, Any] | dataproc_v1.Batch,
        batch_id: str | None = None,
        batch_id_prefix: str | None = None,
        num_retries_if_resource_is_not_ready: int = 0,
        result_retry: Any = DEFAULT,
        polling_interval_seconds: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(polling_interval_seconds=polling_interval_seconds, **kwargs)
        self.batch = batch
        self.batch_id = batch_id
        self.batch_id_prefix = batch_id_prefix
        self.num_retries_if_resource_is_not_ready = num_retries_if_resource_is_not_ready
        self.result_retry = result_retry
        self._recreations = 0
        self._submitted_key: str | None = None

    def build_submission(self, context: Context) -> dataproc_v1.Batch:
        """Validate the batch and its id options, add upstream's labels. No Dataproc call."""
        self._resolve_common()
        if self.batch_id and self.batch_id_prefix:
            raise AirflowFailException("batch_id and batch_id_prefix are mutually exclusive")
        if self.batch_id_prefix and self.request_id:
            raise AirflowFailException("batch_id_prefix and request_id are mutually exclusive")
        if self.batch_id and not BATCH_ID_PATTERN.match(self.batch_id):
            raise AirflowFailException(
                f"batch_id must be 4-63 characters of [a-z0-9-] starting with a letter, got {self.batch_id!r}"
            )
        if self.batch_id_prefix:
            example = prefixed_batch_id(self.batch_id_prefix, "0" * 32 + "-0")
            if not BATCH_ID_PATTERN.match(example):
                raise AirflowFailException(
                    f"batch_id_prefix {self.batch_id_prefix!r} does not make a valid batch id ({example!r}): "
                    f"at most {MAX_BATCH_ID_LENGTH - BATCH_ID_PREFIX_SUFFIX_LENGTH - 1} characters of [a-z0-9-], "
                    "starting with a letter"
                )
        try:
            batch = dataproc_v1.Batch(copy.deepcopy(self.batch))
        except (TypeError, ValueError, KeyError) as err:
            raise AirflowFailException(f"Invalid Dataproc batch for task {self.task_id!r}: {err}") from err
        if not any(dataproc_v1.Batch.pb(batch).HasField(kind) for kind in BATCH_TYPES):
            raise AirflowFailException(
                f"Task {self.task_id!r} gives Dataproc nothing to run: set one of {', '.join(BATCH_TYPES)} in batch"
            )
        batch = self._with_openlineage(
            batch, context, "inject_openlineage_properties_into_dataproc_batch", "batch"
        )
        dag = getattr(self, "_dag", None)
        add_airflow_labels(batch, self.dag_id, self.task_id, getattr(dag, "dag_display_name", None))
        return batch

    def _batch_id_for(self, idempotency_key: str) -> str:
        if self.batch_id:
            return self.batch_id
        if self.batch_id_prefix:
            return prefixed_batch_id(self.batch_id_prefix, idempotency_key)
        return derive_batch_id(idempotency_key, self.task_id)

    def submit(self, submission: dataproc_v1.Batch, idempotency_key: str, *, resend: bool) -> str:
        self._submitted_key = idempotency_key
        batch_id = self._batch_id_for(idempotency_key)
        return str(
            self.hook.create(submission, idempotency_key, batch_id=batch_id, request_id=self.request_id)
        )

    def on_job_known(self, external_id: str, context: Context) -> None:
        context["ti"].xcom_push(
            key=ResumableDataprocBatchLink.key,
            value={"project_id": self.project, "region": self.region, "batch_id": external_id},
        )
        self.log.info("Dataproc batch %s: %s", external_id, self.hook.link(external_id))

    def result(self, external_id: str, state: JobState) -> dict[str, Any]:
        """The batch as a dict (``Batch.to_dict``), as upstream returns it."""
        batch = self.hook.last_batch
        if batch is None or not batch.name.endswith(f"/batches/{external_id}"):
            batch = self._call(lambda: self.hook.get(external_id), what=f"get batch {external_id}")
        return dict(dataproc_v1.Batch.to_dict(batch))

    def result_without_waiting(self, external_id: str) -> dict[str, Any]:
        """The batch as a dict, as upstream returns it when ``asynchronous``."""
        return self.result(external_id, JobState(RemoteStatus.RUNNING, "ASYNCHRONOUS"))

    def recover(self, external_id: str, state: JobState, context: Context) -> bool:
        """``num_retries_if_resource_is_not_ready``: delete the batch and create it again, same id."""
        last = self.hook.last_batch
        message = last.state_message if last is not None else ""
        if (
            state.status is not RemoteStatus.FAILED
            or self._recreations >= self.num_retries_if_resource_is_not_ready
            or not ("The resource" in message and "is not ready" in message)
        ):
            return False
        self._recreations += 1
        assert last is not None
        self.log.warning(
            "Batch %s failed because a resource was not ready: deleting it and creating it again (%d of %d)",
            external_id,
            self._recreations,
            self.num_retries_if_resource_is_not_ready,
        )
        again = self.hook.reusable_copy(last)
        # A new request id per re-creation: the original one would hand back the deleted batch's operation.
        key = self._submitted_key or external_id
        request_id = hashlib.sha256(f"{key}/recreate/{self._recreations}".encode()).hexdigest()[
            :MAX_REQUEST_ID_LENGTH
        ]
        self._call(lambda: self.hook.delete(external_id), what=f"delete batch {external_id}")
        self._call(
            lambda: self.hook.create_again(again, external_id, request_id),
            what=f"create batch {external_id} again",
        )
        return True
