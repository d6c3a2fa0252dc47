# Licensed under the Apache License, Version 2.0.
"""Runs the upstream test files on stock and on patched Airflow and prints the verdict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from airflow.providers.resumable.core_patch.unified_diff import (
    Direction,
    apply_file_patch,
    parse_unified_diff,
)
from upstream_tests.outcomes import Outcome, Verdict, compare, parse_junit, summarize
from upstream_tests.suite import SUITES, TESTS_PATCH_PREFIX, Sdist, UpstreamSuite

FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""Put on the upstream tests' PYTHONPATH: our ``tests_common``."""

PER_TEST_TIMEOUT = 300
"""Seconds one upstream test may take (pytest-timeout) before it counts as failed."""

PER_FILE_TIMEOUT = 1200
"""Seconds one pytest run of one file may take before the whole run is declared broken."""


class UpstreamTestsError(RuntimeError):
    """The upstream tests could not be run; the message says why and what to do."""


@dataclass(frozen=True)
class Interpreter:
    """A venv's Python, and what its Airflow looks like."""

    python: Path
    prefix: Path
    airflow_version: str
    task_sdk_version: str
    patched: bool

    @classmethod
    def inspect(cls, python: Path) -> Interpreter:
        probe = (
            "import json, sys, importlib.metadata as m\n"
            "from airflow.providers.resumable.checkpoint import checkpointed_state_available\n"
            "print(json.dumps({'prefix': sys.prefix, 'core': m.version('apache-airflow-core'),"
            " 'sdk': m.version('apache-airflow-task-sdk'), 'patched': checkpointed_state_available()}))"
        )
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if result.returncode != 0:
            raise UpstreamTestsError(
                f"{python} cannot report its Airflow ({result.stderr.strip()[-500:]}). "
                "Run `make venv` first, or pass --python the interpreter of a venv with this provider."
            )
        facts = json.loads(result.stdout.strip().splitlines()[-1])
        return cls(python, Path(facts["prefix"]), facts["core"], facts["sdk"], bool(facts["patched"]))


@dataclass(frozen=True)
class FileRun:
    """One upstream test file run once: which configuration, its outcomes and its log."""

    config: str
    test_file: str
    exit_code: int
    outcomes: dict[str, Outcome]
    log: Path
    seconds: float

    @property
    def broken(self) -> bool:
        """pytest could not run the file (exit 2-5: interrupted, internal error, usage, no tests)."""
        return self.exit_code not in (0, 1)


def suite_for(interpreter: Interpreter) -> UpstreamSuite:
    suite = SUITES.get(interpreter.airflow_version)
    if suite is None or suite.task_sdk_version != interpreter.task_sdk_version:
        supported = ", ".join(f"{s.airflow_version} (task SDK {s.task_sdk_version})" for s in SUITES.values())
        raise UpstreamTestsError(
            f"No upstream test suite for Airflow {interpreter.airflow_version} with task SDK "
            f"{interpreter.task_sdk_version}; the core patch supports {supported}."
        )
    return suite


def fetch_sdist(python: Path, sdist: Sdist, cache: Path) -> Path:
    """``sdist``, downloaded once from the package registry into ``cache``."""
    tarball = cache / f"{sdist.root_name}.tar.gz"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--no-binary", ":all:", sdist.requirement, "-d", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not tarball.exists():
        raise UpstreamTestsError(
            f"Could not download the {sdist.requirement} sdist from the package registry:\n"
            f"{result.stderr.strip()[-2000:]}"
        )
    return tarball


