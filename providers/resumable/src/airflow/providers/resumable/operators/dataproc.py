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

import contextlib
import copy
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
from airflow.sdk import BaseOperatorLink
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.execution_time.xcom import XCom
from google.api_core import exceptions as gexc
from google.api_core.gapic_v1.method import DEFAULT, _MethodDefault
from google.cloud import dataproc_v1
from google.rpc import error_details_pb2

from airflow.providers.resumable.hooks.dataproc import DEFAULT_CONN_ID, ResumableDataprocHook
from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.status import JobState, RemoteStatus

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.types import TaskInstanceKey
    from google.api_core.retry import Retry

try:
    from airflow.providers.common.compat.sdk import conf

    _OL_PARENT_DEFAULT = conf.getboolean("openlineage", "spark_inject_parent_job_info", fallback=False)
    _OL_TRANSPORT_DEFAULT = conf.getboolean("openlineage", "spark_inject_transport_info", fallback=False)
except Exception:  # pragma: no cover - configuration unreadable: upstream's fallback
    _OL_PARENT_DEFAULT = _OL_TRANSPORT_DEFAULT = False

KEY_LABEL = "airflow-resumable-key"
"""The label every job and batch carries: ``k-<ledger key>`` (label values must start with a letter)."""
MAX_LABELS = 32
MAX_REQUEST_ID_LENGTH = 40
MAX_JOB_ID_LENGTH = 100
MAX_BATCH_ID_LENGTH = 63
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
BATCH_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
BATCH_ID_PREFIX_SUFFIX_LENGTH = 8
"""Upstream's ``batch_id_prefix`` suffix length (``<prefix>-<8 hex>``)."""

CONSOLE = "https://console.cloud.google.com/dataproc"
DATAPROC_JOB_LINK = CONSOLE + "/jobs/{job_id}?region={region}&project={project_id}"
DATAPROC_BATCH_LINK = CONSOLE + "/batches/{region}/{batch_id}/monitoring?project={project_id}"

_CANCEL_TIMEOUT = 3.0
"""Seconds for one cancel call at most: a cancel on user intent must land before the supervisor's SIGKILL."""
_RPC_TIMEOUT = 60.0
"""Seconds for one call when the user gave no ``timeout`` (the library's default is 900 s)."""

_JOB = dataproc_v1.JobStatus.State
_BATCH = dataproc_v1.Batch.State
_JOB_STATUS = {
    _JOB.PENDING: RemoteStatus.PENDING,
    _JOB.SETUP_DONE: RemoteStatus.PENDING,
    _JOB.RUNNING: RemoteStatus.RUNNING,
    # A restartable job whose driver failed is restarted by Dataproc: still going.
    _JOB.ATTEMPT_FAILURE: RemoteStatus.RUNNING,
    # On its way to CANCELLED; upstream keeps waiting too.
    _JOB.CANCEL_PENDING: RemoteStatus.RUNNING,
    _JOB.CANCEL_STARTED: RemoteStatus.RUNNING,
    _JOB.DONE: RemoteStatus.SUCCEEDED,
    _JOB.ERROR: RemoteStatus.FAILED,
    _JOB.CANCELLED: RemoteStatus.CANCELLED,
}
_BATCH_STATUS = {
    _BATCH.PENDING: RemoteStatus.PENDING,
    _BATCH.RUNNING: RemoteStatus.RUNNING,
    _BATCH.CANCELLING: RemoteStatus.RUNNING,
    _BATCH.SUCCEEDED: RemoteStatus.SUCCEEDED,
    _BATCH.FAILED: RemoteStatus.FAILED,
    _BATCH.CANCELLED: RemoteStatus.CANCELLED,
    # Upstream fails the task on an unspecified terminal batch ("Batch job X unspecified").
    _BATCH.STATE_UNSPECIFIED: RemoteStatus.FAILED,
}


def _cancel_call_timeout(configured: float | None, budget: float | None) -> float:
    """A cancel call's timeout: the smallest of the user's ``timeout``, the caller's budget and 3 s."""
    return min(t for t in (configured, budget, _CANCEL_TIMEOUT) if t)


