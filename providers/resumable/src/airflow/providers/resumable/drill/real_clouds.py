# Licensed under the Apache License, Version 2.0.
"""
The drill against your own workspace, account or project: job specs, connections and accounting.

**What it is for.** ``airflow-resumable drill --conn databricks=my_databricks --job
databricks=job.json`` runs the drill's SIGTERM/SIGKILL disruptions on real jobs, so a platform team
sees exactly-once hold on its own cloud, not only on the fakes.

**How it works.** Everything the user gives is checked before anything starts (:func:`real_targets`):
each job spec against :func:`validate_job_spec`, each connection id resolved through
``BaseHook.get_connection`` in this process (``AIRFLOW_CONN_*``, a secrets backend or the metadata
DB, whatever this deployment uses). The drill hands the connection to its private stack as an
``AIRFLOW_CONN_RESUMABLE_DRILL_<CLOUD>`` variable (never on disk, never printed) and the spec as
``RESUMABLE_DRILL_JOB_<CLOUD>``. Afterwards the adapters below count through the cloud's own API,
with the same real clients the operators use: Databricks runs listed by the run name the drill
gives each run, EMR steps by the key tag the operator writes into their names (the operator's own
listing), Dataproc jobs by the key label the operator sets. A cancellation is a cancelled final
state: a real API does not report who asked.

**What it does not do.** Fault injection (throttling, 5xx, lost responses, a submit held open): a
real cloud cannot be made to misbehave on cue, so those kinds are refused. It does not clean up:
every disruption starts one real job, which runs to its end.

**Known limitation.** A duplicate is only seen if it carries what the adapter looks for (the run
name, the key tag or label): the operators always write it, a second submission by anything else
would not be attributed to the drill.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.resumable.drill.naming import drill_run_name
from airflow.providers.resumable.hooks.databricks import SINGLE_TASK_KEYS
from airflow.providers.resumable.hooks.dataproc import JOB_TYPES as DATAPROC_JOB_TYPES
from airflow.providers.resumable.hooks.emr import emr_submissions
from airflow.providers.resumable.testing.protocols import DrilledTask, FaultInjector

REAL_CLOUDS = ("databricks", "emr", "dataproc")
"""The clouds a drill can run against a real deployment."""
REAL_RUN_TIMEOUT = 3600.0
"""Seconds a real job may take, from trigger to end (a cluster may have to scale up first)."""
REAL_POLL_SECONDS = 5.0
"""How often the drill asks a real cloud about a job: gentle on rate limits."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far a cloud's clock may run behind this machine's when listing jobs newer than a trigger."""

_DATAPROC_JOB_TYPES = frozenset(DATAPROC_JOB_TYPES)
_EMR_CLUSTER_ID = re.compile(r"^j-[0-9A-Z]+$")


class DrillConfigError(ValueError):
    """A drill against a real deployment was asked for with something missing or wrong. Nothing started."""


# -- job specs ---------------------------------------------------------------------------------


def validate_job_spec(cloud: str, spec: Any) -> dict[str, Any]:
    """
    Check what the user wants run on ``cloud``; return it unchanged, or raise :class:`DrillConfigError`.

    - ``databricks``: a ``runs/submit`` body (the operator's ``json``): ``tasks``, or one ``*_task``
      with its cluster (``existing_cluster_id``/``new_cluster``; none for serverless). No
      ``run_name`` (the drill names each run after its DAG run, to count it) and no
      ``idempotency_token`` (the ledger's key must be sent).
    - ``emr``: ``job_flow_id`` (``j-...``), ``steps`` (``AddJobFlowSteps`` entries), optionally
      ``execution_role_arn``.
    - ``dataproc``: ``region``, ``job`` (a ``Job`` with ``placement.cluster_name`` and one
      ``*_job``), optionally ``project_id`` (default: the connection's project). No ``request_id``
      or ``reference.job_id``: each disruption needs a new job.

    :param cloud: one of :data:`REAL_CLOUDS`.
    :param spec: the decoded JSON.
    """
    if cloud not in REAL_CLOUDS:
        raise DrillConfigError(f"unknown cloud {cloud!r}; known: {', '.join(REAL_CLOUDS)}")
    if not isinstance(spec, dict):
        raise DrillConfigError(f"the {cloud} job spec must be a JSON object, got {type(spec).__name__}")
    problems = {"databricks": _databricks_problems, "emr": _emr_problems, "dataproc": _dataproc_problems}[
        cloud
    ](spec)
    if problems:
        raise DrillConfigError(f"the {cloud} job spec is not usable: " + "; ".join(problems))
    return spec


