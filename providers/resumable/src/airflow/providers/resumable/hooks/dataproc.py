# Licensed under the Apache License, Version 2.0.
"""
Google Cloud credentials and Dataproc clients from a ``gcp_conn_id``, without the Google provider.

**What it is for.** The resumable Dataproc operators call the real ``google-cloud-dataproc`` clients
(``JobControllerClient``, ``BatchControllerClient``). The Google provider's ``DataprocHook`` would
build them, but that provider pulls in well over a hundred packages; this module resolves the same
connection the same way for the subset of its options listed below, and builds the clients.

**How it works.** The connection named by ``gcp_conn_id`` (conn type ``google_cloud_platform``)
is read through Airflow's secrets backends. Its extras are read with or without the historical
``extra__google_cloud_platform__`` prefix, as the Google provider reads them:

======================  ==========================================================================
extra                   meaning
======================  ==========================================================================
``key_path``            path to a service-account JSON key file on the worker
``keyfile_dict``        the service-account JSON key itself (a JSON string or a mapping)
``project``             the default project (else the key's ``project_id``, else ADC's project)
``scope``               comma-separated OAuth scopes (default ``cloud-platform``)
``is_anonymous``        ``true``: anonymous credentials (public resources only)
``api_endpoint``        ``host:port`` to call instead of ``<region>-dataproc.googleapis.com:443``
``insecure``            ``true`` with ``api_endpoint``: plain-text gRPC and no credentials, for a
                        local server such as :mod:`airflow.providers.resumable.testing.dataproc`
======================  ==========================================================================

With neither ``key_path`` nor ``keyfile_dict``, Application Default Credentials are used
(``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud user credentials, or the metadata server on GCP).
``impersonation_chain`` (a service account, or a chain of them) wraps those credentials in
``google.auth.impersonated_credentials``, the last account being the one the calls run as.

**What it does not do.** Unsupported, unlike the Google provider: ``credential_config_file``
(workload identity federation), ``key_secret_name``/``key_secret_project_id`` (keys in Secret
Manager), an ``impersonation_chain`` read from the connection, ``num_retries``, and universe
domains other than ``googleapis.com``. A connection that sets any of those is refused with an
error naming the extra, never silently ignored.

**Known limitation.** A missing ``google_cloud_default`` connection falls back to ADC (so a
worker with workload identity needs no connection at all); any other missing connection id is an
error, as it is for the Google provider.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

from airflow.providers.resumable.extras import missing_extra

try:
    import google.auth
    import grpc
    from google.api_core import exceptions as gexc
    from google.api_core.gapic_v1.method import DEFAULT, _MethodDefault
    from google.auth import credentials as auth_credentials
    from google.auth import impersonated_credentials
    from google.cloud import dataproc_v1
    from google.cloud.dataproc_v1.services.batch_controller.transports import (
        BatchControllerGrpcAsyncIOTransport,
        BatchControllerGrpcTransport,
    )
    from google.cloud.dataproc_v1.services.job_controller.transports import (
        JobControllerGrpcAsyncIOTransport,
        JobControllerGrpcTransport,
    )
    from google.oauth2 import service_account
    from google.rpc import error_details_pb2
except ImportError as err:
    raise missing_extra("google", err) from err

from airflow.providers.resumable.hooks.errors import is_transient_http
from airflow.providers.resumable.links.dataproc import DATAPROC_BATCH_LINK, DATAPROC_JOB_LINK
from airflow.providers.resumable.status import JobState, RemoteStatus

if TYPE_CHECKING:
    from google.api_core.retry import Retry

DEFAULT_CONN_ID = "google_cloud_default"
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_LEGACY_PREFIX = "extra__google_cloud_platform__"
_UNSUPPORTED_EXTRAS = (
    "credential_config_file",
    "key_secret_name",
    "key_secret_project_id",
    "impersonation_chain",
    "universe_domain",
)


def _truthy(value: Any) -> bool:
    # Extras from a URI are strings; from JSON they may be real booleans.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class ResumableDataprocHook(BaseHook):
    """
    Credentials, project and Dataproc clients for one ``gcp_conn_id`` (see the module docstring).

    :param gcp_conn_id: the Airflow connection to read (type ``google_cloud_platform``).
    :param impersonation_chain: a service account to impersonate, or a chain of them; each must
        grant the one before it (the first: the connection's identity) the Service Account Token
        Creator role. The last one is the identity the calls are made as.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "google_cloud_platform"
    hook_name = "Google Cloud (resumable Dataproc)"

    def __init__(
        self,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain

    # -- the connection -----------------------------------------------------------------------

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The connection's extras with the legacy prefix removed (``{}`` for ADC without a connection)."""
        try:
            raw = self.get_connection(self.gcp_conn_id).extra_dejson
        except AirflowNotFoundException:
            if self.gcp_conn_id != DEFAULT_CONN_ID:
                raise
            self.log.info(
                "No connection %r: using Application Default Credentials and their project", DEFAULT_CONN_ID
            )
            return {}
        extras = {key.removeprefix(_LEGACY_PREFIX): value for key, value in raw.items()}
        unsupported = [key for key in _UNSUPPORTED_EXTRAS if extras.get(key)]
        if unsupported:
            raise AirflowException(
                f"Connection {self.gcp_conn_id!r} sets {', '.join(unsupported)}, which the resumable "
                "Dataproc operators do not support (see airflow.providers.resumable.hooks.dataproc). "
                "Use key_path, keyfile_dict or Application Default Credentials, and pass "
                "impersonation_chain to the operator."
            )
        return extras

    @property
    def api_endpoint(self) -> str | None:
        """The ``api_endpoint`` extra, if set."""
        value = self.extras.get("api_endpoint")
        return str(value) if value else None

    @property
    def insecure(self) -> bool:
        """Whether to call ``api_endpoint`` over plain-text gRPC without credentials (local servers)."""
        return _truthy(self.extras.get("insecure"))

    @cached_property
    def scopes(self) -> tuple[str, ...]:
        """The OAuth scopes to request."""
        raw = self.extras.get("scope")
        if not raw:
            return DEFAULT_SCOPES
        return tuple(s.strip() for s in str(raw).split(",") if s.strip())

    # -- credentials and project --------------------------------------------------------------

    @cached_property
    def _credentials_and_project(self) -> tuple[auth_credentials.Credentials, str | None]:
        extras = self.extras
        if self.insecure:
            # Nothing authenticates a plain-text local channel; sending a token over it would leak it.
            return auth_credentials.AnonymousCredentials(), extras.get("project") or None
        project: str | None
        credentials: auth_credentials.Credentials
        if _truthy(extras.get("is_anonymous")):
            credentials, project = auth_credentials.AnonymousCredentials(), None
        elif extras.get("key_path"):
            path = str(extras["key_path"])
            if path.endswith(".p12"):
                raise AirflowException(
                    f"Connection {self.gcp_conn_id!r}: legacy P12 key files are not supported"
                )
            from_file = service_account.Credentials.from_service_account_file(path, scopes=self.scopes)
            credentials, project = from_file, from_file.project_id
        elif extras.get("keyfile_dict"):
            info = extras["keyfile_dict"]
            if isinstance(info, str):
                try:
                    info = json.loads(info)
                except json.JSONDecodeError as err:
                    raise AirflowException(
                        f"Connection {self.gcp_conn_id!r}: keyfile_dict is not valid JSON ({err.msg})"
                    ) from None
            if not isinstance(info, Mapping):
                raise AirflowException(f"Connection {self.gcp_conn_id!r}: keyfile_dict must be a JSON object")
            from_info = service_account.Credentials.from_service_account_info(dict(info), scopes=self.scopes)
            credentials, project = from_info, from_info.project_id
        else:
            credentials, project = google.auth.default(scopes=list(self.scopes))
        if self.impersonation_chain:
            chain = (
                [self.impersonation_chain]
                if isinstance(self.impersonation_chain, str)
                else list(self.impersonation_chain)
            )
            credentials = impersonated_credentials.Credentials(
                source_credentials=credentials,
                target_principal=chain[-1],
                delegates=chain[:-1],
                target_scopes=list(self.scopes),
            )
        return credentials, extras.get("project") or project

    @property
    def credentials(self) -> auth_credentials.Credentials:
        """The credentials calls are made with (impersonated if ``impersonation_chain`` is set)."""
        return self._credentials_and_project[0]

    @property
    def project_id(self) -> str | None:
        """The connection's ``project`` extra, else the key's or ADC's project, else ``None``."""
        return self._credentials_and_project[1]

    # -- clients --------------------------------------------------------------------------------

    def endpoint_for(self, region: str) -> str | None:
        """
        Where to send requests for ``region``: the ``api_endpoint`` extra, else the regional endpoint.

        As the Google provider: ``<region>-dataproc.googleapis.com:443`` for a regional request,
        the library's global default for ``region="global"``.
        """
        if self.api_endpoint:
            return self.api_endpoint
        if region and region != "global":
            return f"{region}-dataproc.googleapis.com:443"
        return None

    def _channel_kwargs(self, region: str) -> dict[str, Any]:
        endpoint = self.endpoint_for(region)
        if self.insecure:
            if not endpoint:
                raise AirflowException(f"Connection {self.gcp_conn_id!r} sets insecure without api_endpoint")
            return {"channel": grpc.insecure_channel(endpoint)}
        kwargs: dict[str, Any] = {"credentials": self.credentials}
        if endpoint:
            kwargs["host"] = endpoint
        return kwargs

    def job_client(self, region: str) -> dataproc_v1.JobControllerClient:
        """A ``JobControllerClient`` for ``region``."""
        return dataproc_v1.JobControllerClient(
            transport=JobControllerGrpcTransport(**self._channel_kwargs(region))
        )

    def batch_client(self, region: str) -> dataproc_v1.BatchControllerClient:
        """A ``BatchControllerClient`` for ``region`` (its transport also carries the operations client)."""
        return dataproc_v1.BatchControllerClient(
            transport=BatchControllerGrpcTransport(**self._channel_kwargs(region))
        )


# ==================================================================================================
# Jobs and batches: what goes over the wire, the ids derived from the ledger key, the labels that
# say whose a job is, the state translation and the error classification.
# ==================================================================================================

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
BATCH_TYPES = ("pyspark_batch", "spark_batch", "spark_r_batch", "spark_sql_batch", "pyspark_notebook_batch")
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

CANCEL_TIMEOUT = 3.0
"""Seconds for one cancel call at most: a cancel on user intent must land before the supervisor's SIGKILL."""
RPC_TIMEOUT = 60.0
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


def cancel_call_timeout(configured: float | None, budget: float | None) -> float:
    """A cancel call's timeout: the smallest of the user's ``timeout``, the caller's budget and 3 s."""
    return min(t for t in (configured, budget, CANCEL_TIMEOUT) if t)


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

    :param batch_id_prefix: the user's prefix.
    :param idempotency_key: the ledger key.
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:BATCH_ID_PREFIX_SUFFIX_LENGTH]
    return f"{batch_id_prefix}-{digest}"


def key_label(idempotency_key: str) -> str:
    """The value of the :data:`KEY_LABEL` label for a key."""
    return f"k-{idempotency_key}"


def labelled_by_nonce(labels: Mapping[str, str], nonce: str) -> bool:
    """Whether a job's or batch's :data:`KEY_LABEL` says any generation of ledger ``nonce`` created it."""
    return str(labels.get(KEY_LABEL, "")).startswith(key_label(nonce) + "-")


def add_airflow_labels(
    batch: dataproc_v1.Batch, dag_id: str | None, task_id: str, dag_display_name: str | None = None
) -> None:
    """
    Upstream's ``airflow-dag-id`` / ``airflow-task-id`` (/ display name) labels, same rules; one
    label slot is kept for :data:`KEY_LABEL`, which matters more than these.

    :param batch: the batch to label (changed in place).
    :param dag_id: the DAG's id.
    :param task_id: the task's id.
    :param dag_display_name: the DAG's display name, if any.
    """
    pattern = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
    dag = re.sub(r"[^a-z0-9-]", "-", (dag_id or "").lower())
    task = re.sub(r"[^a-z0-9-]", "-", task_id.lower())
    if not pattern.match(dag) or not pattern.match(task):
        return
    new = {"airflow-dag-id": dag, "airflow-task-id": task}
    if dag_display_name is not None:
        display = re.sub(r"[^a-z0-9-]", "-", str(dag_display_name).lower())
        if pattern.match(display):
            new["airflow-dag-display-name"] = display
    if len(batch.labels) + len(new) <= MAX_LABELS - 1:
        batch.labels.update(new)


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


def is_transient(error: BaseException) -> bool:
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
    return is_transient_http(error)


def retry_after(error: BaseException) -> float | None:
    """The ``google.rpc.RetryInfo`` delay Google APIs attach to RESOURCE_EXHAUSTED and UNAVAILABLE."""
    for detail in getattr(error, "details", None) or ():
        if isinstance(detail, error_details_pb2.RetryInfo):
            return float(detail.retry_delay.ToTimedelta().total_seconds())
    return None


HOOK_ARGUMENTS = (
    "gcp_conn_id",
    "impersonation_chain",
    "region",
    "project_id",
    "timeout",
    "metadata",
    "retry",
)
"""What the Dataproc operators and these hooks take to reach one region and project, by name."""


class _DataprocCalls(ResumableDataprocHook):
    """
    One region and project of Dataproc, with the call options and ownership checks both APIs share.

    :param gcp_conn_id: the Google Cloud connection.
    :param impersonation_chain: a service account to impersonate, or a chain of them.
    :param region: the Dataproc region.
    :param project_id: the project; the connection's when ``None``.
    :param timeout: seconds for one call (default 60 s).
    :param metadata: additional gRPC metadata sent with every call.
    :param retry: a ``google.api_core.retry.Retry`` for every call (default: none; the caller retries).
    """

    noun = "job"

    def __init__(
        self,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        *,
        region: str,
        project_id: str | None = None,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        retry: Retry | _MethodDefault = DEFAULT,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain)
        self.region = region
        self.requested_project = project_id
        self.timeout = timeout
        self.metadata = tuple(metadata or ())
        self.retry = retry

    def params(self) -> dict[str, Any]:
        """The arguments that rebuild this hook elsewhere (JSON-serialisable; ``retry`` is left out)."""
        chain = self.impersonation_chain
        return {
            "gcp_conn_id": self.gcp_conn_id,
            "impersonation_chain": chain if chain is None or isinstance(chain, str) else list(chain),
            "region": self.region,
            "project_id": self.requested_project or self.project_id,
            "timeout": self.timeout,
            "metadata": [list(pair) for pair in self.metadata],
        }

    @property
    def project(self) -> str:
        """The project calls go to: the one asked for, else the connection's."""
        project = self.requested_project or self.project_id
        if not project:
            raise AirflowFailException(
                f"No project_id given, and connection {self.gcp_conn_id!r} gives none "
                "(set its 'project' extra, or pass project_id)"
            )
        return str(project)

    def rpc(self, *, timeout: float | None = None) -> dict[str, Any]:
        """
        ``retry``, ``timeout`` and ``metadata`` for one client call.

        With ``retry`` left at its default, the library's own retry is switched off (``retry=None``):
        its defaults retry for up to 900 s and cannot be interrupted, while the caller's backoff
        honours ``RetryInfo`` and wakes on a stop request. A ``retry`` given is used as given.
        """
        return {
            "retry": None if self.retry is DEFAULT else self.retry,
            "timeout": timeout if timeout is not None else (self.timeout or RPC_TIMEOUT),
            "metadata": self.metadata,
        }

    is_transient = staticmethod(is_transient)
    retry_after = staticmethod(retry_after)

    def label(self, labels: Any, idempotency_key: str) -> bool:
        """Add the key label if there is room (Dataproc allows 32 labels); whether it was added."""
        if KEY_LABEL in labels or len(labels) < MAX_LABELS:
            labels[KEY_LABEL] = key_label(idempotency_key)
            return True
        self.log.warning(
            "The %s already has %d labels: not adding %s, so what Dataproc returns for it cannot be "
            "checked against this task instance's key",
            self.noun,
            MAX_LABELS,
            KEY_LABEL,
        )
        return False

    def check_ours(
        self, labels: Any, resource: str, idempotency_key: str, *, labelled: bool, how: str
    ) -> None:
        """
        Refuse a job/batch Dataproc handed back that this task instance's current key did not create.

        :param labels: the returned resource's labels.
        :param resource: what it is, for the message (``"job x"``).
        :param idempotency_key: the key of the submission in progress.
        :param labelled: whether the submission carried the key label.
        :param how: how Dataproc handed it back, for the message.
        """
        found = labels.get(KEY_LABEL)
        if found == key_label(idempotency_key) or (found is None and not labelled):
            return
        if found and labelled_by_nonce(labels, idempotency_key.rsplit("-", 1)[0]):
            raise AirflowFailException(
                f"Dataproc returned {resource} ({how}), which an earlier generation of this task instance "
                f"created ({KEY_LABEL}={found}); this generation needs a new {self.noun}, but the "
                "request_id/id you fixed makes Dataproc hand back the old one. Template them per try "
                "(e.g. with {{ ti.try_number }}) or leave them unset."
            )
        raise AirflowFailException(
            f"Dataproc returned {resource} ({how}), which this task instance did not submit "
            f"({KEY_LABEL}={found!r}, expected {key_label(idempotency_key)!r}). Not adopting someone "
            "else's work: make the request_id/id unique per run, or leave them unset."
        )

    def _async_transport_kwargs(self) -> dict[str, Any]:
        endpoint = self.endpoint_for(self.region)
        if self.insecure:
            assert endpoint is not None  # _channel_kwargs refuses insecure without an endpoint
            return {"channel": grpc.aio.insecure_channel(endpoint)}
        kwargs: dict[str, Any] = {"credentials": self.credentials}
        if endpoint:
            kwargs["host"] = endpoint
        return kwargs

    async def _a_call(
        self, transport_class: Any, client_class: Any, method: str, request: dict[str, Any]
    ) -> Any:
        """One call over the library's native asyncio gRPC client, on a channel of its own, closed after."""
        transport = transport_class(**self._async_transport_kwargs())
        try:
            return await getattr(client_class(transport=transport), method)(request=request, **self.rpc())
        finally:
            await transport.close()

    # -- describe: the same NOT_FOUND translation for jobs and batches, each fetching its own way --

    def describe(self, external_id: str) -> JobState:
        """The job's (or batch's) normalised status; ``NOT_FOUND`` if Dataproc has no such one."""
        try:
            found = self._get(external_id)
        except gexc.NotFound as err:
            return JobState.not_found(f"Dataproc has no {self.noun} {external_id}: {err.message}")
        return self._job_state(found, external_id)

    async def a_describe(self, external_id: str) -> JobState:
        """:meth:`describe` over the library's native asyncio gRPC client (a channel per call)."""
        try:
            found = await self._a_get(external_id)
        except gexc.NotFound as err:
            return JobState.not_found(f"Dataproc has no {self.noun} {external_id}: {err.message}")
        return self._job_state(found, external_id)

    def _get(self, external_id: str) -> Any:
        """The job or batch resource (``GetJob`` / ``GetBatch``)."""
        raise NotImplementedError

    async def _a_get(self, external_id: str) -> Any:
        """:meth:`_get` over the asyncio client."""
        raise NotImplementedError

    def _job_state(self, found: Any, external_id: str) -> JobState:
        """The resource :meth:`_get` returned, normalised."""
        raise NotImplementedError


class DataprocJobHook(_DataprocCalls):
    """
    Dataproc jobs on a cluster (JobController), submitted once under a ``request_id`` and a job id
    derived from the ledger key.

    Takes the arguments of :class:`_DataprocCalls`.
    """

    noun = "job"

    @cached_property
    def client(self) -> dataproc_v1.JobControllerClient:
        """The synchronous ``JobControllerClient`` for the region."""
        return self.job_client(self.region)

    def _where(self, job_id: str) -> dict[str, str]:
        return {"project_id": self.project, "region": self.region, "job_id": job_id}

    def submit(
        self, job: dataproc_v1.Job, idempotency_key: str, *, task_id: str, request_id: str | None = None
    ) -> str:
        """
        ``SubmitJob`` under the key: ``request_id`` = the key (unless given) and, unless the job names
        one, ``reference.job_id`` derived from the key; ``ALREADY_EXISTS`` fetches the job. What
        Dataproc hands back is adopted only if it carries this key's label.
        """
        job = dataproc_v1.Job(job)
        if not job.reference.job_id:
            job.reference.job_id = derive_job_id(idempotency_key, task_id)
        labelled = self.label(job.labels, idempotency_key)
        job_id = job.reference.job_id
        request_id = request_id or idempotency_key
        try:
            created = self.client.submit_job(
                request={
                    "project_id": self.project,
                    "region": self.region,
                    "job": job,
                    "request_id": request_id,
                },
                **self.rpc(),
            )
            how = f"for request_id {request_id}"
        except gexc.AlreadyExists:
            self.log.info("Job id %s already exists: fetching it to check it is this task instance's", job_id)
            created = self.client.get_job(request=self._where(job_id), **self.rpc())
            how = f"ALREADY_EXISTS for job id {job_id}"
        returned = created.reference.job_id
        self.check_ours(created.labels, f"job {returned}", idempotency_key, labelled=labelled, how=how)
        return str(returned)

    def link(self, job_id: str) -> str:
        """The job's console URL."""
        return DATAPROC_JOB_LINK.format(job_id=job_id, region=self.region, project_id=self.project)

    def _get(self, job_id: str) -> dataproc_v1.Job:
        return self.client.get_job(request=self._where(job_id), **self.rpc())

    async def _a_get(self, job_id: str) -> dataproc_v1.Job:
        return await self._a_call(
            JobControllerGrpcAsyncIOTransport,
            dataproc_v1.JobControllerAsyncClient,
            "get_job",
            self._where(job_id),
        )

    def _job_state(self, job: dataproc_v1.Job, job_id: str) -> JobState:
        return job_to_job_state(job, link=self.link(job_id))

    def cancel(self, job_id: str, *, timeout: float | None = None) -> None:
        """``CancelJob`` within ``timeout`` (and at most 3 s); a job that has ended or is gone is left."""
        try:
            self.client.cancel_job(
                request=self._where(job_id), **self.rpc(timeout=cancel_call_timeout(self.timeout, timeout))
            )
        except (gexc.NotFound, gexc.FailedPrecondition) as err:
            self.log.info("Job %s cannot be cancelled (%s): it has ended or is gone", job_id, err.message)


class DataprocBatchHook(_DataprocCalls):
    """
    Dataproc Serverless batches (BatchController), created once under a ``request_id`` and a batch
    id derived from the ledger key.

    Takes the arguments of :class:`_DataprocCalls`.
    """

    noun = "batch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_batch: dataproc_v1.Batch | None = None
        """The batch the last :meth:`get` returned (for the task's result and re-creation)."""

    @cached_property
    def client(self) -> dataproc_v1.BatchControllerClient:
        """The synchronous ``BatchControllerClient`` for the region."""
        return self.batch_client(self.region)

    @property
    def parent(self) -> str:
        """``projects/<project>/locations/<region>``."""
        return f"projects/{self.project}/locations/{self.region}"

    def name_of(self, batch_id: str) -> str:
        """The batch's resource name."""
        return f"{self.parent}/batches/{batch_id}"

    def link(self, batch_id: str) -> str:
        """The batch's console URL."""
        return DATAPROC_BATCH_LINK.format(region=self.region, batch_id=batch_id, project_id=self.project)

    def create(
        self, batch: dataproc_v1.Batch, idempotency_key: str, *, batch_id: str, request_id: str | None = None
    ) -> str:
        """
        ``CreateBatch`` under the key (``request_id`` = the key unless given); ``ALREADY_EXISTS``
        fetches the batch. What Dataproc hands back is adopted only if it carries this key's label.
        """
        batch = dataproc_v1.Batch(batch)
        labelled = self.label(batch.labels, idempotency_key)
        sent_request_id = request_id or idempotency_key
        try:
            operation = self.client.create_batch(
                request={
                    "parent": self.parent,
                    "batch": batch,
                    "batch_id": batch_id,
                    "request_id": sent_request_id,
                },
                **self.rpc(),
            )
        except gexc.AlreadyExists:
            self.log.info(
                "Batch %s already exists: fetching it to check it is this task instance's", batch_id
            )
            self._check_batch_is_ours(
                batch_id, idempotency_key, labelled, how=f"ALREADY_EXISTS for {batch_id}"
            )
            return batch_id
        created_id = str(operation.metadata.batch).rsplit("/", 1)[-1] if operation.metadata else batch_id
        if request_id:
            # A request_id the user fixed may bring back another run's operation: look before adopting.
            how = f"for request_id {sent_request_id}"
            self._check_batch_is_ours(created_id, idempotency_key, labelled, how=how)
        return created_id

    def _check_batch_is_ours(self, batch_id: str, idempotency_key: str, labelled: bool, *, how: str) -> None:
        found = self.get(batch_id)
        self.check_ours(found.labels, f"batch {batch_id}", idempotency_key, labelled=labelled, how=how)

    def get(self, batch_id: str) -> dataproc_v1.Batch:
        """``GetBatch``; remembered as :attr:`last_batch`."""
        batch = self.client.get_batch(request={"name": self.name_of(batch_id)}, **self.rpc())
        self.last_batch = batch
        return batch

    def _get(self, batch_id: str) -> dataproc_v1.Batch:
        return self.get(batch_id)

    async def _a_get(self, batch_id: str) -> dataproc_v1.Batch:
        return await self._a_call(
            BatchControllerGrpcAsyncIOTransport,
            dataproc_v1.BatchControllerAsyncClient,
            "get_batch",
            {"name": self.name_of(batch_id)},
        )

    def _job_state(self, batch: dataproc_v1.Batch, batch_id: str) -> JobState:
        return batch_to_job_state(batch, link=self.link(batch_id))

    def cancel(self, batch_id: str, *, timeout: float | None = None) -> None:
        """Cancel the batch's creation operation (the only batch cancel the API offers), within budget."""
        # Two calls share the budget: the second gets what the first left.
        deadline = time.monotonic() + cancel_call_timeout(self.timeout, timeout)
        try:
            batch = self.client.get_batch(
                request={"name": self.name_of(batch_id)}, **self.rpc(timeout=deadline - time.monotonic())
            )
            if not batch.operation:
                self.log.info("Batch %s has no operation to cancel", batch_id)
                return
            self.client.transport.operations_client.cancel_operation(
                batch.operation, timeout=max(deadline - time.monotonic(), 0.1), metadata=self.metadata
            )
        except (gexc.NotFound, gexc.FailedPrecondition) as err:
            self.log.info("Batch %s cannot be cancelled (%s): it has ended or is gone", batch_id, err.message)

    def delete(self, batch_id: str) -> None:
        """``DeleteBatch``."""
        self.client.delete_batch(request={"name": self.name_of(batch_id)}, **self.rpc())

    @staticmethod
    def reusable_copy(batch: dataproc_v1.Batch) -> dataproc_v1.Batch:
        """``batch`` without its output-only fields, to create it again."""
        again = dataproc_v1.Batch(batch)
        for output_only in _BATCH_OUTPUT_ONLY:
            dataproc_v1.Batch.pb(again).ClearField(output_only)
        return again

    def create_again(self, batch: dataproc_v1.Batch, batch_id: str, request_id: str) -> None:
        """
        Create ``batch`` again under ``batch_id`` after :meth:`delete` (upstream's
        ``num_retries_if_resource_is_not_ready``). ``ALREADY_EXISTS`` means a re-send of this very
        call landed. ``request_id`` must be new per re-creation: the original one would hand back
        the deleted batch's operation.
        """
        with contextlib.suppress(gexc.AlreadyExists):
            self.client.create_batch(
                request={
                    "parent": self.parent,
                    "batch": batch,
                    "batch_id": batch_id,
                    "request_id": request_id,
                },
                **self.rpc(),
            )
