from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hivemesh.evaluation.cli import document
from hivemesh.evaluation.gate import Check, Thresholds, compare
from hivemesh.evaluation.report import CategoryFigures, Latency, Report, ReportError, read_baseline


def _report(p99: float = 100.0, **categories: tuple[int, int, int]) -> Report:
    figures = {
        name: CategoryFigures(cases=total, correct=correct, wrong=total - correct - errors, errors=errors)
        for name, (total, correct, errors) in categories.items()
    }
    return Report(
        address="127.0.0.1:1",
        suite="default",
        suite_digest="d",
        started_at="2026-01-01T00:00:00+00:00",
        seconds=1.0,
        concurrency=4,
        categories=figures,
        latency_ms=Latency(turns=10, p50=10.0, p95=50.0, p99=p99, max=p99),
    )


def test_equal_reports_pass() -> None:
    baseline = _report(calculator=(40, 40, 0), lists=(8, 8, 0))
    verdict = compare(baseline, baseline, Thresholds())
    assert verdict.passed
    assert verdict.same_suite


def test_a_category_that_drops_beyond_the_margin_is_named() -> None:
    baseline = _report(calculator=(40, 40, 0), lists=(8, 8, 0))
    target = _report(calculator=(40, 40, 0), lists=(8, 7, 0))
    verdict = compare(target, baseline, Thresholds(margin=0.02))
    assert [(r.check, r.category) for r in verdict.regressions] == [(Check.ACCURACY, "lists")]
    assert "lists: accuracy 100.0% -> 87.5%" in verdict.regressions[0].message


def test_a_drop_within_the_margin_passes() -> None:
    baseline = _report(calculator=(100, 100, 0))
    assert compare(_report(calculator=(100, 98, 0)), baseline, Thresholds(margin=0.02)).passed
    assert not compare(_report(calculator=(100, 97, 0)), baseline, Thresholds(margin=0.02)).passed


def test_a_category_not_run_is_a_regression() -> None:
    baseline = _report(calculator=(4, 4, 0), spelling=(2, 2, 0))
    verdict = compare(_report(calculator=(4, 4, 0)), baseline, Thresholds())
    assert [(r.check, r.category) for r in verdict.regressions] == [(Check.MISSING, "spelling")]


def test_p99_beyond_the_factor_regresses_unless_the_check_is_off() -> None:
    baseline = _report(p99=100.0, calculator=(4, 4, 0))
    assert compare(_report(p99=150.0, calculator=(4, 4, 0)), baseline, Thresholds(p99_factor=1.5)).passed
    slow = _report(p99=151.0, calculator=(4, 4, 0))
    verdict = compare(slow, baseline, Thresholds(p99_factor=1.5))
    assert [r.check for r in verdict.regressions] == [Check.LATENCY]
    assert compare(slow, baseline, Thresholds(p99_factor=0)).passed


def test_more_errors_regress_even_within_the_accuracy_margin() -> None:
    baseline = _report(calculator=(100, 100, 0))
    verdict = compare(_report(calculator=(100, 99, 1)), baseline, Thresholds(margin=0.02))
    assert [r.check for r in verdict.regressions] == [Check.ERRORS]
    assert "in calculator" in verdict.regressions[0].message


def test_a_saved_document_reads_back_as_its_target() -> None:
    report = _report(calculator=(40, 39, 1), lists=(8, 8, 0))
    text = json.dumps(document(report, None, None))
    again = read_baseline(text, "report.json")
    assert again.categories == report.categories
    assert again.latency_ms == report.latency_ms
    assert compare(report, again, Thresholds()).passed


@pytest.mark.parametrize(
    "text",
    ["not json", json.dumps({"format": "other"}), json.dumps({"format": "hivemesh.eval.report/v1"})],
)
def test_an_unreadable_baseline_is_refused(text: str) -> None:
    with pytest.raises(ReportError, match=r"report\.json"):
        read_baseline(text, "report.json")


def test_a_report_missing_figures_is_refused() -> None:
    data = document(_report(calculator=(1, 1, 0)), None, None)
    del data["target"]["latency_ms"]
    with pytest.raises(ReportError, match="latency_ms"):
        read_baseline(json.dumps(data), "report.json")


def test_reports_of_different_suites_are_flagged() -> None:
    baseline = _report(calculator=(4, 4, 0))
    assert not compare(replace(baseline, suite_digest="other"), baseline, Thresholds()).same_suite
