# Licensed under the Apache License, Version 2.0.
"""Sphinx configuration for the airflow-provider-resumable documentation."""

from __future__ import annotations

from airflow.providers.resumable import __version__

project = "airflow-provider-resumable"
author = "airflow-provider-resumable contributors"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Airflow's own classes are referenced in signatures; their docs are not part of this site.
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, None]] = {}

html_theme = "furo"
html_title = f"airflow-provider-resumable {release}"
exclude_patterns = ["_build"]