# -- ids derived from the ledger key ---------------------------------------------------------------


def _slug(task_id: str, budget: int) -> str:
    """``task_id`` as lowercase letters, digits and single hyphens, starting with a letter, <= budget."""
    slug = re.sub(r"[^a-z0-9]+", "-", task_id.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"airflow-{slug}".strip("-")
    return slug[:budget].rstrip("-")


def derive_job_id(idempotency_key: str, task_id: str) -> str:
    """
    The ``reference.job_id`` for a key: ``<task slug>-<key>``, valid for Dataproc and unique per key.

    At most 100 characters of ``[a-z0-9-]`` starting with a letter; the key (random nonce plus
    generation) makes it unique per task instance and generation, the task slug makes it readable.

    :param idempotency_key: the ledger key, ``<32 hex>-<generation>``.
    :param task_id: the task's id (any characters; only a readable prefix is taken from it).
    """
    return f"{_slug(task_id, MAX_JOB_ID_LENGTH - len(idempotency_key) - 1)}-{idempotency_key}"


def derive_batch_id(idempotency_key: str, task_id: str) -> str:
    """
    The ``batch_id`` for a key: ``<task slug>-<key>``, 4-63 characters of ``[a-z0-9-]``.

    Starts with a letter and ends with a digit, as Dataproc requires; the key is at most 40
    characters, so at least 22 are left for the slug.

    :param idempotency_key: the ledger key, ``<32 hex>-<generation>``.
    :param task_id: the task's id.
    """
    return f"{_slug(task_id, MAX_BATCH_ID_LENGTH - len(idempotency_key) - 1)}-{idempotency_key}"


def prefixed_batch_id(batch_id_prefix: str, idempotency_key: str) -> str:
    """
    Upstream's ``<batch_id_prefix>-<8 hex>``, the hex taken from the key instead of at random.

    Upstream draws a new suffix on every attempt, so a retry after a crash creates a second batch;
    derived from the key, a re-send gets the same batch id and a new generation a new one.
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:BATCH_ID_PREFIX_SUFFIX_LENGTH]
    return f"{batch_id_prefix}-{digest}"


def key_label(idempotency_key: str) -> str:
    """The value of the :data:`KEY_LABEL` label for a key."""
    return f"k-{idempotency_key}"


def labelled_by_nonce(labels: Mapping[str, str], nonce: str) -> bool:
    """Whether a job's or batch's :data:`KEY_LABEL` says any generation of ledger ``nonce`` created it."""
    return str(labels.get(KEY_LABEL, "")).startswith(key_label(nonce) + "-")


# -- state mapping ----------------------------------------------------------------------------------


def job_to_job_state(job: dataproc_v1.Job, *, link: str = "") -> JobState:
    """
    Translate a ``GetJob`` answer into the normalised status.

    ``PENDING`` and ``SETUP_DONE`` are pending; ``RUNNING``, ``ATTEMPT_FAILURE`` (a restartable
    job's driver failed and Dataproc restarts it) and the ``CANCEL_*`` states are running;
    ``DONE`` succeeded, ``ERROR`` failed, ``CANCELLED`` was cancelled. A state this code does not
    know keeps the task polling, as upstream's wait does. The message carries the status details,
    the driver output URI (where the driver's log is) and the console link.

    :param job: the job as Dataproc returned it.
    :param link: the console URL of the job, appended to the message.
    """
    state = job.status.state
    name = _JOB(state).name if state in _JOB.__members__.values() else str(int(state))
    status = _JOB_STATUS.get(state)
    raw = name
    if status is None:
        status, raw = RemoteStatus.RUNNING, f"{name} (unknown job state, treated as running)"
    parts: list[str] = []
    if job.status.details and (status.is_terminal or state == _JOB.ATTEMPT_FAILURE):
        parts.append(job.status.details)
    if job.status.substate and status.is_active:
        parts.append(f"substate {dataproc_v1.JobStatus.Substate(job.status.substate).name}")
    if job.driver_output_resource_uri and (status.is_terminal or state == _JOB.ATTEMPT_FAILURE):
        parts.append(f"driver output: {job.driver_output_resource_uri}")
    if link:
        parts.append(link)
    return JobState(status, raw, " | ".join(parts))


def batch_to_job_state(batch: dataproc_v1.Batch, *, link: str = "") -> JobState:
    """
    Translate a ``GetBatch`` answer into the normalised status.

    ``PENDING`` pending; ``RUNNING`` and ``CANCELLING`` running; ``SUCCEEDED``, ``FAILED`` and
    ``CANCELLED`` as named; ``STATE_UNSPECIFIED`` fails (as upstream). The message carries the
    ``state_message``, the driver output URI and the console link ("Driver logs" upstream).

    :param batch: the batch as Dataproc returned it.
    :param link: the console URL of the batch.
    """
    state = batch.state
    status = _BATCH_STATUS.get(state, RemoteStatus.RUNNING)
    raw = _BATCH(state).name if state in _BATCH.__members__.values() else str(int(state))
    if state not in _BATCH_STATUS:
        raw += " (unknown batch state, treated as running)"
    parts: list[str] = []
    if batch.state_message and status.is_terminal:
        parts.append(batch.state_message)
    if batch.runtime_info.output_uri and status.is_terminal:
        parts.append(f"driver output: {batch.runtime_info.output_uri}")
    if link:
        parts.append(f"driver logs: {link}")
    return JobState(status, raw, " | ".join(parts))


# -- links --------------------------------------------------------------------------------------


class _ConsoleLink(BaseOperatorLink):
    """A Google Cloud console link whose parameters the task pushed to XCom (as upstream's links)."""

    key: ClassVar[str]
    format_str: ClassVar[str]

    @property
    def xcom_key(self) -> str:
        # The same key as upstream: the task runner overwrites the parameters with the finished URL.
        return self.key

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        value = XCom.get_value(key=self.key, ti_key=ti_key)
        if isinstance(value, str):
            return value if value.startswith(("http://", "https://")) else ""
        if not isinstance(value, Mapping):
            return ""
        try:
            return self.format_str.format(**value)
        except KeyError:
            return ""


class ResumableDataprocJobLink(_ConsoleLink):
    """Upstream's "Dataproc Job" link: the job in the console, from the ``dataproc_job`` XCom."""

    name = "Dataproc Job"
    key = "dataproc_job"
    format_str = DATAPROC_JOB_LINK


class ResumableDataprocBatchLink(_ConsoleLink):
    """Upstream's "Dataproc Batch" link: the batch in the console, from the ``dataproc_batch`` XCom."""

    name = "Dataproc Batch"
    key = "dataproc_batch"
    format_str = DATAPROC_BATCH_LINK


# -- the operators ---------------------------------------------------------------------------------


class _DataprocOperator(ResumableSubmitOperator):
    """What both Dataproc operators share: clients, errors, ownership checks, OpenLineage, timeouts."""

    ui_color = "#0273d4"

    def __init__(
        self,
        *,
        region: str,
        project_id: str | None,
        request_id: str | None,
        retry: Retry | _MethodDefault,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
        gcp_conn_id: str,
        impersonation_chain: str | Sequence[str] | None,
        asynchronous: bool,
        deferrable: bool,
        polling_interval_seconds: int,
        openlineage_inject_parent_job_info: bool,
        openlineage_inject_transport_info: bool,
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
        self._project: str | None = None
        self._labelled = True

    @cached_property
    def hook(self) -> ResumableDataprocHook:
        """The connection's credentials, project and clients."""
        return ResumableDataprocHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    def _resolve_common(self) -> str:
        """Check region, request_id and project before anything is sent; return the project."""
        if not self.region:
            raise AirflowFailException(f"Task {self.task_id!r} needs a region")
        if self.request_id is not None and not REQUEST_ID_PATTERN.match(str(self.request_id)):
            raise AirflowFailException(
                f"request_id must be 1-{MAX_REQUEST_ID_LENGTH} characters of [A-Za-z0-9_-], got {self.request_id!r}"
            )
        project = self.project_id or self.hook.project_id
        if not project:
            raise AirflowFailException(
                f"Task {self.task_id!r} has no project_id, and connection {self.gcp_conn_id!r} gives none "
                "(set its 'project' extra, or pass project_id)"
            )
        self._project = str(project)
        return self._project

    @property
    def project(self) -> str:
        """The project every call goes to (resolved by ``build_submission``)."""
        if self._project is None:
            return self._resolve_common()
        return self._project

    def _rpc(self, *, timeout: float | None = None) -> dict[str, Any]:
        """
        ``retry``, ``timeout`` and ``metadata`` for one client call.

        With ``retry`` left at its default, the library's own retry is switched off (``retry=None``):
        its defaults retry for up to 900 s and cannot be interrupted, while this operator's backoff
        honours ``RetryInfo`` and wakes on a stop request. A ``retry`` you pass is used as given.
        """
        return {
            "retry": None if self.retry is DEFAULT else self.retry,
            "timeout": timeout if timeout is not None else (self.timeout or _RPC_TIMEOUT),
            "metadata": tuple(self.metadata or ()),
        }

    # -- errors -----------------------------------------------------------------------------

    def is_transient(self, error: BaseException) -> bool:
        """UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, ABORTED, an exhausted library retry."""
        if isinstance(
            error,
            (
                gexc.ServiceUnavailable,
                gexc.DeadlineExceeded,
                gexc.InternalServerError,
                gexc.TooManyRequests,
                gexc.Aborted,
                gexc.RetryError,
            ),
        ):
            return True
        code = getattr(error, "code", None)
        if isinstance(error, grpc.RpcError) and callable(code):
            return code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return super().is_transient(error)

    def retry_after(self, error: BaseException) -> float | None:
        """The ``google.rpc.RetryInfo`` delay Google APIs attach to RESOURCE_EXHAUSTED and UNAVAILABLE."""
        for detail in getattr(error, "details", None) or ():
            if isinstance(detail, error_details_pb2.RetryInfo):
                return float(detail.retry_delay.ToTimedelta().total_seconds())
        return None

    # -- ownership ------------------------------------------------------------------------------

    def _label(self, labels: Any, idempotency_key: str) -> None:
        """Add the key label if there is room (Dataproc allows 32 labels)."""
        if KEY_LABEL in labels or len(labels) < MAX_LABELS:
            labels[KEY_LABEL] = key_label(idempotency_key)
            self._labelled = True
        else:
            self._labelled = False
            self.log.warning(
                "The %s already has %d labels: not adding %s, so what Dataproc returns for it cannot be "
                "checked against this task instance's key",
                self.job_noun,
                MAX_LABELS,
                KEY_LABEL,
            )

    def _check_ours(self, labels: Any, resource: str, idempotency_key: str, *, how: str) -> None:
        """
        Refuse a job/batch Dataproc handed back that this task instance's current key did not create.

        :param labels: the returned resource's labels.
        :param resource: what it is, for the message (``"job x"``).
        :param idempotency_key: the key of the submission in progress.
        :param how: how Dataproc handed it back, for the message.
        """
        found = labels.get(KEY_LABEL)
        if found == key_label(idempotency_key) or (found is None and not self._labelled):
            return
        if found and labelled_by_nonce(labels, idempotency_key.rsplit("-", 1)[0]):
            raise AirflowFailException(
                f"Dataproc returned {resource} ({how}), which an earlier generation of this task instance "
                f"created ({KEY_LABEL}={found}); this generation needs a new {self.job_noun}, but the "
                "request_id/id you fixed makes Dataproc hand back the old one. Template them per try "
                "(e.g. with {{ ti.try_number }}) or leave them unset."
            )
        raise AirflowFailException(
            f"Dataproc returned {resource} ({how}), which this task instance did not submit "
            f"({KEY_LABEL}={found!r}, expected {key_label(idempotency_key)!r}). Not adopting someone "
            "else's work: make the request_id/id unique per run, or leave them unset."
        )

    # -- OpenLineage ----------------------------------------------------------------------------

    def _openlineage(self, payload: Any, context: Context, function: str, what: str) -> Any:
        """Upstream's injection, when the Google provider is installed; otherwise say so and go on."""
        if not (self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info):
            return payload
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
    :param deferrable: not supported: ``True`` raises when the DAG is parsed. The default is
        ``False`` whatever ``[operators] default_deferrable`` says.
    :param polling_interval_seconds: seconds between status polls (must be > 0). Upstream uses it
        only when deferred; here it paces the worker's own polling (``poll_interval``).
    :param cancel_on_kill: cancel the job when the task is stopped by a person or hits
        ``execution_timeout`` (default). A worker shutdown never cancels, whatever this says.
    :param wait_timeout: fail the task if the job is still going this many seconds after this
        attempt started waiting for it (the job is not cancelled, as upstream). Counted per attempt.
    :param start_from_trigger: only meaningful with ``deferrable=True``, which is refused.
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
        region: str,
        project_id: str | None = None,
        request_id: str | None = None,
        retry: Retry | _MethodDefault = DEFAULT,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        asynchronous: bool = False,
        deferrable: bool = False,
        polling_interval_seconds: int = 10,
        cancel_on_kill: bool = True,
        wait_timeout: int | None = None,
        start_from_trigger: bool = False,
        openlineage_inject_parent_job_info: bool = _OL_PARENT_DEFAULT,
        openlineage_inject_transport_info: bool = _OL_TRANSPORT_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            region=region,
            project_id=project_id,
            request_id=request_id,
            retry=retry,
            timeout=timeout,
            metadata=metadata,
            gcp_conn_id=gcp_conn_id,
            impersonation_chain=impersonation_chain,
            asynchronous=asynchronous,
            deferrable=deferrable,
            polling_interval_seconds=polling_interval_seconds,
            openlineage_inject_parent_job_info=openlineage_inject_parent_job_info,
            openlineage_inject_transport_info=openlineage_inject_transport_info,
            **kwargs,
        )
        self.job = job
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_stop = cancel_on_kill
        self.wait_timeout = wait_timeout
        self.start_from_trigger = start_from_trigger
        self.job_id: str | None = None
        """The Dataproc job this attempt follows, as upstream keeps it."""
        self._wait_deadline: float | None = None

    @cached_property
    def _client(self) -> dataproc_v1.JobControllerClient:
        return self.hook.job_client(self.region)

    def build_submission(self, context: Context) -> dataproc_v1.Job:
        """Validate ``job`` and the ids and resolve the project. No Dataproc call."""
        self._resolve_common()
        try:
            job = dataproc_v1.Job(copy.deepcopy(self.job))
        except (TypeError, ValueError, KeyError) as err:
            raise AirflowFailException(f"Invalid Dataproc job for task {self.task_id!r}: {err}") from err
        if self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info:
            injected = self._openlineage(
                dataproc_v1.Job.to_dict(job),
                context,
                "inject_openlineage_properties_into_dataproc_job",
                "job",
            )
            job = dataproc_v1.Job(injected)
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

    def submit(self, submission: dataproc_v1.Job, idempotency_key: str) -> str:
        job = dataproc_v1.Job(submission)
        if not job.reference.job_id:
            job.reference.job_id = derive_job_id(idempotency_key, self.task_id)
        self._label(job.labels, idempotency_key)
        job_id = job.reference.job_id
        request_id = self.request_id or idempotency_key
        try:
            created = self._client.submit_job(
                request={
                    "project_id": self.project,
                    "region": self.region,
                    "job": job,
                    "request_id": request_id,
                },
                **self._rpc(),
            )
            how = f"for request_id {request_id}"
        except gexc.AlreadyExists:
            self.log.info("Job id %s already exists: fetching it to check it is this task instance's", job_id)
            created = self._client.get_job(
                request={"project_id": self.project, "region": self.region, "job_id": job_id}, **self._rpc()
            )
            how = f"ALREADY_EXISTS for job id {job_id}"
        returned = created.reference.job_id
        self._check_ours(created.labels, f"job {returned}", idempotency_key, how=how)
        return str(returned)

    def describe(self, external_id: str) -> JobState:
        try:
            job = self._client.get_job(
                request={"project_id": self.project, "region": self.region, "job_id": external_id},
                **self._rpc(),
            )
        except gexc.NotFound as err:
            return JobState(
                RemoteStatus.NOT_FOUND, "NOT_FOUND", f"Dataproc has no job {external_id}: {err.message}"
            )
        state = job_to_job_state(job, link=self._link(external_id))
        if (
            self._wait_deadline is not None
            and state.status.is_active
            and time.monotonic() > self._wait_deadline
        ):
            raise AirflowException(
                f"Timeout: dataproc job {external_id} is not ready after {self.wait_timeout}s"
            )
        return state

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        try:
            self._client.cancel_job(
                request={"project_id": self.project, "region": self.region, "job_id": external_id},
                **self._rpc(timeout=_cancel_call_timeout(self.timeout, timeout)),
            )
        except (gexc.NotFound, gexc.FailedPrecondition) as err:
            self.log.info(
                "Job %s cannot be cancelled (%s): it has ended or is gone", external_id, err.message
            )

    def on_job_known(self, external_id: str, context: Context) -> None:
        self.job_id = external_id
        if self.wait_timeout and not self.asynchronous:
            self._wait_deadline = time.monotonic() + self.wait_timeout
        # Pushed whatever do_xcom_push says, as upstream's link does.
        context["ti"].xcom_push(
            key=ResumableDataprocJobLink.key,
            value={"job_id": external_id, "region": self.region, "project_id": self.project},
        )
        self.log.info("Dataproc job %s: %s", external_id, self._link(external_id))

    def result(self, external_id: str, state: JobState) -> str:
        """The job id, as upstream returns it."""
        return external_id

    def execute(self, context: Context) -> Any:
        """Submit (or reconnect) and wait; return the job id, as upstream, waited for or not."""
        returned = super().execute(context)
        return self.job_id if self.asynchronous else returned

    def _link(self, job_id: str) -> str:
        return DATAPROC_JOB_LINK.format(job_id=job_id, region=self.region, project_id=self.project)


JOB_TYPES = (
    # The ``Job`` fields that say what to run: exactly one must be set.
    "hadoop_job",
    "spark_job",
    "pyspark_job",
    "hive_job",
    "pig_job",
    "spark_r_job",
    "spark_sql_job",
    "presto_job",
    "trino_job",
    "flink_job",
)
_BATCH_OUTPUT_ONLY = (
    "name",
    "uuid",
    "create_time",
    "state",
    "state_message",
    "state_time",
    "creator",
    "operation",
    "state_history",
    "runtime_info",
)
_BATCH_TYPES = ("pyspark_batch", "spark_batch", "spark_r_batch", "spark_sql_batch", "pyspark_notebook_batch")


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
    :param deferrable: not supported: ``True`` raises when the DAG is parsed; the default is
        ``False`` whatever ``[operators] default_deferrable`` says.
    :param polling_interval_seconds: seconds between status polls (must be > 0); upstream uses it
        only when deferred.
    :param openlineage_inject_parent_job_info: as upstream, when the Google provider is installed
        (skipped with a warning otherwise).
    :param openlineage_inject_transport_info: as upstream, likewise.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    ledger_kind = "dataproc.create_batch"
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
        region: str,
        project_id: str | None = None,
        batch: dict[str, Any] | dataproc_v1.Batch,
        batch_id: str | None = None,
        batch_id_prefix: str | None = None,
        request_id: str | None = None,
        num_retries_if_resource_is_not_ready: int = 0,
        retry: Retry | _MethodDefault = DEFAULT,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        result_retry: Any = DEFAULT,
        asynchronous: bool = False,
        deferrable: bool = False,
        polling_interval_seconds: int = 5,
        openlineage_inject_parent_job_info: bool = _OL_PARENT_DEFAULT,
        openlineage_inject_transport_info: bool = _OL_TRANSPORT_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            region=region,
            project_id=project_id,
            request_id=request_id,
            retry=retry,
            timeout=timeout,
            metadata=metadata,
            gcp_conn_id=gcp_conn_id,
            impersonation_chain=impersonation_chain,
            asynchronous=asynchronous,
            deferrable=deferrable,
            polling_interval_seconds=polling_interval_seconds,
            openlineage_inject_parent_job_info=openlineage_inject_parent_job_info,
            openlineage_inject_transport_info=openlineage_inject_transport_info,
            **kwargs,
        )
        self.batch = batch
        self.batch_id = batch_id
        self.batch_id_prefix = batch_id_prefix
        self.num_retries_if_resource_is_not_ready = num_retries_if_resource_is_not_ready
        self.result_retry = result_retry
        self._last_batch: dataproc_v1.Batch | None = None
        self._recreations = 0
        self._submitted_key: str | None = None

    @cached_property
    def _client(self) -> dataproc_v1.BatchControllerClient:
        return self.hook.batch_client(self.region)

    @property
    def _parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def _name(self, batch_id: str) -> str:
        return f"{self._parent}/batches/{batch_id}"

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
        if not any(dataproc_v1.Batch.pb(batch).HasField(kind) for kind in _BATCH_TYPES):
            raise AirflowFailException(
                f"Task {self.task_id!r} gives Dataproc nothing to run: set one of {', '.join(_BATCH_TYPES)} in batch"
            )
        if self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info:
            injected = self._openlineage(
                dataproc_v1.Batch.to_dict(batch),
                context,
                "inject_openlineage_properties_into_dataproc_batch",
                "batch",
            )
            batch = dataproc_v1.Batch(injected)
        self._add_airflow_labels(batch)
        return batch

    def _add_airflow_labels(self, batch: dataproc_v1.Batch) -> None:
        """Upstream's ``airflow-dag-id`` / ``airflow-task-id`` (/ display name) labels, same rules."""
        pattern = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
        dag_id = re.sub(r"[^a-z0-9-]", "-", (self.dag_id or "").lower())
        task_id = re.sub(r"[^a-z0-9-]", "-", self.task_id.lower())
        if not pattern.match(dag_id) or not pattern.match(task_id):
            return
        new = {"airflow-dag-id": dag_id, "airflow-task-id": task_id}
        dag = getattr(self, "_dag", None)
        if dag is not None:
            display = re.sub(r"[^a-z0-9-]", "-", str(getattr(dag, "dag_display_name", "")).lower())
            if pattern.match(display):
                new["airflow-dag-display-name"] = display
        # One slot is kept for the key label, which matters more than these.
        if len(batch.labels) + len(new) <= MAX_LABELS - 1:
            batch.labels.update(new)

    def _batch_id_for(self, idempotency_key: str) -> str:
        if self.batch_id:
            return self.batch_id
        if self.batch_id_prefix:
            return prefixed_batch_id(self.batch_id_prefix, idempotency_key)
        return derive_batch_id(idempotency_key, self.task_id)

    def submit(self, submission: dataproc_v1.Batch, idempotency_key: str) -> str:
        batch = dataproc_v1.Batch(submission)
        self._label(batch.labels, idempotency_key)
        batch_id = self._batch_id_for(idempotency_key)
        request_id = self.request_id or idempotency_key
        self._submitted_key = idempotency_key
        try:
            operation = self._client.create_batch(
                request={
                    "parent": self._parent,
                    "batch": batch,
                    "batch_id": batch_id,
                    "request_id": request_id,
                },
                **self._rpc(),
            )
        except gexc.AlreadyExists:
            self.log.info(
                "Batch %s already exists: fetching it to check it is this task instance's", batch_id
            )
            found = self._get(batch_id)
            self._check_ours(
                found.labels, f"batch {batch_id}", idempotency_key, how=f"ALREADY_EXISTS for {batch_id}"
            )
            return batch_id
        created_id = str(operation.metadata.batch).rsplit("/", 1)[-1] if operation.metadata else batch_id
        if self.request_id:
            # A request_id you fixed may bring back another run's operation: look before adopting.
            found = self._get(created_id)
            self._check_ours(
                found.labels, f"batch {created_id}", idempotency_key, how=f"for request_id {request_id}"
            )
        return created_id

    def _get(self, batch_id: str) -> dataproc_v1.Batch:
        batch = self._client.get_batch(request={"name": self._name(batch_id)}, **self._rpc())
        self._last_batch = batch
        return batch

    def describe(self, external_id: str) -> JobState:
        try:
            batch = self._get(external_id)
        except gexc.NotFound as err:
            return JobState(
                RemoteStatus.NOT_FOUND, "NOT_FOUND", f"Dataproc has no batch {external_id}: {err.message}"
            )
        return batch_to_job_state(batch, link=self._link(external_id))

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        # Two calls share the budget: the second gets what the first left.
        deadline = time.monotonic() + _cancel_call_timeout(self.timeout, timeout)
        try:
            batch = self._client.get_batch(
                request={"name": self._name(external_id)},
                **self._rpc(timeout=deadline - time.monotonic()),
            )
            if not batch.operation:
                self.log.info("Batch %s has no operation to cancel", external_id)
                return
            self._client.transport.operations_client.cancel_operation(
                batch.operation,
                timeout=max(deadline - time.monotonic(), 0.1),
                metadata=tuple(self.metadata or ()),
            )
        except (gexc.NotFound, gexc.FailedPrecondition) as err:
            self.log.info(
                "Batch %s cannot be cancelled (%s): it has ended or is gone", external_id, err.message
            )

    def on_job_known(self, external_id: str, context: Context) -> None:
        context["ti"].xcom_push(
            key=ResumableDataprocBatchLink.key,
            value={"project_id": self.project, "region": self.region, "batch_id": external_id},
        )
        self.log.info("Dataproc batch %s: %s", external_id, self._link(external_id))

    def result(self, external_id: str, state: JobState) -> dict[str, Any]:
        """The batch as a dict (``Batch.to_dict``), as upstream returns it."""
        batch = self._last_batch
        if batch is None or not batch.name.endswith(f"/batches/{external_id}"):
            batch = self._call(lambda: self._get(external_id), what=f"get batch {external_id}")
        return dict(dataproc_v1.Batch.to_dict(batch))

    def execute(self, context: Context) -> Any:
        """Create (or reconnect) and wait; return the batch as a dict, waited for or not (as upstream)."""
        returned = super().execute(context)
        if self.asynchronous and self._job_id is not None:
            job_id = self._job_id
            return self.result(job_id, JobState(RemoteStatus.RUNNING, "ASYNCHRONOUS"))
        return returned

    def recover(self, external_id: str, state: JobState) -> bool:
        """``num_retries_if_resource_is_not_ready``: delete the batch and create it again, same id."""
        message = self._last_batch.state_message if self._last_batch is not None else ""
        if (
            state.status is not RemoteStatus.FAILED
            or self._recreations >= self.num_retries_if_resource_is_not_ready
            or not ("The resource" in message and "is not ready" in message)
        ):
            return False
        self._recreations += 1
        assert self._last_batch is not None
        self.log.warning(
            "Batch %s failed because a resource was not ready: deleting it and creating it again (%d of %d)",
            external_id,
            self._recreations,
            self.num_retries_if_resource_is_not_ready,
        )
        again = dataproc_v1.Batch(self._last_batch)
        for output_only in _BATCH_OUTPUT_ONLY:
            dataproc_v1.Batch.pb(again).ClearField(output_only)
        # A new request id per re-creation: the original one would hand back the deleted batch's operation.
        key = self._submitted_key or external_id
        request_id = hashlib.sha256(f"{key}/recreate/{self._recreations}".encode()).hexdigest()[
            :MAX_REQUEST_ID_LENGTH
        ]
        self._call(
            lambda: self._client.delete_batch(request={"name": self._name(external_id)}, **self._rpc()),
            what=f"delete batch {external_id}",
        )

        def create() -> None:
            # ALREADY_EXISTS: a re-send of this very re-creation reached Dataproc.
            with contextlib.suppress(gexc.AlreadyExists):
                self._client.create_batch(
                    request={
                        "parent": self._parent,
                        "batch": again,
                        "batch_id": external_id,
                        "request_id": request_id,
                    },
                    **self._rpc(),
                )

        self._call(create, what=f"create batch {external_id} again")
        return True

    def _link(self, batch_id: str) -> str:
        return DATAPROC_BATCH_LINK.format(region=self.region, batch_id=batch_id, project_id=self.project)
