# Licensed under the Apache License, Version 2.0.
"""What ``get_provider_info()`` tells Airflow: valid against Airflow's schema, this package's version,
and names that resolve."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
import re

import jsonschema
import pytest

from airflow.providers.resumable import __version__
from airflow.providers.resumable.extras import MissingExtraError
from airflow.providers.resumable.get_provider_info import get_provider_info

INFO = get_provider_info()


def _airflow_schema() -> dict:
    # The schema the providers manager validates every provider's info against (airflow-core ships it).
    return json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())


def test_the_provider_info_validates_against_airflows_schema():
    jsonschema.validate(INFO, _airflow_schema())


def test_the_schema_check_would_catch_a_malformed_entry():
    broken = {**INFO, "hooks": [{"integration-name": "Resumable jobs", "python-modules": "not a list"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _airflow_schema())


def test_the_version_is_the_installed_distributions():
    installed = importlib.metadata.version("airflow-provider-resumable")
    assert INFO["versions"][0] == installed == __version__


EXTRA_OF_MODULE = {"databricks": "databricks", "emr": "amazon", "dataproc": "google"}
"""The last part of a cloud's module name -> the extra that brings its packages."""
DISTRIBUTIONS_OF_EXTRA = {
    "databricks": "apache-airflow-providers-databricks",
    "amazon": "apache-airflow-providers-amazon",
    "google": "google-cloud-dataproc",
}


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _import(module: str) -> object:
    """The module; on an install without its cloud's extra (``make test-python`` on 3.10), the error naming it."""
    extra = EXTRA_OF_MODULE.get(module.rsplit(".", 1)[-1])
    if extra is None or _installed(DISTRIBUTIONS_OF_EXTRA[extra]):
        return importlib.import_module(module)
    with pytest.raises(MissingExtraError, match=re.escape(f"[{extra}]")):
        importlib.import_module(module)
    return None


def test_every_module_and_class_it_names_resolves():
    modules = [m for entry in INFO["operators"] + INFO["hooks"] for m in entry["python-modules"]]
    classes = [*INFO["extra-links"], *(p["plugin-class"] for p in INFO["plugins"])]
    for module in modules:
        _import(module)
    for path in classes:
        module, _, name = path.rpartition(".")
        if (found := _import(module)) is not None:
            assert isinstance(getattr(found, name), type), path
