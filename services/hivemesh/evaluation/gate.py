"""The gate: whether a target did worse than its baseline.

A target regresses when, against the baseline,
- a category's accuracy fell by more than ``margin`` (a share: 0.02 is two points), or a category
  of the baseline was not run at all;
- the p99 turn latency rose above ``p99_factor`` times the baseline's (``p99_factor`` 0: not
  checked; latencies measured on different machines, or at different times on a shared one, do
  not compare, so a gate against a saved report may leave it off);
- a larger share of cases ended in errors (failed calls, tasks FAILED or CANCELED).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from hivemesh.evaluation.report import Report

# Shares closer than this are equal (floating-point noise in accuracy = correct / cases).
_EPSILON = 1e-9


class Check(enum.StrEnum):
    ACCURACY = "accuracy"
    MISSING = "missing_category"
    LATENCY = "p99_latency"
    ERRORS = "errors"


@dataclass(frozen=True)
class Thresholds:
    margin: float = 0.02
    p99_factor: float = 1.5


@dataclass(frozen=True)
class Regression:
    check: Check
    # The category that regressed; "" for checks over the whole suite (latency, errors).
    category: str
    baseline: float
    target: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check.value,
            "category": self.category,
            "baseline": self.baseline,
            "target": self.target,
            "message": self.message,
        }


@dataclass(frozen=True)
class GateResult:
    thresholds: Thresholds
    regressions: tuple[Regression, ...]
    # The two reports ran different suites: the comparison is per category, but not like for like.
    same_suite: bool

    @property
    def passed(self) -> bool:
        return not self.regressions

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "margin": self.thresholds.margin,
            "p99_factor": self.thresholds.p99_factor,
            "same_suite": self.same_suite,
            "regressions": [r.as_dict() for r in self.regressions],
        }


def compare(target: Report, baseline: Report, thresholds: Thresholds) -> GateResult:
    found: list[Regression] = []
    for name, before in sorted(baseline.categories.items()):
        after = target.categories.get(name)
        if after is None:
            found.append(
                Regression(Check.MISSING, name, before.accuracy, 0.0, f"{name}: in the baseline, not run")
            )
            continue
        drop = before.accuracy - after.accuracy
        if drop > thresholds.margin + _EPSILON:
            found.append(
                Regression(
                    Check.ACCURACY,
                    name,
                    before.accuracy,
                    after.accuracy,
                    f"{name}: accuracy {before.accuracy:.1%} -> {after.accuracy:.1%} "
                    f"({after.correct}/{after.cases}; down {drop * 100:.1f} points, "
                    f"margin {thresholds.margin * 100:.1f})",
                )
            )
    before_p99, after_p99 = baseline.latency_ms.p99, target.latency_ms.p99
    if thresholds.p99_factor > 0 and before_p99 > 0 and after_p99 > thresholds.p99_factor * before_p99:
        found.append(
            Regression(
                Check.LATENCY,
                "",
                before_p99,
                after_p99,
                f"p99 latency {before_p99:.1f} ms -> {after_p99:.1f} ms "
                f"({after_p99 / before_p99:.2f}x, limit {thresholds.p99_factor:g}x)",
            )
        )
    if target.error_rate > baseline.error_rate + _EPSILON:
        where = sorted(name for name, c in target.categories.items() if c.errors)
        found.append(
            Regression(
                Check.ERRORS,
                "",
                baseline.error_rate,
                target.error_rate,
                f"errors {baseline.errors}/{baseline.cases} -> {target.errors}/{target.cases} "
                f"(in {', '.join(where)})",
            )
        )
    return GateResult(thresholds, tuple(found), same_suite=target.suite_digest == baseline.suite_digest)
