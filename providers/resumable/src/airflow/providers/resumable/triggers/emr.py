# Licensed under the Apache License, Version 2.0.
"""The triggers deferrable resumable EMR operators (AddSteps, Serverless StartJobRun) defer to."""

from __future__ import annotations

from airflow.providers.resumable.hooks.emr import EmrServerlessJobRunHook, EmrStepsHook
from airflow.providers.resumable.triggers.base import ResumableJobTrigger


class ResumableEmrStepsTrigger(ResumableJobTrigger):
    """Poll the steps of one ``AddJobFlowSteps`` until they end; never cancel them (see the base class)."""

    hook_class = EmrStepsHook


class ResumableEmrServerlessJobRunTrigger(ResumableJobTrigger):
    """Poll an EMR Serverless job run until it ends; never cancel it (see the base class)."""

    hook_class = EmrServerlessJobRunHook
