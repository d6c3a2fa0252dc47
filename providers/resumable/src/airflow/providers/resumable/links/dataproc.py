# Licensed under the Apache License, Version 2.0.
"""The Google Cloud console links of the resumable Dataproc operators: upstream's "Dataproc Job" and
"Dataproc Batch", read from the XComs the operators push.

No Google library is imported here, so the API server renders them on an install without the
``[google]`` extra (the providers manager imports every extra link the provider declares)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

CONSOLE = "https://console.cloud.google.com/dataproc"
DATAPROC_JOB_LINK = CONSOLE + "/jobs/{job_id}?region={region}&project={project_id}"
DATAPROC_BATCH_LINK = CONSOLE + "/batches/{region}/{batch_id}/monitoring?project={project_id}"


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
