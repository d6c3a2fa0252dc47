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

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import google.auth
import grpc
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException
from google.auth import credentials as auth_credentials
from google.auth import impersonated_credentials
from google.cloud import dataproc_v1
from google.cloud.dataproc_v1.services.batch_controller.transports import BatchControllerGrpcTransport
from google.cloud.dataproc_v1.services.job_controller.transports import JobControllerGrpcTransport
from google.oauth2 import service_account

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
