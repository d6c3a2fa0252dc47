# Licensed under the Apache License, Version 2.0.
"""
Airflow's own tests on the patched Airflow: the guard for every change to the core patch.

What it is for: the core patch changes Airflow's supervisor, task runner, Execution API client and
scheduler. Our own tests check what the patch adds; this checks that it breaks nothing Airflow's
own tests protect, and runs the tests the patch brings for Airflow's test files (the second half
of the pull request, ``core_patch/airflow-<version>-checkpointed-tests.patch``).

How it works: ``python -m upstream_tests`` (``make upstream-tests``) downloads the pinned task SDK
sdist from the package registry, runs the relevant upstream test files on a stock Airflow (a
hard-linked copy of the venv with the patch reverted) against the release tests, and on the patched
venv against the release tests plus the test diff, then compares test by test. It fails on any test
that passes stock and does not pass patched (failed, errored, skipped or gone), and on any test the
diff adds that does not pass. The fixtures those files import from upstream's ``tests_common`` are
provided by ``upstream_tests/fixtures`` (written here; the registry's ``apache-airflow-devel-common``
predates 3.3 and does not load).

What it does not do: run airflow-core's tests (its sdist ships none), or run files other than the
ones :mod:`upstream_tests.suite` names for the installed version.
"""