def _databricks_problems(spec: dict[str, Any]) -> list[str]:
    problems = [
        f"remove {key!r}: {why}"
        for key, why in (
            ("run_name", "the drill names every run drill-<dag run id> to count it"),
            ("idempotency_token", "the drill must send the ledger's key"),
        )
        if key in spec
    ]
    tasks = spec.get("tasks")
    single = sorted(frozenset(SINGLE_TASK_KEYS) & spec.keys())
    if tasks is not None and single:
        problems.append(f"give either 'tasks' or {single[0]!r}, not both")
    elif tasks is not None and not (
        isinstance(tasks, list) and tasks and all(isinstance(t, dict) for t in tasks)
    ):
        problems.append("'tasks' must be a non-empty list of task objects")
    elif tasks is None and len(single) != 1:
        problems.append(
            "give 'tasks' or exactly one of "
            + ", ".join(sorted(frozenset(SINGLE_TASK_KEYS)))
            + f" (got {single or 'none'})"
        )
    return problems


def _emr_problems(spec: dict[str, Any]) -> list[str]:
    problems = [
        f"unknown key {key!r}" for key in sorted(spec.keys() - {"job_flow_id", "steps", "execution_role_arn"})
    ]
    if not (isinstance(spec.get("job_flow_id"), str) and _EMR_CLUSTER_ID.match(spec["job_flow_id"])):
        problems.append(
            f"'job_flow_id' must be a cluster id like j-2AXXXXXXGAPLF, got {spec.get('job_flow_id')!r}"
        )
    steps = spec.get("steps")
    if not (isinstance(steps, list) and steps):
        problems.append("'steps' must be a non-empty list of AddJobFlowSteps entries")
    else:
        for i, step in enumerate(steps, start=1):
            jar = step.get("HadoopJarStep") if isinstance(step, dict) else None
            if not (
                isinstance(step, dict)
                and isinstance(step.get("Name"), str)
                and isinstance(jar, dict)
                and jar.get("Jar")
            ):
                problems.append(f"step {i} needs a string 'Name' and a 'HadoopJarStep' with a 'Jar'")
    return problems


def _dataproc_problems(spec: dict[str, Any]) -> list[str]:
    problems = [f"unknown key {key!r}" for key in sorted(spec.keys() - {"region", "project_id", "job"})]
    if not (isinstance(spec.get("region"), str) and spec["region"]):
        problems.append("'region' is required (e.g. europe-west1)")
    if "project_id" in spec and not (isinstance(spec["project_id"], str) and spec["project_id"]):
        problems.append("'project_id' must be a non-empty string (or left out for the connection's project)")
    job = spec.get("job")
    if not isinstance(job, dict):
        problems.append("'job' is required: a Dataproc Job with placement.cluster_name and one *_job")
        return problems
    if not (isinstance(job.get("placement"), dict) and job["placement"].get("cluster_name")):
        problems.append("'job.placement.cluster_name' is required: the drill lists that cluster's jobs")
    kinds = sorted(_DATAPROC_JOB_TYPES & job.keys())
    if len(kinds) != 1:
        problems.append(
            "'job' needs exactly one of "
            + ", ".join(sorted(_DATAPROC_JOB_TYPES))
            + f" (got {kinds or 'none'})"
        )
    if (job.get("reference") or {}).get("job_id"):
        problems.append("remove 'job.reference.job_id': each disruption needs a new job")
    if "request_id" in spec or "request_id" in job:
        problems.append("remove 'request_id': the drill must send the ledger's key")
    return problems


