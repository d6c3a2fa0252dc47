# Licensed under the Apache License, Version 2.0.
"""The stock-vs-patched verdict of `make upstream-tests`: what counts as a regression."""

from __future__ import annotations

import pytest

from upstream_tests.outcomes import Outcome, compare, parse_junit, summarize

P, F, E, S = Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.SKIPPED

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
  <testcase classname="tests.task_sdk.test_x.TestA" name="test_ok" time="0.1"/>
  <testcase classname="tests.task_sdk.test_x.TestA" name="test_bad[p1]" time="0.1">
    <failure message="assert 1 == 2">trace</failure>
  </testcase>
  <testcase classname="tests.task_sdk.test_x" name="test_skip" time="0.0">
    <skipped type="pytest.skip" message="no">why</skipped>
  </testcase>
  <testcase classname="tests.task_sdk.test_x" name="test_teardown_error" time="0.1">
    <error message="teardown failed">trace</error>
  </testcase>
  <testcase classname="tests.task_sdk.test_x" name="test_rerun" time="0.1"/>
  <testcase classname="tests.task_sdk.test_x" name="test_rerun" time="0.1">
    <failure message="flaky">trace</failure>
  </testcase>
</testsuite></testsuites>
"""


def test_junit_outcomes_are_keyed_by_class_and_name_and_keep_the_worst_of_repeats():
    assert parse_junit(JUNIT) == {
        "tests.task_sdk.test_x.TestA::test_ok": P,
        "tests.task_sdk.test_x.TestA::test_bad[p1]": F,
        "tests.task_sdk.test_x::test_skip": S,
        "tests.task_sdk.test_x::test_teardown_error": E,
        "tests.task_sdk.test_x::test_rerun": F,
    }


def test_summary_reads_like_pytest():
    assert summarize([P, P, F, S, P]) == "3 passed, 1 failed, 1 skipped"
    assert summarize([]) == "no tests"


@pytest.mark.parametrize(
    ("after", "why"),
    [
        pytest.param(F, "fails", id="fails"),
        pytest.param(E, "errors", id="errors"),
        pytest.param(S, "a skip would hide a regression", id="skipped"),
        pytest.param(None, "a test the diff removed hides what it protected", id="gone"),
    ],
)
def test_a_test_that_passed_stock_must_pass_patched(after: Outcome | None, why: str):
    patched = {"t::other": P} if after is None else {"t::a": after, "t::other": P}
    verdict = compare({"t::a": P, "t::other": P}, patched)
    assert not verdict.ok, why
    assert dict(verdict.regressions) == {"t::a": after}


def test_a_test_the_diff_adds_must_pass():
    verdict = compare({"t::a": P}, {"t::a": P, "t::new_ok": P, "t::new_bad": F})
    assert not verdict.ok
    assert dict(verdict.new_not_passing) == {"t::new_bad": F}
    assert verdict.new_passing == ("t::new_ok",)


def test_failing_on_both_is_a_known_failure_not_a_regression():
    verdict = compare({"t::env": F, "t::a": P}, {"t::env": F, "t::a": P, "t::new": P})
    assert verdict.ok
    assert dict(verdict.known_failures) == {"t::env": F}
    assert verdict.new_passing == ("t::new",)


def test_a_test_fixed_by_the_patch_or_skipped_on_both_is_fine():
    verdict = compare({"t::was_failing": F, "t::skip": S}, {"t::was_failing": P, "t::skip": S})
    assert verdict.ok
    assert not verdict.known_failures
