# Licensed under the Apache License, Version 2.0.
"""
The core install imports no cloud package, and a cloud's module without its extra says which to install.

Each check runs in a fresh interpreter whose import system refuses the cloud packages (the amazon,
databricks and google providers, boto3, botocore, the Google libraries, grpc) to any importer inside
``airflow.providers.resumable``: what this venv has installed cannot hide a missing guard. Airflow's
own imports are let through, as they are on a real install. ``tests/packaging`` shows the same with a
real install that has no cloud package at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CLOUD_PREFIXES = (
    "airflow.providers.amazon",
    "airflow.providers.databricks",
    "airflow.providers.google",
    "boto3",
    "botocore",
    "google",
    "grpc",
)

_REFUSE_CLOUDS = textwrap.dedent(
    f"""
    import sys

    CLOUD_PREFIXES = {CLOUD_PREFIXES!r}
    asked = []

    def _importer():
        frame = sys._getframe(2)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
            frame = frame.f_back
        return "" if frame is None else frame.f_globals.get("__name__", "")

    class RefuseClouds:
        def find_spec(self, name, path=None, target=None):
            if not any(name == p or name.startswith(p + ".") for p in CLOUD_PREFIXES):
                return None
            importer = _importer()
            if importer.startswith("airflow.providers.resumable"):
                asked.append((importer, name))
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, RefuseClouds())
    """
)

CORE_MODULES = [
    "airflow.providers.resumable.ledger",
    "airflow.providers.resumable.ledger_store",
    "airflow.providers.resumable.job_reaper",
    "airflow.providers.resumable.plugins.job_reaper",
    "airflow.providers.resumable.cli",
    "airflow.providers.resumable.doctor",
    "airflow.providers.resumable.core_patch.commands",
    "airflow.providers.resumable.operators.fake_job",
    "airflow.providers.resumable.links.dataproc",
    "airflow.providers.resumable.get_provider_info",
]
"""What runs on the core install: the ledger, the reaper (its plugin loads in the scheduler), the CLI's
``patch`` and ``doctor``, the fake-job operator, the Dataproc links and the provider's metadata."""

CLOUD_MODULES = [
    ("airflow.providers.resumable.operators.databricks", "databricks"),
    ("airflow.providers.resumable.hooks.databricks", "databricks"),
    ("airflow.providers.resumable.operators.emr", "amazon"),
    ("airflow.providers.resumable.hooks.emr", "amazon"),
    ("airflow.providers.resumable.operators.dataproc", "google"),
    ("airflow.providers.resumable.hooks.dataproc", "google"),
]


def _run_without_clouds(code: str) -> dict:
    """Run ``code`` (which sets ``result``) where our modules cannot import a cloud package."""
    script = (
        _REFUSE_CLOUDS + textwrap.dedent(code) + "\nprint(json.dumps({'result': result, 'asked': asked}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_core_modules_import_no_cloud_package():
    out = _run_without_clouds(
        f"""
        import importlib
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        from airflow.providers.resumable.get_provider_info import get_provider_info
        from airflow.providers.resumable.plugins.job_reaper import ResumableJobReaperPlugin
        result = [get_provider_info()["package-name"], ResumableJobReaperPlugin.name]
        """
    )

    assert out["result"] == ["airflow-provider-resumable", "resumable_job_reaper"]
    assert out["asked"] == [], "a core module imported a cloud package"


@pytest.mark.parametrize(("module", "extra"), CLOUD_MODULES, ids=[m for m, _ in CLOUD_MODULES])
def test_a_cloud_module_without_its_packages_names_the_extra(module, extra):
    out = _run_without_clouds(
        f"""
        from airflow.exceptions import AirflowOptionalProviderFeatureException
        try:
            import {module}
        except ImportError as err:
            result = [str(err), isinstance(err, AirflowOptionalProviderFeatureException)]
        else:
            result = None
        """
    )

    assert out["result"] is not None, f"{module} imported without its cloud's packages"
    message, optional_feature = out["result"]
    assert f"pip install 'airflow-provider-resumable[{extra}]'" in message
    assert "No module named" in message, "the original import error is kept"
    assert optional_feature, "the providers manager logs it as an optional feature, not a warning"


def test_the_reaper_without_a_clouds_packages_reports_the_extra_and_loads_the_others():
    out = _run_without_clouds(
        """
        import logging
        # Imported first: Airflow's logging set-up, on import, disables loggers made before it.
        from airflow.providers.resumable.job_reaper import job_handle_factory
        records = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        logging.getLogger("airflow.providers.resumable.job_reaper").addHandler(handler)
        result = {
            "databricks": job_handle_factory("databricks.runs_submit") is None,
            "fake": job_handle_factory("testing.fake_jobs").__name__,
            "log": records,
        }
        """
    )

    assert out["result"]["databricks"] is True
    assert out["result"]["fake"] == "FakeJobHook"
    assert any("[databricks]" in line for line in out["result"]["log"]), out["result"]["log"]


def test_the_guard_is_not_vacuous():
    # The refusal must reach our imports: the same import succeeds when nothing refuses it.
    done = subprocess.run(
        [sys.executable, "-c", "import airflow.providers.resumable.operators.databricks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