def load_job_spec(cloud: str, path: Path) -> dict[str, Any]:
    """
    Read and validate a job spec file (JSON).

    :param cloud: the cloud it is for.
    :param path: the file.
    """
    try:
        spec = json.loads(path.read_text())
    except OSError as err:
        raise DrillConfigError(f"cannot read the {cloud} job spec {path}: {err.strerror or err}") from err
    except json.JSONDecodeError as err:
        raise DrillConfigError(f"the {cloud} job spec {path} is not JSON: {err}") from err
    return validate_job_spec(cloud, spec)


# -- connections -------------------------------------------------------------------------------


def resolve_connection(cloud: str, conn_id: str) -> Any:
    """
    The connection ``conn_id`` as this deployment resolves it; a :class:`DrillConfigError` naming the
    id (and nothing of its content) when it cannot be.

    Outside a task and outside Airflow's servers, ``BaseHook.get_connection`` reads only
    ``AIRFLOW_CONN_*`` and the configured secrets backend, never the metadata DB; the drill runs on
    an Airflow host, so a connection kept in the metadata DB is looked up there next.

    :param cloud: the cloud it is for (for the message).
    :param conn_id: the connection id.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    def unresolvable(err: Exception) -> DrillConfigError:
        return DrillConfigError(
            f"cannot resolve the {cloud} connection {conn_id!r} ({type(err).__name__}); define it where "
            f"this process can see it: AIRFLOW_CONN_{conn_id.upper()}, your secrets backend, or the "
            "metadata DB of the Airflow configured here"
        )

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        pass
    except Exception as err:  # a secrets backend down, a malformed AIRFLOW_CONN_*: say which, not what
        raise unresolvable(err) from None  # the cause may quote the connection's URI, secrets included
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)
    except Exception as err:
        raise unresolvable(err) from None


def connection_env_value(connection: Any) -> str:
    """The connection as an ``AIRFLOW_CONN_*`` JSON value (what Airflow's environment backend reads)."""
    fields = {
        "conn_type": connection.conn_type,
        "host": connection.host,
        "login": connection.login,
        "password": connection.password,
        "schema": connection.schema,
        "port": connection.port,
        "extra": connection.extra_dejson or None,
    }
    return json.dumps({key: value for key, value in fields.items() if value not in (None, "")})


@dataclass(frozen=True)
class RealTarget:
    """
    One cloud of a drill against a real deployment, checked and resolved.

    :param cloud: one of :data:`REAL_CLOUDS`.
    :param conn_id: the user's connection id (resolvable in this process).
    :param job: the validated job spec.
    :param connection: the resolved connection (kept out of ``repr``: it holds secrets).
    """

    cloud: str
    conn_id: str
    job: dict[str, Any]
    connection: Any = field(repr=False)

    def describe(self) -> str:
        """A line for people: no host, no login, no secret."""
        return f"{self.cloud}: your deployment, through connection {self.conn_id!r} ({self.connection.conn_type})"


def real_targets(conns: Mapping[str, str], jobs: Mapping[str, Path]) -> dict[str, RealTarget]:
    """
    Check every ``--conn``/``--job`` pair before anything starts.

    :param conns: cloud -> connection id.
    :param jobs: cloud -> job spec file.
    """
    unknown = sorted((conns.keys() | jobs.keys()) - set(REAL_CLOUDS))
    if unknown:
        raise DrillConfigError(f"unknown cloud {', '.join(unknown)}; known: {', '.join(REAL_CLOUDS)}")
    if no_job := sorted(conns.keys() - jobs.keys()):
        cloud = no_job[0]
        raise DrillConfigError(
            f"--conn {cloud}=... needs --job {cloud}=<file.json>: what to run on your {cloud}"
        )
    if no_conn := sorted(jobs.keys() - conns.keys()):
        cloud = no_conn[0]
        raise DrillConfigError(f"--job {cloud}=... needs --conn {cloud}=<connection id>: where to run it")
    specs = {cloud: load_job_spec(cloud, jobs[cloud]) for cloud in conns}
    return {
        cloud: RealTarget(cloud, conn_id, specs[cloud], resolve_connection(cloud, conn_id))
        for cloud, conn_id in conns.items()
    }


# -- the adapters ------------------------------------------------------------------------------


class _RealCloud:
    """What every real adapter shares: no faults, gentle polling, a long run timeout."""

    name: str
    poll_seconds = REAL_POLL_SECONDS
    run_timeout = REAL_RUN_TIMEOUT

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._connection: Any = None

    @property
    def faults(self) -> FaultInjector | None:
        return None

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        """The user's connection as a REST body; fetched once, from this process's deployment."""
        if self._connection is None:
            self._connection = resolve_connection(self.name, self.conn_id)
        body = json.loads(connection_env_value(self._connection))
        if isinstance(body.get("extra"), dict):
            body["extra"] = json.dumps(body["extra"])
        return {"connection_id": conn_id or self.conn_id, **body}


class RealDatabricksCloud(_RealCloud):
    """
    A Databricks workspace, through ``DatabricksHook`` (Jobs API 2.2).

    :param conn_id: a ``databricks`` connection this process resolves.
    :param run_name: the run name of a DAG run's task (the drill's: ``drill-<run id>``); the Jobs API
        keeps no idempotency token to list by, so a run is attributed by its name.
    """

    name = "databricks"

    def __init__(self, conn_id: str, *, run_name: Callable[[str], str] = drill_run_name) -> None:
        super().__init__(conn_id)
        self.run_name = run_name

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        return DatabricksHook(databricks_conn_id=self.conn_id, retry_limit=5, retry_delay=2)

    def jobs_of(self, task: DrilledTask) -> list[str]:
        name = self.run_name(task.run_id)
        return [str(run["run_id"]) for run in self._runs_since(task.since) if run.get("run_name") == name]

    def _runs_since(self, since: datetime) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "run_type": "SUBMIT_RUN",
            "start_time_from": int((since - CLOCK_SKEW).timestamp() * 1000),
            "limit": 25,
        }
        while True:
            page = self.hook._do_api_call(("GET", "2.2/jobs/runs/list"), params)
            yield from page.get("runs", [])
            if not page.get("has_more") or not page.get("next_page_token"):
                return
            params["page_token"] = page["next_page_token"]

    def is_running(self, external_id: str) -> bool:
        return self.hook.get_run(int(external_id))["state"]["life_cycle_state"] == "RUNNING"

    def cancellations_of(self, external_id: str) -> int:
        state = self.hook.get_run(int(external_id))["state"]
        return int(state.get("result_state") == "CANCELED")


