# Licensed under the Apache License, Version 2.0.
"""
Which environment variables each real-cloud system test needs, and the skip that names the missing ones.

Evaluated when a test module is imported (``pytestmark``), so without them the test is skipped
before any Airflow stack starts, and ``pytest -ra`` prints what to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

AWS_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)
"""Any one of these gives boto3's default chain something to use (an instance role cannot be seen
from here: set AWS_PROFILE or AWS_ACCESS_KEY_ID on such a machine too)."""
AWS_REGION = ("AWS_DEFAULT_REGION", "AWS_REGION")


@dataclass(frozen=True)
class RealCloudEnvironment:
    """
    What a real-cloud system test needs from the environment.

    :param what: the real thing it runs against, for the skip reason.
    :param required: each entry is satisfied by any one of its variables.
    """

    what: str
    required: tuple[tuple[str, ...], ...]

    def missing(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The unsatisfied entries, as people read them (``"A or B"``)."""
        env = os.environ if environ is None else environ
        return [" or ".join(group) for group in self.required if not any(env.get(name) for name in group)]

    def skip_reason(self, environ: Mapping[str, str] | None = None) -> str | None:
        """``None`` when everything is set; otherwise what to set, and for what."""
        missing = self.missing(environ)
        if not missing:
            return None
        names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
        return f"set {names} to run against {self.what} (see docs/testing.rst)"

    def skipif(self) -> pytest.MarkDecorator:
        """The module-level mark: skip, with the reason, unless everything is set."""
        reason = self.skip_reason()
        return pytest.mark.skipif(reason is not None, reason=reason or "")


DATABRICKS = RealCloudEnvironment(
    "a real Databricks workspace",
    (("DATABRICKS_HOST",), ("DATABRICKS_TOKEN",), ("RESUMABLE_DATABRICKS_NOTEBOOK_PATH",)),
)
"""``RESUMABLE_DATABRICKS_CLUSTER_ID`` is optional: without it the notebook runs on serverless compute."""
EMR = RealCloudEnvironment("a real EMR cluster", (AWS_CREDENTIALS, AWS_REGION, ("RESUMABLE_EMR_CLUSTER_ID",)))
EMR_SERVERLESS = RealCloudEnvironment(
    "a real EMR Serverless application",
    (
        AWS_CREDENTIALS,
        AWS_REGION,
        ("RESUMABLE_EMR_SERVERLESS_APPLICATION_ID",),
        ("RESUMABLE_EMR_SERVERLESS_EXECUTION_ROLE_ARN",),
    ),
)
DATAPROC = RealCloudEnvironment(
    "a real Dataproc cluster",
    (
        ("GOOGLE_APPLICATION_CREDENTIALS",),
        ("RESUMABLE_DATAPROC_PROJECT",),
        ("RESUMABLE_DATAPROC_REGION",),
        ("RESUMABLE_DATAPROC_CLUSTER",),
    ),
)