def unpack(tarball: Path, destination: Path, sdist: Sdist) -> Path:
    """A fresh copy of the sdist under ``destination``; returns its root."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(destination, filter="data")
    return destination / sdist.root_name


def read_patch(name: str) -> bytes:
    """One of the diffs shipped as package data of :mod:`airflow.providers.resumable.core_patch`."""
    return resources.files("airflow.providers.resumable.core_patch").joinpath(name).read_bytes()


def apply_patch_text(root: Path, patch_text: bytes, *, strip: str = "") -> list[str]:
    """
    Apply a diff to the files under ``root``, all of them or none.

    :param strip: a path prefix of the diff's files that ``root`` stands for (e.g. ``task-sdk/`` for
        an unpacked task SDK sdist); every file must carry it.
    """
    results: dict[Path, bytes] = {}
    for file_patch in parse_unified_diff(patch_text):
        if not file_patch.path.startswith(strip):
            raise UpstreamTestsError(f"the diff touches {file_patch.path}, outside {strip}")
        target = root / file_patch.path.removeprefix(strip)
        results[target] = apply_file_patch(target.read_bytes(), file_patch, Direction.FORWARD)
    for target, content in results.items():
        target.write_bytes(content)
    return [str(path.relative_to(root)) for path in results]


def stock_copy(patched: Interpreter, destination: Path) -> Interpreter:
    """
    A hard-linked copy of the patched venv with the patch reverted: a stock Airflow.

    Hard links cost no disk and a second or two; the applier replaces each file it changes
    atomically, which gives the copy its own files and leaves the original untouched.
    """
    shutil.rmtree(destination, ignore_errors=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(patched.prefix), str(destination)], check=True)
    python = destination / "bin" / "python"
    revert = subprocess.run(
        [str(python), "-m", "airflow.providers.resumable.cli", "patch", "revert"],
        capture_output=True,
        text=True,
    )
    if revert.returncode != 0:
        raise UpstreamTestsError(
            f"Could not revert the patch in the stock copy:\n{revert.stdout}{revert.stderr}"
        )
    stock = Interpreter.inspect(python)
    if stock.patched:
        raise UpstreamTestsError(f"the stock copy at {destination} still looks patched")
    if not Interpreter.inspect(patched.python).patched:
        raise UpstreamTestsError("reverting the stock copy changed the patched venv")
    return stock


def run_file(
    interpreter: Interpreter, tree: Path, test_file: str, config: str, work: Path, extra_args: Sequence[str]
) -> FileRun:
    """One pytest run of one upstream file, in its own AIRFLOW_HOME, with upstream's own settings."""
    slug = f"{config}-{test_file.replace('/', '-').removesuffix('.py')}"
    home = work / "homes" / slug
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    junit, log = work / f"{slug}.xml", work / f"{slug}.log"
    junit.unlink(missing_ok=True)
    # The caller's Airflow settings (a make test run, a developer's shell) must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(home), PYTHONPATH=str(FIXTURES), PYTHONDONTWRITEBYTECODE="1")
    command = [
        str(interpreter.python),
        "-m",
        "pytest",
        f"tests/task_sdk/{test_file}",
        "-p",
        "no:cacheprovider",
    ]
    command += [f"--junitxml={junit}", f"--timeout={PER_TEST_TIMEOUT}", *extra_args]
    started = time.monotonic()
    with log.open("w") as out:
        try:
            exit_code = subprocess.run(
                command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=PER_FILE_TIMEOUT
            ).returncode
        except subprocess.TimeoutExpired:
            exit_code = -1
    outcomes = parse_junit(junit.read_bytes()) if junit.exists() else {}
    return FileRun(config, test_file, exit_code, outcomes, log, time.monotonic() - started)