class RealEmrCloud(_RealCloud):
    """
    An EMR cluster, through boto3 (``AwsBaseHook``: the connection, or boto3's default chain).

    :param conn_id: an ``aws`` connection this process resolves.
    :param cluster_id: the cluster the steps are added to.
    """

    name = "emr"

    def __init__(self, conn_id: str, *, cluster_id: str) -> None:
        super().__init__(conn_id)
        self.cluster_id = cluster_id

    @cached_property
    def client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.conn_id, client_type="emr").conn

    def jobs_of(self, task: DrilledTask) -> list[str]:
        from airflow.providers.resumable.hooks.emr import steps_newest_first

        steps = steps_newest_first(self.client, self.cluster_id, since=task.since)
        return emr_submissions(self.cluster_id, steps, task.nonce)

    def _states(self, external_id: str) -> list[str]:
        from airflow.providers.resumable.hooks.emr import StepIds

        ids = StepIds.parse(external_id)
        steps = self.client.list_steps(ClusterId=ids.cluster_id, StepIds=list(ids.step_ids[:10]))["Steps"]
        return [step["Status"]["State"] for step in steps]

    def is_running(self, external_id: str) -> bool:
        return "RUNNING" in self._states(external_id)

    def cancellations_of(self, external_id: str) -> int:
        return int(any(state in ("CANCEL_PENDING", "CANCELLED") for state in self._states(external_id)))


