# Licensed under the Apache License, Version 2.0.
"""
The extras that bring each cloud's packages, and the error a cloud's module raises without them.

What it is for: ``pip install airflow-provider-resumable`` is the core (the ledger, the job reaper,
the ``airflow-resumable`` CLI, the fake-job operator), with no cloud library. Each cloud's hooks and
operators import that cloud's packages, which an extra brings: ``[databricks]``, ``[amazon]``,
``[google]``, or ``[all]``.

How it works: each cloud module imports its cloud's packages in one ``try`` block and turns an
``ImportError`` into :class:`MissingExtraError`, whose message names the extra to install. The error
is both an ``ImportError`` (code that guards an optional import keeps working) and Airflow's
``AirflowOptionalProviderFeatureException``, which the providers manager logs as "optional feature
disabled" instead of a warning when it imports our extra links on an install without that cloud.

What it does not do: check versions. An extra installed at a version too old for an import fails the
same way, and the message keeps the original error so that case can be told apart.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowOptionalProviderFeatureException

PACKAGE = "airflow-provider-resumable"

CLOUDS: dict[str, str] = {
    "databricks": "Databricks",
    "amazon": "EMR and EMR Serverless",
    "google": "Dataproc",
}
"""Extra → whose operators and hooks it enables (``[all]`` is every one)."""


class MissingExtraError(AirflowOptionalProviderFeatureException, ImportError):
    """A cloud's module was imported on an install without that cloud's extra."""


def missing_extra(extra: str, cause: ImportError) -> MissingExtraError:
    """
    The error to raise from a cloud's module whose packages could not be imported.

    :param extra: the extra that brings them (a key of :data:`CLOUDS`).
    :param cause: the ``ImportError`` the import raised; its text is kept in the message.
    """
    return MissingExtraError(
        f"The {CLOUDS[extra]} operators and hooks of {PACKAGE} need the [{extra}] extra: "
        f"pip install '{PACKAGE}[{extra}]' (the import failed with: {cause})",
        name=cause.name,
    )
