# Licensed under the Apache License, Version 2.0.
"""
OpenLineage context injected into a Databricks request body, as upstream's operators inject it.

The same steps and the same policy as upstream: lineage never fails a run, so an injection that
raises is logged and the body is sent as it was.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.databricks.operators import databricks as upstream
except ImportError as err:
    raise missing_extra("databricks", err) from err

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


def into_submit_run(
    json: dict[str, Any],
    context: Context,
    *,
    inject_parent_job_info: bool,
    inject_transport_info: bool,
    log: logging.Logger | Any,
) -> dict[str, Any]:
    """
    ``runs/submit``: the parent job's facet into each task's parameters, then Spark properties.

    :param json: the merged, validated request body.
    :param context: the task's context.
    :param inject_parent_job_info: the operator's ``openlineage_inject_parent_job_info``.
    :param inject_transport_info: the operator's ``openlineage_inject_transport_info``.
    :param log: the operator's logger.
    """
    if inject_parent_job_info:
        try:
            injected = copy.deepcopy(json)
            targets = injected["tasks"] if isinstance(injected.get("tasks"), list) else [injected]
            for task in targets:
                if isinstance(task, dict):
                    upstream._inject_openlineage_context_into_task_parameters(task, context)
            json = injected
        except Exception as err:
            log.warning("Could not inject OpenLineage context; parameters left as they were", exc_info=err)
    try:
        from airflow.providers.databricks.utils.openlineage import (
            inject_openlineage_properties_into_databricks_job,
        )

        return inject_openlineage_properties_into_databricks_job(
            job=json,
            context=context,
            inject_parent_job_info=inject_parent_job_info,
            inject_transport_info=inject_transport_info,
        )
    except Exception as err:
        log.warning("Could not inject OpenLineage properties; the job is left as it was", exc_info=err)
        return json


def into_run_now(json: dict[str, Any], context: Context, *, log: logging.Logger | Any) -> dict[str, Any]:
    """
    ``jobs/run-now``: the parent job's facet into ``job_parameters``.

    :param json: the request body.
    :param context: the task's context.
    :param log: the operator's logger.
    """
    try:
        from airflow.providers.databricks.utils.openlineage import (
            inject_openlineage_context_into_databricks_job_parameters,
        )

        return {
            **json,
            "job_parameters": inject_openlineage_context_into_databricks_job_parameters(
                job_parameters=json.get("job_parameters", {}), context=context
            ),
        }
    except Exception as err:
        log.warning("Could not inject OpenLineage context; job parameters left as they were", exc_info=err)
        return json