def run_suite(
    patched_python: Path,
    work: Path,
    *,
    stock_python: Path | None = None,
    jobs: int = 3,
    files: Sequence[str] | None = None,
    extra_args: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> bool:
    """Run everything, print the table and the details; ``True`` when there is no regression."""
    started = time.monotonic()
    patched = Interpreter.inspect(patched_python)
    if not patched.patched:
        raise UpstreamTestsError(
            f"{patched.python} runs a stock Airflow; apply the core patch first (`make patch-venv`)."
        )
    suite = suite_for(patched)
    test_files = tuple(files) if files else suite.test_files
    say(
        f">> Airflow's own tests: task SDK {suite.task_sdk_version} on Airflow {suite.airflow_version}, "
        f"stock vs patched ({', '.join(test_files)})"
    )
    tarball = fetch_sdist(patched.python, suite.task_sdk, work / "sdists")
    release_tree = unpack(tarball, work / "release", suite.task_sdk)
    pr_tree = unpack(tarball, work / "pull-request", suite.task_sdk)
    changed = apply_patch_text(pr_tree, read_patch(suite.tests_patch), strip=TESTS_PATCH_PREFIX)
    say(f">> test diff {suite.tests_patch} applied to {len(changed)} files")
    if stock_python is None:
        stock = stock_copy(patched, work / "venv-stock")
    else:
        stock = Interpreter.inspect(stock_python)
        if stock.patched or (stock.airflow_version, stock.task_sdk_version) != (
            patched.airflow_version,
            patched.task_sdk_version,
        ):
            raise UpstreamTestsError(
                f"{stock_python} must run a stock Airflow {patched.airflow_version} (it runs "
                f"{stock.airflow_version}, {'patched' if stock.patched else 'stock'})"
            )

    # Longest first, so the pool does not end on one long file: the order of test_files.
    plan = [
        (i, tree, f, c)
        for f in test_files
        for i, tree, c in ((stock, release_tree, "stock"), (patched, pr_tree, "patched"))
    ]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_file, i, tree, f, config, work, extra_args) for i, tree, f, config in plan]
        runs = [future.result() for future in futures]

    by_key = {(r.config, r.test_file): r for r in runs}
    verdicts = {f: compare(by_key["stock", f].outcomes, by_key["patched", f].outcomes) for f in test_files}
    say(render_table(test_files, by_key, verdicts))
    details = render_details(test_files, by_key, verdicts)
    if details:
        say(details)
    ok = all(v.ok for v in verdicts.values()) and not any(r.broken for r in runs)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    say(f">> {'no regression' if ok else 'FAILED'}; {minutes} m {seconds:02d} s; logs in {work}")
    return ok


def render_table(
    test_files: Sequence[str], runs: dict[tuple[str, str], FileRun], verdicts: dict[str, Verdict]
) -> str:
    rows = [("test file", "stock (release tests)", "patched (+ test diff)", "seconds", "verdict")]
    for test_file in test_files:
        stock, patched, verdict = runs["stock", test_file], runs["patched", test_file], verdicts[test_file]
        if stock.broken or patched.broken:
            status = "pytest could not run it"
        elif verdict.ok:
            status = f"ok (+{len(verdict.new_passing)} new)" if verdict.new_passing else "ok"
        else:
            status = f"{len(verdict.regressions)} regressed, {len(verdict.new_not_passing)} new not passing"
        seconds = f"{stock.seconds:.0f} / {patched.seconds:.0f}"
        rows.append(
            (
                test_file,
                summarize(stock.outcomes.values()),
                summarize(patched.outcomes.values()),
                seconds,
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_details(
    test_files: Sequence[str], runs: dict[tuple[str, str], FileRun], verdicts: dict[str, Verdict]
) -> str:
    lines: list[str] = []
    for test_file in test_files:
        verdict = verdicts[test_file]
        for config in ("stock", "patched"):
            run = runs[config, test_file]
            if run.broken:
                lines.append(f"!! {config} {test_file}: pytest exited {run.exit_code}; see {run.log}")
        for test_id, outcome in verdict.regressions.items():
            now = outcome.value if outcome else "gone"
            lines.append(
                f"!! REGRESSION {test_id}: passed stock, {now} patched ({runs['patched', test_file].log})"
            )
        for test_id, outcome in verdict.new_not_passing.items():
            lines.append(f"!! NEW TEST {outcome.value}: {test_id} ({runs['patched', test_file].log})")
        for test_id, outcome in verdict.known_failures.items():
            lines.append(f"   known failure (stock and patched): {test_id} [{outcome.value}]")
    return "\n".join(lines)


def main_run(
    python: Path,
    work: Path,
    *,
    stock_python: Path | None,
    jobs: int,
    files: Sequence[str],
    extra_args: Sequence[str],
) -> int:
    try:
        ok = run_suite(
            python, work, stock_python=stock_python, jobs=jobs, files=files or None, extra_args=extra_args
        )
        return 0 if ok else 1
    except UpstreamTestsError as err:
        print(f"upstream tests: {err}", file=sys.stderr)
        return 2
