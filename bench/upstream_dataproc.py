# Licensed under the Apache License, Version 2.0.
"""
Upstream's ``DataprocSubmitJobOperator`` (sync and deferrable) pointed at the bench's local Dataproc
fake: its hooks get a plain-text gRPC channel to the endpoint the connection names, the one seam a
local fake needs. The operator's, the hooks' and the trigger's logic stay upstream's.

A module of its own (not the DAG file) because the triggerer imports the deferrable trigger by its
path, ``bench.upstream_dataproc.BenchDataprocSubmitTrigger``: the bench stack puts the repository on
``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.google.cloud.hooks.dataproc import DataprocAsyncHook, DataprocHook
from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator
from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger


def _endpoint(hook: DataprocHook) -> str:
    return str(hook.get_connection(hook.gcp_conn_id).extra_dejson["api_endpoint"])


class LocalDataprocHook(DataprocHook):
    """Upstream's hook; its job client speaks plain-text gRPC to the fake the connection names."""

    def get_job_client(self, region: str | None = None) -> Any:
        import grpc
        from google.cloud.dataproc_v1 import JobControllerClient
        from google.cloud.dataproc_v1.services.job_controller.transports import JobControllerGrpcTransport

        return JobControllerClient(
            transport=JobControllerGrpcTransport(channel=grpc.insecure_channel(_endpoint(self)))
        )


class LocalDataprocAsyncHook(DataprocAsyncHook):
    """Upstream's async hook (the trigger's), with the same plain-text channel."""

    sync_hook_class = LocalDataprocHook
    _local_client: Any = None

    async def get_job_client(self, region: str | None = None) -> Any:
        if self._local_client is None:
            from asgiref.sync import sync_to_async
            from google.cloud.dataproc_v1 import JobControllerAsyncClient
            from google.cloud.dataproc_v1.services.job_controller.transports import (
                JobControllerGrpcAsyncIOTransport,
            )
            from grpc import aio

            sync_hook = await self.get_sync_hook()
            endpoint = await sync_to_async(_endpoint)(sync_hook)
            self._local_client = JobControllerAsyncClient(
                transport=JobControllerGrpcAsyncIOTransport(channel=aio.insecure_channel(endpoint))
            )
        return self._local_client


class BenchDataprocSubmitTrigger(DataprocSubmitTrigger):
    """Upstream's trigger (polling, ``on_kill`` cancel and all) with the local hooks."""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Upstream serialises its own class path; the triggerer must rebuild this one.
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__qualname__}", kwargs

    def get_async_hook(self) -> LocalDataprocAsyncHook:
        return LocalDataprocAsyncHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain
        )

    def get_sync_hook(self) -> LocalDataprocHook:
        return LocalDataprocHook(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)


class BenchDataprocSubmitJobOperator(DataprocSubmitJobOperator):
    """Upstream's operator with the transport seam above; everything else is upstream's."""

    @property
    def hook(self) -> DataprocHook | None:
        return self.__dict__.get("_bench_hook")

    @hook.setter
    def hook(self, value: DataprocHook | None) -> None:
        # execute() builds a DataprocHook; swap in the same hook with the local channel.
        self.__dict__["_bench_hook"] = (
            None if value is None else LocalDataprocHook(gcp_conn_id=self.gcp_conn_id)
        )

    def defer(self, *, trigger: Any, **kwargs: Any) -> Any:
        # execute() builds upstream's trigger; the same one, on the local channel.
        if type(trigger) is DataprocSubmitTrigger:
            trigger = BenchDataprocSubmitTrigger(**trigger.serialize()[1])
        return super().defer(trigger=trigger, **kwargs)
