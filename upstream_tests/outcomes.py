# Licensed under the Apache License, Version 2.0.
"""
Test outcomes read from pytest's JUnit XML, and the stock-vs-patched verdict. Pure: no I/O.

The verdict is per test id (``classname::name``). A test that passes on stock Airflow must pass on
the patched one: failing, erroring, being skipped or disappearing all count as a regression (a
skip or a vanished test would otherwise hide one). A test only the patched run has (added by the
test diff) must pass. Tests that fail on both are reported as known failures and do not fail the run:
they say something about this machine, not about the patch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from airflow.providers.resumable._compat import StrEnum


class Outcome(StrEnum):
    """What became of one test."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


def parse_junit(xml: bytes) -> dict[str, Outcome]:
    """
    The outcome of every test case in a pytest JUnit XML report, keyed by ``classname::name``.

    A case with an error (even one at teardown after its call passed) is ``error``.

    :param xml: the report's bytes.
    """
    outcomes: dict[str, Outcome] = {}
    for case in ET.fromstring(xml).iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("error") is not None:
            outcome = Outcome.ERROR
        elif case.find("failure") is not None:
            outcome = Outcome.FAILED
        elif case.find("skipped") is not None:
            outcome = Outcome.SKIPPED
        else:
            outcome = Outcome.PASSED
        # A parametrised id repeated in one report (it happens with reruns) keeps its worst outcome.
        previous = outcomes.get(test_id)
        if previous is None or _severity(outcome) > _severity(previous):
            outcomes[test_id] = outcome
    return outcomes


def _severity(outcome: Outcome) -> int:
    return [Outcome.PASSED, Outcome.SKIPPED, Outcome.FAILED, Outcome.ERROR].index(outcome)


def summarize(outcomes: Iterable[Outcome]) -> str:
    """``"185 passed, 2 failed, 1 skipped"``, in that order, leaving out zero counts."""
    counts = Counter(outcomes)
    parts = [f"{counts[o]} {o.value}" for o in Outcome if counts[o]]
    return ", ".join(parts) or "no tests"


@dataclass(frozen=True)
class Verdict:
    """
    How the patched run compares with the stock run, for one test file.

    :param regressions: tests that passed stock and did not pass patched, with the patched outcome
        (``None``: the test is gone).
    :param new_not_passing: tests only the patched run has that did not pass.
    :param new_passing: tests only the patched run has that passed (what the test diff added).
    :param known_failures: tests that did not pass on either run.
    """

    regressions: Mapping[str, Outcome | None] = field(default_factory=dict)
    new_not_passing: Mapping[str, Outcome] = field(default_factory=dict)
    new_passing: tuple[str, ...] = ()
    known_failures: Mapping[str, Outcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.new_not_passing


def compare(stock: Mapping[str, Outcome], patched: Mapping[str, Outcome]) -> Verdict:
    """
    Compare one file's stock outcomes with its patched outcomes, test by test.

    :param stock: outcomes on stock Airflow with the release tests.
    :param patched: outcomes on patched Airflow with the release tests plus the test diff.
    """
    regressions: dict[str, Outcome | None] = {}
    known_failures: dict[str, Outcome] = {}
    for test_id, before in stock.items():
        after = patched.get(test_id)
        if before is Outcome.PASSED and after is not Outcome.PASSED:
            regressions[test_id] = after
        elif before in (Outcome.FAILED, Outcome.ERROR) and after in (Outcome.FAILED, Outcome.ERROR):
            known_failures[test_id] = after
    added = {test_id: outcome for test_id, outcome in patched.items() if test_id not in stock}
    return Verdict(
        regressions=regressions,
        new_not_passing={t: o for t, o in added.items() if o is not Outcome.PASSED},
        new_passing=tuple(sorted(t for t, o in added.items() if o is Outcome.PASSED)),
        known_failures=known_failures,
    )
