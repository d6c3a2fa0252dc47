# Licensed under the Apache License, Version 2.0.
"""Which upstream tests guard the core patch, per Airflow version. Data only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UpstreamSuite:
    """
    The upstream test files to run for one Airflow release, and where they come from.

    :param airflow_version: the apache-airflow-core version the core patch targets.
    :param task_sdk_version: the apache-airflow-task-sdk version released with it.
    :param test_files: paths under the task SDK sdist's ``tests/task_sdk/`` that exercise what the
        patch changes (supervisor, task runner, Execution API client, comms).
    :param tests_patch: the test diff's file name, package data of
        :mod:`airflow.providers.resumable.core_patch`.
    :param source_patch: the source diff's file name, beside it.
    """

    airflow_version: str
    task_sdk_version: str
    test_files: tuple[str, ...]
    tests_patch: str
    source_patch: str

    @property
    def task_sdk(self) -> Sdist:
        return Sdist("apache-airflow-task-sdk", self.task_sdk_version)

    @property
    def core(self) -> Sdist:
        return Sdist("apache-airflow-core", self.airflow_version)


@dataclass(frozen=True)
class Sdist:
    """One source distribution on the package registry."""

    name: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def root_name(self) -> str:
        """The directory it unpacks into."""
        return f"{self.name.replace('-', '_')}-{self.version}"


TASK_SDK_FILES = (
    "api/test_client.py",
    "execution_time/test_supervisor.py",
    "execution_time/test_task_runner.py",
    "execution_time/test_comms.py",
)
"""Longest-running first (the client's tests mostly wait out HTTP retry back-offs)."""

SUITES: dict[str, UpstreamSuite] = {
    airflow_version: UpstreamSuite(
        airflow_version=airflow_version,
        task_sdk_version=task_sdk_version,
        test_files=TASK_SDK_FILES,
        tests_patch=f"airflow-{airflow_version}-checkpointed-tests.patch",
        source_patch=f"airflow-{airflow_version}-checkpointed.patch",
    )
    for airflow_version, task_sdk_version in (("3.3.0", "1.3.0"), ("3.3.1", "1.3.1"), ("3.3.2", "1.3.2"))
}
"""Every Airflow version the core patch supports; a new patch version adds its entry here."""

TESTS_PATCH_PREFIX = "task-sdk/"
"""The test diff is in upstream repository layout; this prefix maps onto the unpacked sdist."""

SOURCE_LAYOUT = {"airflow-core": "core", "task-sdk": "task_sdk"}
"""The source diff's top-level directories, and which sdist's ``src`` each one holds."""