class RealEmrServerlessCloud(_RealCloud):
    """
    An EMR Serverless application, through boto3. Job runs keep no client token to list by, so a
    run is attributed by its name.

    :param conn_id: an ``aws`` connection this process resolves.
    :param application_id: the application.
    :param run_name: the job run name of a DAG run's task.
    """

    name = "emr_serverless"

    def __init__(self, conn_id: str, *, application_id: str, run_name: Callable[[str], str]) -> None:
        super().__init__(conn_id)
        self.application_id = application_id
        self.run_name = run_name

    @cached_property
    def client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.conn_id, client_type="emr-serverless").conn

    def jobs_of(self, task: DrilledTask) -> list[str]:
        name = self.run_name(task.run_id)
        # A day back, not CLOCK_SKEW: moto keeps createdAt at day resolution (midnight), and the name
        # filter is exact anyway; the window only bounds the paging.
        pages = self.client.get_paginator("list_job_runs").paginate(
            applicationId=self.application_id, createdAtAfter=task.since - timedelta(days=1)
        )
        return [run["id"] for page in pages for run in page["jobRuns"] if run.get("name") == name]

    def _state(self, external_id: str) -> str:
        run = self.client.get_job_run(applicationId=self.application_id, jobRunId=external_id)["jobRun"]
        return str(run["state"])

    def is_running(self, external_id: str) -> bool:
        return self._state(external_id) == "RUNNING"

    def cancellations_of(self, external_id: str) -> int:
        return int(self._state(external_id) in ("CANCELLING", "CANCELLED"))


class RealDataprocCloud(_RealCloud):
    """
    A Dataproc cluster, through the JobController gRPC client of
    :class:`~airflow.providers.resumable.hooks.dataproc.ResumableDataprocHook`.

    :param conn_id: a ``google_cloud_platform`` connection this process resolves.
    :param region: the cluster's region.
    :param cluster_name: the cluster whose jobs are listed.
    :param project_id: the project (default: the connection's).
    """

    name = "dataproc"

    def __init__(
        self, conn_id: str, *, region: str, cluster_name: str, project_id: str | None = None
    ) -> None:
        super().__init__(conn_id)
        self.region = region
        self.cluster_name = cluster_name
        self._project_id = project_id

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.resumable.hooks.dataproc import ResumableDataprocHook

        return ResumableDataprocHook(gcp_conn_id=self.conn_id)

    @cached_property
    def client(self) -> Any:
        return self.hook.job_client(self.region)

    @property
    def project_id(self) -> str:
        project = self._project_id or self.hook.project_id
        if not project:
            raise DrillConfigError(
                f"connection {self.conn_id!r} gives no project: set project_id in the job spec"
            )
        return str(project)

    def jobs_of(self, task: DrilledTask) -> list[str]:
        from airflow.providers.resumable.hooks.dataproc import labelled_by_nonce

        jobs = self.client.list_jobs(
            request={"project_id": self.project_id, "region": self.region, "cluster_name": self.cluster_name}
        )
        return [job.reference.job_id for job in jobs if labelled_by_nonce(job.labels, task.nonce)]

    def _state(self, external_id: str) -> str:
        job = self.client.get_job(
            request={"project_id": self.project_id, "region": self.region, "job_id": external_id}
        )
        return str(job.status.state.name)

    def is_running(self, external_id: str) -> bool:
        return self._state(external_id) == "RUNNING"

    def cancellations_of(self, external_id: str) -> int:
        return int(self._state(external_id) in ("CANCEL_PENDING", "CANCEL_STARTED", "CANCELLED"))


def real_cloud(target: RealTarget) -> RealDatabricksCloud | RealEmrCloud | RealDataprocCloud:
    """The adapter the drill accounts for ``target``'s jobs with."""
    job = target.job
    cloud: RealDatabricksCloud | RealEmrCloud | RealDataprocCloud
    if target.cloud == "databricks":
        cloud = RealDatabricksCloud(target.conn_id)
    elif target.cloud == "emr":
        cloud = RealEmrCloud(target.conn_id, cluster_id=job["job_flow_id"])
    else:
        cloud = RealDataprocCloud(
            target.conn_id,
            region=job["region"],
            cluster_name=job["job"]["placement"]["cluster_name"],
            project_id=job.get("project_id"),
        )
    cloud._connection = target.connection  # already resolved: once is enough
    return cloud
